"""Fixtures for the members' pages: a sidecar configured with the test identity provider and two partner payers,
and the people the pages are tried with, stored in the real HAPI."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import aiohttp
import pytest

from sidecar.devstack import HapiServer, SidecarProcess
from sidecar.store import jobs
from sidecar.store.db import Store
from sidecar.store.grants import Grant, add_grant
from sidecar.store.partners import add_partner
from tests.conftest import STATE_REFRESH_SECONDS, THIS_PAYER
from tests.oidc_provider import OidcProvider

LOGIN_SYSTEM = "urn:test:member-login"
PARTNER_A = "Payer A Health"
PARTNER_A_ID = "http://hl7.org/fhir/sid/us-npi|1111111112"
PARTNER_B = "Payer B Insurance"
RECIPIENT_NAME = "New Plan After Leaving"


@pytest.fixture(scope="session")
def oidc() -> Iterator[OidcProvider]:
    provider = OidcProvider().start()
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture(scope="session")
def member_sidecar(hapi: HapiServer, oidc: OidcProvider, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[SidecarProcess]:
    data = tmp_path_factory.mktemp("member-sidecar")
    store = Store(data)
    key = data / "unused-key.jwks"
    key.write_text('{"keys": []}')
    add_partner(store, PARTNER_A, "https://payer-a.example/fhir", "us-at-a", key, [PARTNER_A_ID])
    add_partner(store, PARTNER_B, "https://payer-b.example/fhir", "us-at-b", key, [])
    store.close()
    process = SidecarProcess(hapi.base_url, data, extra_env={
        "SIDECAR_STATE_REFRESH_SECONDS": str(STATE_REFRESH_SECONDS), "SIDECAR_PAYER_IDENTIFIERS": THIS_PAYER,
        "SIDECAR_MEMBER_OIDC_ISSUER": oidc.issuer, "SIDECAR_MEMBER_OIDC_CLIENT_ID": oidc.client_id,
        "SIDECAR_MEMBER_OIDC_CLIENT_SECRET": oidc.client_secret,
        "SIDECAR_MEMBER_OIDC_SUBJECT_SYSTEM": LOGIN_SYSTEM,
        # Every test signs in from 127.0.0.1: the failure-rate rule would throttle the whole run. The rule
        # these tests try is the card-variant one.
        "SIDECAR_MATCH_FAILURE_FLOOR": "100000"}).start()
    try:
        yield process
    finally:
        process.stop()


async def fhir_post(hapi: HapiServer, resource: dict) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{hapi.base_url}/{resource['resourceType']}", json=resource,
                                headers={"Content-Type": "application/fhir+json"}) as resp:
            assert resp.status == 201, await resp.text()
            return await resp.json(content_type=None)


async def fhir_get(hapi: HapiServer, path: str, **params: str) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{hapi.base_url}/{path}", params=params,
                               headers={"Accept": "application/fhir+json"}) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json(content_type=None)


@dataclass(frozen=True)
class NewMember:
    login: str
    patient_id: str


async def new_member(hapi: HapiServer) -> NewMember:
    """A member of this (new) payer whose identity-provider account is linked to their Patient."""
    login = f"member-{uuid.uuid4().hex[:10]}"
    patient = await fhir_post(hapi, {"resourceType": "Patient", "identifier": [{"system": LOGIN_SYSTEM,
                                                                                "value": login}],
                                     "name": [{"family": "Newcomer", "given": ["Ada"]}], "birthDate": "1985-02-03"})
    await fhir_post(hapi, {"resourceType": "Coverage", "status": "active",
                           "beneficiary": {"reference": f"Patient/{patient['id']}"},
                           "payor": [{"identifier": {"system": "http://hl7.org/fhir/sid/us-npi",
                                                     "value": "1234567893"}}],
                           "period": {"start": "2026-01-01"}})
    return NewMember(login, patient["id"])


@dataclass(frozen=True)
class FormerMember:
    given: str
    family: str
    birth_date: str
    member_id: str
    postal_code: str
    patient_id: str
    consent: str


async def former_member(hapi: HapiServer, sidecar: SidecarProcess) -> FormerMember:
    """A member who left: their record here, a consent they gave a new plan (the grant `$member-match` made), and
    two exports that plan completed: one of a Group with them, one of a Group without them."""
    unique = uuid.uuid4().hex[:8]
    member_id = f"OLD-{unique}"
    patient = await fhir_post(hapi, {
        "resourceType": "Patient", "name": [{"family": f"Leaver{unique}", "given": ["Grace"]}],
        "birthDate": "1971-07-14", "gender": "female",
        "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                             "code": "MB"}]}, "system": "urn:test:old-payer", "value": member_id}],
        "address": [{"line": ["1 Elm St"], "city": "Springfield", "postalCode": "62704"}]})
    consent = await fhir_post(hapi, {
        "resourceType": "Consent", "status": "active", "scope": {"coding": [{"code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "64292-6"}]}],
        "patient": {"reference": f"Patient/{patient['id']}"},
        "policy": [{"uri": "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-hrex-consent.html#regular"}],
        "provision": {"type": "permit"}})
    organization = await fhir_post(hapi, {"resourceType": "Organization", "name": RECIPIENT_NAME})
    recipient = f"Organization/{organization['id']}"
    group = await fhir_post(hapi, {"resourceType": "Group", "type": "person", "actual": True,
                                   "member": [{"entity": {"reference": f"Patient/{patient['id']}"}}]})
    stranger = await fhir_post(hapi, {"resourceType": "Patient", "name": [{"family": f"Stranger{unique}"}]})
    others = await fhir_post(hapi, {"resourceType": "Group", "type": "person", "actual": True,
                                    "member": [{"entity": {"reference": f"Patient/{stranger['id']}"}}]})
    store = Store(sidecar.data_dir)
    try:
        add_grant(store, Grant(recipient, patient["id"],
                               "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-hrex-consent.html#regular",
                               f"Consent/{consent['id']}", 1_700_000_000.0, 2_000_000_000.0))
        for exported in (group, others):
            job = jobs.create_job(store, jobs.EXPORT, "client-new-plan", recipient,
                                  f"{sidecar.fhir_base}/Group/{exported['id']}/$davinci-data-export", {"export": {}})
            store.db.execute("UPDATE jobs SET state = ?, updated_at = ? WHERE id = ?",
                             [jobs.COMPLETE, job.created_at + 42, job.id])
    finally:
        store.close()
    return FormerMember("Grace", f"Leaver{unique}", "1971-07-14", member_id, "62704", patient["id"],
                        f"Consent/{consent['id']}")
