"""Reference data in partner exports, against real HAPI: the Organizations, Practitioners and Locations that
released member data points to leave with it, under the same rules as an `_include`.

One member has a recent Encounter at a clinic (with a doctor, in a ward), a twelve-year-old Encounter at another
clinic (withheld: outside the look-back) and a recent Encounter at a 42 CFR Part 2 program; a neighbour has a
recent Encounter at the same clinic. One partner holds `#regular` consents for both, another `#sensitive` for the
member; each exports its own Group.
"""
from __future__ import annotations

import itertools
import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from sidecar.store.sqlite import SqliteStore
from sidecar.store.grants import Grant, add_grant
from sidecar.store.jobs import record_groups
from tests.integration.test_bulk import PARTNER_SCOPES, await_job, call, ndjson, token
from tests.smart import Registered, register_client

pytestmark = pytest.mark.hapi

PART2 = {"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "42CFRPart2"}]}
PAYER_TO_PAYER = {"name": "exportType", "valueCanonical": "hl7.fhir.us.davinci-pdex#payertopayer"}
REGULAR, SENSITIVE = "regular", "sensitive"


@dataclass
class Seeded:
    ids: dict[str, str]
    """fixture key → HAPI id"""
    groups: dict[str, str]
    """policy → the Group its partner exports"""
    partners: dict[str, Registered]


@dataclass
class Export:
    output: dict[str, list[dict]]
    """type → the resources of its files"""
    errors: list[dict]

    def ids(self, resource_type: str) -> list[str]:
        return sorted(r["id"] for r in self.output.get(resource_type, []))


def day(years_ago: int) -> str:
    return (datetime.now(timezone.utc) - timedelta(days=365 * years_ago + 30)).date().isoformat()


def encounter(patient: str, years_ago: int, at: str, doctor: str | None = None, ward: str | None = None) -> dict:
    resource = {"resourceType": "Encounter", "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                "subject": {"reference": patient}, "serviceProvider": {"reference": at},
                "period": {"start": day(years_ago), "end": day(years_ago)}}
    if doctor:
        resource["participant"] = [{"individual": {"reference": doctor}}]
    if ward:
        resource["location"] = [{"location": {"reference": ward}}]
    return resource


def seed(hapi_base: str) -> dict[str, str]:
    urns = {key: f"urn:uuid:{uuid.uuid4()}" for key in (
        "clinic", "old_clinic", "program", "doctor", "ward", "member", "neighbour")}
    resources = {
        "clinic": {"resourceType": "Organization", "name": "Clinic"},
        "old_clinic": {"resourceType": "Organization", "name": "Clinic long closed"},
        "program": {"resourceType": "Organization", "name": "Recovery program", "meta": PART2},
        "doctor": {"resourceType": "Practitioner", "name": [{"family": "Doctor"}]},
        "ward": {"resourceType": "Location", "name": "Ward"},
        "member": {"resourceType": "Patient", "name": [{"family": "Member"}]},
        "neighbour": {"resourceType": "Patient", "name": [{"family": "Neighbour"}]},
        "visit": encounter(urns["member"], 0, urns["clinic"], urns["doctor"], urns["ward"]),
        "old_visit": encounter(urns["member"], 12, urns["old_clinic"]),
        "treatment": encounter(urns["member"], 0, urns["program"]),
        "neighbour_visit": encounter(urns["neighbour"], 0, urns["clinic"]),
    }
    entries = [{"fullUrl": urns.get(key, f"urn:uuid:{uuid.uuid4()}"), "resource": resource,
                "request": {"method": "POST", "url": resource["resourceType"]}} for key, resource in resources.items()]
    status, _, body = call("POST", hapi_base, body={"resourceType": "Bundle", "type": "transaction", "entry": entries})
    assert status == 200, body[:500]
    return {key: entry["response"]["location"].split("/")[1]
            for key, entry in zip(resources, json.loads(body)["entry"])}


def member_group(hapi_base: str, patients: list[str]) -> str:
    group = {"resourceType": "Group", "type": "person", "actual": True,
             "member": [{"entity": {"reference": f"Patient/{p}"}} for p in patients]}
    status, headers, body = call("POST", f"{hapi_base}/Group", body=group)
    assert status == 201, body[:500]
    return headers["Location"].split("/Group/")[1].split("/")[0]


def partner_with_grants(data_dir, hapi_base: str, grants: dict[str, str]) -> tuple[Registered, str]:
    """A partner holding the given grants (patient id → policy) and a Member Match Group of those patients."""
    partner = register_client(data_dir, scopes=PARTNER_SCOPES)
    group = member_group(hapi_base, list(grants))
    store = SqliteStore(data_dir)
    try:
        for patient, policy in grants.items():
            add_grant(store, Grant(partner.organization, patient, policy, None, time.time() - 60, None))
        record_groups(store, partner.organization, "test", {"match": group})
    finally:
        store.close()
    return partner, group


@pytest.fixture(scope="module")
def seeded(hapi, sidecar) -> Seeded:
    ids = seed(hapi.base_url)
    regular, regular_group = partner_with_grants(sidecar.data_dir, hapi.base_url,
                                                 {ids["member"]: REGULAR, ids["neighbour"]: REGULAR})
    sensitive, sensitive_group = partner_with_grants(sidecar.data_dir, hapi.base_url, {ids["member"]: SENSITIVE})
    time.sleep(1.0)  # the server notices new clients within state_refresh_seconds
    return Seeded(ids, {REGULAR: regular_group, SENSITIVE: sensitive_group}, {REGULAR: regular, SENSITIVE: sensitive})


def export(fhir_base: str, bearer: str, group: str, *parameters: dict) -> Export:
    url = f"{fhir_base}/Group/{group}/$davinci-data-export"
    status, headers, answer = call("POST", url, bearer, {"resourceType": "Parameters",
                                                         "parameter": [PAYER_TO_PAYER, *parameters]},
                                   {"Prefer": "respond-async"})
    assert status == 202, answer[:500]
    status, _, answer = await_job(headers["Content-Location"], bearer)
    assert status == 200, answer[:500]
    manifest = json.loads(answer)
    output: dict[str, list[dict]] = {}
    for item in manifest["output"]:
        resources = ndjson(item["url"], bearer)
        assert len(resources) == item["count"]
        output.setdefault(item["type"], []).extend(resources)
    return Export(output, [o for item in manifest["error"] for o in ndjson(item["url"], bearer)])


def partner_export(sidecar, seeded: Seeded, policy: str, *parameters: dict, scope: str = PARTNER_SCOPES) -> Export:
    return export(sidecar.fhir_base, token(sidecar, seeded.partners[policy], scope), seeded.groups[policy],
                  *parameters)


@pytest.fixture(scope="module")
def regular_export(sidecar, seeded) -> Export:
    return partner_export(sidecar, seeded, REGULAR)


def test_released_data_brings_the_organization_practitioner_and_location_it_points_to(regular_export, seeded):
    assert seeded.ids["clinic"] in regular_export.ids("Organization")
    assert regular_export.ids("Practitioner") == [seeded.ids["doctor"]]
    assert regular_export.ids("Location") == [seeded.ids["ward"]]


def test_an_organization_only_withheld_data_points_to_is_not_exported(regular_export, seeded):
    assert seeded.ids["old_clinic"] not in regular_export.ids("Organization")


def test_a_part2_program_is_not_exported_under_regular_consent(regular_export, seeded):
    assert seeded.ids["program"] not in regular_export.ids("Organization")


def test_an_organization_several_members_point_to_is_exported_once(regular_export, seeded):
    assert regular_export.ids("Organization") == [seeded.ids["clinic"]]


def test_a_part2_program_is_exported_under_sensitive_consent(sidecar, seeded):
    exported = partner_export(sidecar, seeded, SENSITIVE)
    assert exported.ids("Organization") == sorted([seeded.ids["clinic"], seeded.ids["program"]])


def test_a_type_list_without_reference_types_adds_none(sidecar, seeded):
    exported = partner_export(sidecar, seeded, REGULAR, {"name": "_type", "valueString": "Patient,Encounter"})
    assert set(exported.output) == {"Patient", "Encounter"}


def test_a_type_list_naming_organization_adds_organizations_only_and_without_a_warning(sidecar, seeded):
    exported = partner_export(sidecar, seeded, REGULAR, {"name": "_type", "valueString": "Encounter,Organization"})
    assert set(exported.output) == {"Encounter", "Organization"}
    assert not [e for e in exported.errors if "Organization" in e["issue"][0]["diagnostics"]]


def test_a_token_that_may_not_read_reference_types_gets_none(sidecar, seeded):
    exported = partner_export(sidecar, seeded, REGULAR, scope="system/Patient.read system/Encounter.read")
    assert set(exported.output) == {"Patient", "Encounter"}


def test_hapi_failing_while_reference_data_is_fetched_fails_the_export_with_no_manifest(seeded, hapi, tmp_path):
    from sidecar.devstack import SidecarProcess
    from tests.relay import FailingRelay

    with FailingRelay(hapi.base_url) as relay:
        sidecar = SidecarProcess(relay.base_url, tmp_path / "broken").start()
        try:
            partner, group = partner_with_grants(sidecar.data_dir, hapi.base_url, {seeded.ids["member"]: REGULAR})
            time.sleep(1.0)
            bearer = token(sidecar, partner)
            # The first Practitioner lookup judges the Encounter pointing to the doctor; the second fetches the
            # doctor for the export's Practitioner file, after the Location and Organization files are written.
            lookups = itertools.count()
            relay.fail_when = lambda path: path.endswith("/Practitioner/_search") and next(lookups) >= 1
            url = f"{sidecar.fhir_base}/Group/{group}/$davinci-data-export"
            status, headers, _ = call("POST", url, bearer, {"resourceType": "Parameters", "parameter": [
                PAYER_TO_PAYER]}, {"Prefer": "respond-async"})
            assert status == 202
            status, _, body = await_job(headers["Content-Location"], bearer)
            assert 500 <= status < 600, body[:300]
            assert "output" not in body.decode()
            assert relay.seen.count("/fhir/Practitioner/_search") == 2
            assert not any((sidecar.data_dir / "files").glob("*/*"))
        finally:
            sidecar.stop()
