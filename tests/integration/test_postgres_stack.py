"""The whole product on PostgreSQL, as `scripts/up --postgres` runs it: HAPI (hapi-config's build with HAPI's
PostgreSQL dialect) and the sidecar's store in one PostgreSQL server."""
from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Iterator
from urllib.parse import urlsplit

import pytest

from sidecar.devstack import HapiServer, PostgresServer, SidecarProcess, docker_engine_available, free_port, run_hapi
from sidecar.store.grants import Grant, add_grant
from sidecar.store.jobs import record_groups
from sidecar.store.postgres import PostgresStore
from tests.integration.test_bulk import PARTNER_SCOPES, await_job, call, ndjson, token
from tests.smart import Registered, register_client

pytestmark = pytest.mark.hapi

REGULAR = "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-hrex-consent.html#regular"
RECENT = (date.today() - timedelta(days=30)).isoformat()
OLD = (date.today() - timedelta(days=7 * 365)).isoformat()


@dataclass
class Stack:
    hapi: HapiServer
    sidecar: SidecarProcess
    store_url: str


def jdbc(url: str) -> tuple[str, str, str]:
    """A postgresql:// URL as HAPI takes it: the JDBC URL, the user and the password."""
    parts = urlsplit(url)
    return f"jdbc:postgresql://{parts.hostname}:{parts.port}{parts.path}", parts.username or "", parts.password or ""


@pytest.fixture(scope="module")
def stack(postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if docker_engine_available() or os.environ.get("HAPI_BASE_URL"):
        pytest.skip("HAPI on PostgreSQL is tested with hapi-config's build (no external HAPI, no Docker engine)")
    url, user, password = jdbc(postgres.database("hapi"))
    hapi = run_hapi({**os.environ, "HAPI_PORT": str(free_port()), "HAPI_DB_URL": url, "HAPI_DB_USER": user,
                     "HAPI_DB_PASSWORD": password, "HAPI_JAVA_OPTS": "-Xmx1g"})
    store_url = postgres.database("sidecar")
    sidecar = SidecarProcess(hapi.base_url, tmp_path_factory.mktemp("pg-stack"), extra_env={
        "SIDECAR_STORE_URL": store_url, "SIDECAR_STATE_REFRESH_SECONDS": "0.1"})
    try:
        sidecar.start()
        yield Stack(hapi, sidecar, store_url)
    finally:
        sidecar.stop()
        hapi.stop()


def member(stack: Stack) -> tuple[str, list[str]]:
    """A Patient with a recent and an old Observation, written into HAPI on PostgreSQL; its id and theirs."""
    run = uuid.uuid4().hex[:8]
    entries = [{"fullUrl": "urn:uuid:p", "request": {"method": "POST", "url": "Patient"}, "resource": {
        "resourceType": "Patient", "identifier": [{"system": "urn:test:pg", "value": run}]}}]
    entries += [{"request": {"method": "POST", "url": "Observation"}, "resource": {
        "resourceType": "Observation", "status": "final", "code": {"text": "weight"},
        "subject": {"reference": "urn:uuid:p"}, "effectiveDateTime": when}} for when in (RECENT, OLD)]
    status, _, body = call("POST", stack.hapi.base_url, body={"resourceType": "Bundle", "type": "transaction",
                                                              "entry": entries})
    assert status == 200, body[:300]
    ids = [e["response"]["location"].split("/")[1] for e in json.loads(body)["entry"]]
    return ids[0], ids[1:]


def partner_of(stack: Stack, patient: str) -> tuple[Registered, str]:
    client = register_client(stack.sidecar.data_dir, scopes=PARTNER_SCOPES, store_url=stack.store_url)
    status, _, body = call("POST", f"{stack.hapi.base_url}/Group", body={
        "resourceType": "Group", "type": "person", "actual": True, "member": [{"entity": {"reference":
                                                                                          f"Patient/{patient}"}}]})
    assert status == 201, body[:300]
    group = json.loads(body)["id"]
    store = PostgresStore(stack.store_url)
    try:
        add_grant(store, Grant(client.organization, patient, REGULAR, None, time.time() - 60, None))
        record_groups(store, client.organization, "pg-stack", {"match": group})
    finally:
        store.close()
    time.sleep(0.5)
    return client, group


def test_a_partner_reads_its_member_from_hapi_on_postgresql_within_the_look_back(stack):
    patient, (recent, old) = member(stack)
    client, _ = partner_of(stack, patient)
    bearer = token(stack.sidecar, client)
    status, _, body = call("GET", f"{stack.sidecar.fhir_base}/Observation?patient={patient}", bearer)
    assert status == 200, body[:300]
    assert [e["resource"]["id"] for e in json.loads(body).get("entry", [])] == [recent]


def test_a_partners_export_from_hapi_on_postgresql_holds_what_the_filter_allows(stack):
    patient, (recent, old) = member(stack)
    client, group = partner_of(stack, patient)
    bearer = token(stack.sidecar, client)
    status, headers, body = call("GET", f"{stack.sidecar.fhir_base}/Group/{group}/$export?_type=Patient,Observation",
                                 bearer, headers={"Prefer": "respond-async"})
    assert status == 202, body[:300]
    status, _, body = await_job(headers["Content-Location"], bearer)
    assert status == 200, body[:300]
    exported = {item["type"]: [r["id"] for r in ndjson(item["url"], bearer)] for item in json.loads(body)["output"]}
    assert exported == {"Patient": [patient], "Observation": [recent]}
