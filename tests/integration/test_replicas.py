"""Two sidecar replicas on one PostgreSQL store and one files volume, in front of the real HAPI, act as one service:
tokens, replay protection, grants and client changes hold across them, and a replica killed mid-job has its job
finished by the other."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Iterator

import jwt
import pytest

from sidecar.app import create_app
from sidecar.client.smart import token_form
from sidecar.config import Settings
from sidecar.devstack import HapiServer, PostgresServer, SidecarProcess
from sidecar.store import jobs
from sidecar.store.grants import Grant, add_grant, revoke_grants
from sidecar.store.postgres import PostgresStore
from tests.integration.test_bulk import PARTNER_SCOPES, await_job, call, ndjson
from tests.smart import Registered, register_client

pytestmark = pytest.mark.hapi

REGULAR = "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-hrex-consent.html#regular"
LEASE_SECONDS = 3
REFRESH_SECONDS = 0.1
RECENT = (date.today() - timedelta(days=30)).isoformat()
# Both replicas serve one public URL, as behind a load balancer; the tests call each replica at its own port.
PUBLIC_URL = "http://sidecar.replicas.test"


@dataclass
class Service:
    store_url: str
    a: SidecarProcess
    b: SidecarProcess

    def store(self) -> PostgresStore:
        return PostgresStore(self.store_url)


def at(replica: SidecarProcess, url: str) -> str:
    """A URL the service gave out (under the public URL), as called at one replica."""
    return url.replace(PUBLIC_URL, replica.public_url)


@pytest.fixture(scope="module")
def service(hapi: HapiServer, postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Service]:
    store_url = postgres.database("replicas")
    files = tmp_path_factory.mktemp("shared-files")
    env = {"SIDECAR_PUBLIC_URL": PUBLIC_URL, "SIDECAR_STORE_URL": store_url, "SIDECAR_FILES_DIR": str(files),
           "SIDECAR_JOB_LEASE_SECONDS": str(LEASE_SECONDS), "SIDECAR_STATE_REFRESH_SECONDS": str(REFRESH_SECONDS)}
    a = SidecarProcess(hapi.base_url, tmp_path_factory.mktemp("replica-a"), extra_env=env).start()
    b = SidecarProcess(hapi.base_url, tmp_path_factory.mktemp("replica-b"), extra_env=env).start()
    try:
        yield Service(store_url, a, b)
    finally:
        a.stop()
        b.stop()


def post_token(replica: SidecarProcess, form: dict) -> tuple[int, dict]:
    request = urllib.request.Request(f"{replica.public_url}/auth/token", data=urllib.parse.urlencode(form).encode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def token_at(replica: SidecarProcess, client: Registered) -> str:
    form = token_form(client.client_id, f"{PUBLIC_URL}/auth/token", client.key, PARTNER_SCOPES)
    status, body = post_token(replica, form)
    assert status == 200, body
    return body["access_token"]


def partner(service: Service) -> Registered:
    client = register_client(Path("/nonexistent"), scopes=PARTNER_SCOPES, store_url=service.store_url)
    time.sleep(REFRESH_SECONDS * 5)  # both replicas reload their clients
    return client


def members(hapi: HapiServer, count: int, observations: int) -> tuple[list[str], str]:
    """`count` Patients with `observations` Observations each, and a Group of them all, straight into HAPI."""
    run = uuid.uuid4().hex[:8]
    entries = []
    for i in range(count):
        urn = f"urn:uuid:{uuid.uuid4()}"
        entries.append({"fullUrl": urn, "request": {"method": "POST", "url": "Patient"}, "resource": {
            "resourceType": "Patient", "identifier": [{"system": f"urn:test:replicas:{run}", "value": str(i)}],
            "name": [{"family": f"Replica{i}"}]}})
        entries += [{"request": {"method": "POST", "url": "Observation"}, "resource": {
            "resourceType": "Observation", "status": "final", "code": {"text": f"o{j}"},
            "subject": {"reference": urn}, "effectiveDateTime": RECENT}} for j in range(observations)]
    status, _, body = call("POST", hapi.base_url, body={"resourceType": "Bundle", "type": "transaction",
                                                        "entry": entries})
    assert status == 200, body[:300]
    patients = [e["response"]["location"].split("/")[1] for e in json.loads(body)["entry"]
                if e["response"]["location"].startswith("Patient/")]
    status, _, body = call("POST", f"{hapi.base_url}/Group", body={
        "resourceType": "Group", "type": "person", "actual": True,
        "member": [{"entity": {"reference": f"Patient/{p}"}} for p in patients]})
    assert status == 201, body[:300]
    return patients, json.loads(body)["id"]


def grant(service: Service, organization: str, patients: list[str]) -> None:
    store = service.store()
    try:
        for patient in patients:
            add_grant(store, Grant(organization, patient, REGULAR, None, time.time() - 60, None))
    finally:
        store.close()


def test_a_token_issued_by_one_replica_is_accepted_by_the_other(service, hapi):
    client = partner(service)
    (patient,), _ = members(hapi, 1, 0)
    grant(service, client.organization, [patient])
    bearer = token_at(service.a, client)
    status, _, body = call("GET", f"{service.b.fhir_base}/Patient/{patient}", bearer)
    assert status == 200 and json.loads(body)["id"] == patient


def test_a_client_assertion_used_at_one_replica_is_refused_at_the_other(service):
    client = partner(service)
    form = token_form(client.client_id, f"{PUBLIC_URL}/auth/token", client.key, PARTNER_SCOPES)
    assert post_token(service.a, form)[0] == 200
    status, body = post_token(service.b, form)
    assert status in (400, 401) and body["error"] == "invalid_client" and "already used" in body["error_description"]


def test_a_revoked_grant_ends_access_at_both_replicas(service, hapi):
    client = partner(service)
    (patient,), _ = members(hapi, 1, 0)
    grant(service, client.organization, [patient])
    bearer = token_at(service.a, client)
    assert call("GET", f"{service.b.fhir_base}/Patient/{patient}", bearer)[0] == 200
    store = service.store()
    try:
        revoke_grants(store, patient)
    finally:
        store.close()
    time.sleep(REFRESH_SECONDS * 5)
    for replica in (service.a, service.b):
        assert call("GET", f"{replica.fhir_base}/Patient/{patient}", bearer)[0] == 404


def admin(service: Service, *args: str) -> subprocess.CompletedProcess:
    """An admin command run with the replicas' environment (their store URL), as an operator would."""
    return subprocess.run([sys.executable, "-m", "sidecar", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "SIDECAR_STORE_URL": service.store_url})


def test_a_client_disabled_by_the_admin_command_is_refused_by_both_replicas(service, hapi):
    client = partner(service)
    bearer = token_at(service.b, client)
    assert admin(service, "clients", "disable", client.client_id).returncode == 0
    time.sleep(REFRESH_SECONDS * 5)
    for replica in (service.a, service.b):
        assert call("GET", f"{replica.fhir_base}/Group", bearer)[0] == 401


def test_a_key_rotation_by_the_admin_command_reaches_both_replicas(service):
    client = partner(service)
    before = token_at(service.a, client)
    assert admin(service, "keys", "rotate").returncode == 0
    time.sleep(REFRESH_SECONDS * 5)
    after = token_at(service.a, client)
    assert jwt.get_unverified_header(after)["kid"] != jwt.get_unverified_header(before)["kid"]
    for replica in (service.a, service.b):
        assert call("GET", f"{replica.fhir_base}/Group", after)[0] == 200
        assert call("GET", f"{replica.fhir_base}/Group", before)[0] == 200  # the retired key still verifies


def test_a_replica_killed_mid_export_has_the_job_finished_by_the_other(service, hapi):
    client = partner(service)
    patients, group = members(hapi, 12, 3)
    granted = patients[:10]
    grant(service, client.organization, granted)
    store = service.store()
    try:
        jobs.record_groups(store, client.organization, "replica-test", {"match": group})
    finally:
        store.close()
    time.sleep(REFRESH_SECONDS * 5)
    bearer = token_at(service.a, client)
    status, headers, body = call("GET", f"{service.a.fhir_base}/Group/{group}/$export?_type=Patient,Observation",
                                 bearer, headers={"Prefer": "respond-async"})
    assert status == 202, body[:300]
    status_url = headers["Content-Location"]
    job_id = status_url.rsplit("/", 1)[1]
    service.a.process.kill()  # mid-job, with no chance to hand the job back
    service.a.process.wait()
    try:
        status, _, body = await_job(at(service.b, status_url), bearer, timeout=180)
        assert status == 200, body[:300]
        output = json.loads(body)["output"]
        exported = {item["type"]: ndjson(at(service.b, item["url"]), bearer) for item in output}
        ids = {t: [r["id"] for r in resources] for t, resources in exported.items()}
        assert sorted(ids["Patient"]) == sorted(granted)
        assert len(ids["Observation"]) == len(set(ids["Observation"])) == 3 * len(granted)
        assert {item["count"] for item in output if item["type"] == "Patient"} == {len(granted)}
        store = service.store()
        try:
            owner = store.scalar("SELECT lease_owner FROM jobs WHERE id = ?", [job_id])
            assert f"-{service.b.process.pid}-" in owner, owner
        finally:
            store.close()
        verified = admin(service, "audit", "verify")
        assert verified.returncode == 0 and "intact" in verified.stdout
    finally:
        service.a.start()


def cut_off(postgres: PostgresServer, database: str, allowed: bool) -> None:
    """Refuse (or allow again) connections to one database, ending those it has: PostgreSQL out of reach."""
    admin = PostgresStore(postgres.url)
    try:
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ?", [database])
    finally:
        admin.close()


async def test_a_replica_is_unready_while_its_store_is_out_of_reach_and_ready_once_it_is_back(
        hapi, postgres, aiohttp_client, tmp_path):
    url = postgres.database("readiness")
    store = PostgresStore(url)
    settings = Settings(upstream_url=hapi.base_url, data_dir=tmp_path, metrics_port=0)
    client = await aiohttp_client(create_app(settings, store))
    assert (await client.get("/health/ready")).status == 200
    cut_off(postgres, url.rsplit("/", 1)[1], allowed=False)
    unready = await client.get("/health/ready")
    assert unready.status == 503 and (await unready.json())["checks"] == {"hapi": "up", "store": "down"}
    cut_off(postgres, url.rsplit("/", 1)[1], allowed=True)
    assert (await client.get("/health/ready")).status == 200


def test_replicas_reached_at_addresses_of_their_own_accept_each_others_tokens(service, hapi, tmp_path):
    env = {"SIDECAR_STORE_URL": service.store_url, "SIDECAR_STATE_REFRESH_SECONDS": str(REFRESH_SECONDS)}
    own_address = SidecarProcess(hapi.base_url, tmp_path / "replica-c", extra_env=env).start()
    try:
        client = partner(service)
        (patient,), _ = members(hapi, 1, 0)
        grant(service, client.organization, [patient])
        form = token_form(client.client_id, f"{own_address.public_url}/auth/token", client.key, PARTNER_SCOPES)
        status, body = post_token(own_address, form)
        assert status == 200, body
        from_c, from_a = body["access_token"], token_at(service.a, client)
        assert call("GET", f"{service.a.fhir_base}/Patient/{patient}", from_c)[0] == 200
        assert call("GET", f"{own_address.fhir_base}/Patient/{patient}", from_a)[0] == 200
    finally:
        own_address.stop()
