"""The people the members' pages are tried with, stored in the real HAPI (the fixtures, a sidecar configured with
the test identity provider and two partner payers, are in tests/integration/conftest.py)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

import aiohttp

from sidecar.devstack import HapiServer, SidecarProcess
from sidecar.store import jobs
from sidecar.store.sqlite import SqliteStore
from sidecar.store.grants import Grant, add_grant
from tests.names import letters

LOGIN_SYSTEM = "urn:test:member-login"
PARTNER_A = "Payer A Health"
PARTNER_A_ID = "http://hl7.org/fhir/sid/us-npi|1111111112"
PARTNER_B = "Payer B Insurance"
RECIPIENT_NAME = "New Plan After Leaving"


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
        "resourceType": "Patient", "name": [{"family": f"Leaver{letters(unique)}", "given": ["Grace"]}],
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
    stranger = await fhir_post(hapi, {"resourceType": "Patient", "name": [{"family": f"Stranger{letters(unique)}"}]})
    others = await fhir_post(hapi, {"resourceType": "Group", "type": "person", "actual": True,
                                    "member": [{"entity": {"reference": f"Patient/{stranger['id']}"}}]})
    store = SqliteStore(sidecar.data_dir)
    try:
        add_grant(store, Grant(recipient, patient["id"],
                               "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-hrex-consent.html#regular",
                               f"Consent/{consent['id']}", 1_700_000_000.0, 2_000_000_000.0))
        for exported in (group, others):
            job = jobs.create_job(store, jobs.EXPORT, "client-new-plan", recipient,
                                  f"{sidecar.fhir_base}/Group/{exported['id']}/$davinci-data-export", {"export": {}},
                                  jobs.Lease("member-stack", 30))
            store.execute("UPDATE jobs SET state = ?, updated_at = ? WHERE id = ?", [jobs.COMPLETE, job.created_at + 42, job.id])
    finally:
        store.close()
    return FormerMember("Grace", f"Leaver{letters(unique)}", "1971-07-14", member_id, "62704", patient["id"],
                        f"Consent/{consent['id']}")
