"""Bulk payer-to-payer against real HAPI: `$bulk-member-match` into Member Match Groups, then
`$davinci-data-export` (and Bulk Data `$export`) of the matched Group through the disclosure filter.

One module-wide world: 200 members at this payer, each with a recent Observation and a 42 CFR Part 2 Condition;
a partner asks for 160 of them with honourable consent (#regular), 20 people this payer does not cover, 20 members
whose consent names another recipient, and one malformed MemberBundle. Names and cards carry a run prefix.
"""
from __future__ import annotations

import json
import os
import random
import string
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sidecar.client.smart import token_form
from tests.integration.test_member_match import THIS_PAYER, consent
from tests.smart import Registered, register_client

pytestmark = pytest.mark.hapi

FHIR_JSON = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
PARTNER_SCOPES = "system/*.read system/Group.$bulk-member-match"
SUD = {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F10.20",
                   "display": "Alcohol dependence, uncomplicated"}]}
MATCHED, UNKNOWN, CONSTRAINED = 160, 20, 20


def call(method: str, url: str, token: str | None = None, body: dict | None = None,
         headers: dict | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={**FHIR_JSON, **({"Authorization": f"Bearer {token}"} if token else {}),
                                              **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def token(sidecar, client: Registered, scope: str = PARTNER_SCOPES) -> str:
    form = urllib.parse.urlencode(token_form(client.client_id, f"{sidecar.public_url}/auth/token", client.key,
                                             scope)).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{sidecar.public_url}/auth/token", data=form),
                                timeout=30) as response:
        return json.load(response)["access_token"]


def await_job(status_url: str, bearer: str, timeout: float = 240) -> tuple[int, dict, bytes]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, headers, body = call("GET", status_url, bearer)
        if status != 202:
            return status, headers, body
        assert "X-Progress" in headers and headers["Retry-After"] == "2"
        time.sleep(0.5)
    raise AssertionError("the job did not finish in time")


def ndjson(url: str, bearer: str) -> list[dict]:
    status, headers, body = call("GET", url, bearer, headers={"Accept": "application/fhir+ndjson"})
    assert status == 200 and headers["Content-Type"].startswith("application/fhir+ndjson"), (status, body[:300])
    return [json.loads(line) for line in body.decode().splitlines() if line.strip()]


def letters(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(n)).capitalize()


@dataclass
class World:
    run: str
    partner: Registered
    bearer: str
    patients: dict[int, str]        # member index → HAPI Patient id
    matched: set[int]
    constrained: set[int]
    manifest: dict
    status_url: str
    groups: dict[str, dict]         # code → Group


def member_bundle(patient: dict, card: str, consent_resource: dict) -> dict:
    coverage = {"resourceType": "Coverage", "id": "9", "status": "active", "subscriberId": card,
                "beneficiary": {"reference": "Patient/1"}, "payor": [{"display": "This Payer"}]}
    return {"name": "MemberBundle", "part": [
        {"name": "MemberPatient", "resource": {**patient, "id": "1"}},
        {"name": "CoverageToMatch", "resource": coverage},
        {"name": "Consent", "resource": consent_resource}]}


@pytest.fixture(scope="module")
def world(hapi, sidecar) -> World:
    run = uuid.uuid4().hex[:8]
    rng = random.Random(run)
    today = datetime.now(timezone.utc).date()
    people = []
    for i in range(200 + UNKNOWN):
        people.append({"resourceType": "Patient", "name": [{"family": letters(rng, 9), "given": [letters(rng, 7)]}],
                       "gender": rng.choice(["male", "female"]),
                       "birthDate": (date(1940, 1, 1) + timedelta(days=rng.randint(0, 25000))).isoformat(),
                       "identifier": [{"system": f"urn:test:bulk:{run}", "value": str(i)}]})
    entries = []
    for i, person in enumerate(people[:200]):
        urn = f"urn:uuid:{uuid.uuid4()}"
        entries += [{"fullUrl": urn, "resource": person, "request": {"method": "POST", "url": "Patient"}},
                    {"resource": {"resourceType": "Coverage", "status": "active", "subscriberId": f"{run}-{i}",
                                  "beneficiary": {"reference": urn}, "payor": [{"display": "This Payer"}]},
                     "request": {"method": "POST", "url": "Coverage"}},
                    {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "weight"},
                                  "subject": {"reference": urn}, "effectiveDateTime": today.isoformat()},
                     "request": {"method": "POST", "url": "Observation"}},
                    {"resource": {"resourceType": "Condition", "code": SUD, "subject": {"reference": urn},
                                  "recordedDate": today.isoformat()},
                     "request": {"method": "POST", "url": "Condition"}}]
    status, _, body = call("POST", hapi.base_url, body={"resourceType": "Bundle", "type": "transaction",
                                                        "entry": entries})
    assert status == 200, body[:500]
    locations = [e["response"]["location"] for e in json.loads(body)["entry"]]
    patients = {i: locations[4 * i].split("/")[1] for i in range(200)}

    partner = register_client(sidecar.data_dir, scopes=PARTNER_SCOPES)
    time.sleep(1.0)
    bearer = token(sidecar, partner)
    matched = set(range(MATCHED))
    constrained = set(range(MATCHED, MATCHED + CONSTRAINED))
    bundles = []
    for i in sorted(matched | constrained):
        recipient = "Organization/someone-else" if i in constrained else None
        bundles.append(member_bundle(people[i], f"{run}-{i}", consent(partner.organization, recipient=recipient)))
    for i in range(200, 200 + UNKNOWN):
        bundles.append(member_bundle(people[i], f"{run}-{i}", consent(partner.organization)))
    bundles.append({"name": "MemberBundle", "part": [{"name": "CoverageToMatch", "resource": {
        "resourceType": "Coverage", "status": "active", "beneficiary": {"reference": "Patient/1"},
        "payor": [{"display": "x"}]}}]})
    status, headers, body = call("POST", f"{sidecar.fhir_base}/Group/$bulk-member-match", bearer,
                                 {"resourceType": "Parameters", "parameter": bundles}, {"Prefer": "respond-async"})
    assert status == 202, body[:500]
    status_url = headers["Content-Location"]
    status, _, body = await_job(status_url, bearer)
    assert status == 200, body[:500]
    manifest = json.loads(body)
    groups = {}
    for item in manifest["output"]:
        if item["type"] == "Group":
            for group in ndjson(item["url"], bearer):
                groups[group["code"]["coding"][0]["code"]] = group
    return World(run, partner, bearer, patients, matched, constrained, manifest, status_url, groups)


def test_bulk_match_puts_each_member_in_the_right_group(world):
    matched = {m["entity"]["reference"] for m in world.groups["match"]["member"]}
    assert matched == {f"Patient/{world.patients[i]}" for i in world.matched}
    assert len(world.groups["nomatch"]["member"]) == UNKNOWN + 1, "the MemberBundle without a MemberPatient too"
    assert len(world.groups["consentconstraint"]["member"]) == CONSTRAINED
    submitted = [m["entity"]["extension"][0]["valueReference"] for g in world.groups.values()
                 for m in g.get("member", [])]
    assert [s for s in submitted if "reference" not in s] == [{"display": f"MemberBundle {MATCHED + CONSTRAINED + UNKNOWN + 1}"}]
    for group in world.groups.values():
        for member in group.get("member", []):
            contained_ref = member["entity"]["extension"][0]["valueReference"].get("reference")
            assert contained_ref is None or any(f"#{c['id']}" == contained_ref for c in group["contained"]), \
                "the submitted Patient is contained"
    assert world.groups["match"]["characteristic"][0]["valueReference"]["identifier"]["value"] == \
        world.partner.organization


def seed_member(hapi, run: str) -> tuple[dict, str, str]:
    """One new member at this payer: the Patient as a partner would describe them, their card and their id here."""
    rng = random.Random(run)
    person = {"resourceType": "Patient", "name": [{"family": letters(rng, 9), "given": [letters(rng, 7)]}],
              "gender": "female", "birthDate": "1981-02-03"}
    urn = f"urn:uuid:{uuid.uuid4()}"
    status, _, body = call("POST", hapi.base_url, body={"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": urn, "resource": person, "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Coverage", "status": "active", "subscriberId": f"{run}-good",
                      "beneficiary": {"reference": urn}, "payor": [{"display": "This Payer"}]},
         "request": {"method": "POST", "url": "Coverage"}}]})
    assert status == 200, body[:500]
    return person, f"{run}-good", json.loads(body)["entry"][0]["response"]["location"].split("/")[1]


def bulk_match(sidecar, bearer: str, bundles: list[dict]) -> tuple[str, int, bytes]:
    status, headers, body = call("POST", f"{sidecar.fhir_base}/Group/$bulk-member-match", bearer,
                                 {"resourceType": "Parameters", "parameter": bundles}, {"Prefer": "respond-async"})
    assert status == 202, body[:500]
    status, _, body = await_job(headers["Content-Location"], bearer)
    return headers["Content-Location"], status, body


def test_one_malformed_member_goes_to_nonmatched_and_the_good_one_is_matched_and_granted(hapi, sidecar):
    from sidecar.store.sqlite import SqliteStore
    from sidecar.store.grants import granted_members

    person, card, patient_id = seed_member(hapi, uuid.uuid4().hex[:8])
    partner = register_client(sidecar.data_dir, scopes=PARTNER_SCOPES)
    time.sleep(1.0)
    bearer = token(sidecar, partner)
    malformed = {**person, "name": [{"family": "Other", "given": ["Person"]}], "birthDate": "1990-13-45"}
    _, status, body = bulk_match(sidecar, bearer, [
        member_bundle(malformed, "no-such-card", consent(partner.organization)),
        member_bundle(person, card, consent(partner.organization))])
    assert status == 200, body[:500]
    manifest = json.loads(body)
    groups = {g["code"]["coding"][0]["code"]: g for item in manifest["output"] if item["type"] == "Group"
              for g in ndjson(item["url"], bearer)}
    assert [m["entity"]["reference"] for m in groups["match"]["member"]] == [f"Patient/{patient_id}"]
    assert [m["entity"]["extension"][0]["valueReference"] for m in groups["nomatch"]["member"]] == [
        {"display": "MemberBundle 1"}]
    assert "contained" not in groups["nomatch"], "a Patient that is not valid FHIR is not contained"
    errors = [o for item in manifest["error"] for o in ndjson(item["url"], bearer)]
    assert len(errors) == 1 and "MemberBundle 1" in errors[0]["issue"][0]["diagnostics"]
    assert "birthDate" in errors[0]["issue"][0]["diagnostics"]
    store = SqliteStore(sidecar.data_dir)
    try:
        assert set(granted_members(store, partner.organization)) == {patient_id}
    finally:
        store.close()


def test_a_bulk_match_whose_groups_cannot_be_stored_fails_and_leaves_no_grants_or_consents(hapi, tmp_path):
    from sidecar.devstack import SidecarProcess
    from sidecar.store.sqlite import SqliteStore
    from sidecar.store.grants import granted_members
    from tests.relay import FailingRelay

    person, card, _ = seed_member(hapi, uuid.uuid4().hex[:8])
    with FailingRelay(hapi.base_url) as relay:
        sidecar = SidecarProcess(relay.base_url, tmp_path / "unstorable",
                                 extra_env={"SIDECAR_PAYER_IDENTIFIERS": THIS_PAYER}).start()
        try:
            partner = register_client(sidecar.data_dir, scopes=PARTNER_SCOPES)
            time.sleep(1.0)
            bearer = token(sidecar, partner)
            relay.fail_when = lambda path: path.rstrip("/") == "/fhir"  # the transaction storing the Groups
            status_url, status, body = bulk_match(sidecar, bearer, [
                member_bundle(person, card, consent(partner.organization))])
            assert status >= 500, body[:300]
            store = SqliteStore(sidecar.data_dir)
            try:
                assert granted_members(store, partner.organization) == {}
            finally:
                store.close()
        finally:
            sidecar.stop()
    job = status_url.rsplit("/", 1)[1]
    status, _, body = call("GET", f"{hapi.base_url}/Consent?identifier=urn:pdex-sidecar:bulk-member-match|{job}-consent-0")
    assert status == 200 and not json.loads(body).get("entry")


def test_the_manifest_lists_group_and_parameters_files_and_the_malformed_member_as_an_error(world):
    types = sorted(item["type"] for item in world.manifest["output"])
    assert types == ["Group", "Parameters"]
    assert world.manifest["requiresAccessToken"] is True
    envelope = ndjson(next(i["url"] for i in world.manifest["output"] if i["type"] == "Parameters"), world.bearer)[0]
    assert {p["name"] for p in envelope["parameter"]} == {"MatchedMembers", "NonMatchedMembers",
                                                          "ConsentConstrainedMembers"}
    issues = [o["issue"][0] for item in world.manifest["error"] for o in ndjson(item["url"], world.bearer)]
    errors = [i for i in issues if i["severity"] == "error"]
    assert len(errors) == 1 and "MemberPatient" in errors[0]["diagnostics"]
    assert {i["severity"] for i in issues} == {"error", "warning"}, "the renamed contained ids are reported"


def test_member_match_groups_have_the_pdex_2_2_shape(world):
    """Every MemberBundle here submits its Patient as id 1: the first keeps it, the others get their position."""
    for code, group in world.groups.items():
        assert (group["type"], group["actual"], group["managingEntity"]["type"]) == ("person", True, "Organization")
        contained = group.get("contained", [])
        assert not [c for c in contained if {"versionId", "lastUpdated", "security"} & set(c.get("meta", {}))]
        assert len({c["id"] for c in contained}) == len(contained)
    first = world.groups["match"]["contained"][0]
    assert first["id"] == "1" and world.groups["match"]["member"][0]["entity"]["extension"][0][
        "valueReference"] == {"reference": "#1"}
    assert world.groups["match"]["contained"][1]["id"] == "1-mb2"


def test_a_submitted_patient_is_contained_with_its_id_and_without_server_meta(hapi, sidecar):
    person, card, patient_id = seed_member(hapi, uuid.uuid4().hex[:8])
    partner = register_client(sidecar.data_dir, scopes=PARTNER_SCOPES)
    time.sleep(1.0)
    bearer = token(sidecar, partner)
    submitted = {**person, "meta": {"versionId": "4", "lastUpdated": "2026-01-02T03:04:05Z",
                                    "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                                                  "code": "R"}]}}
    bundle = member_bundle(submitted, card, consent(partner.organization))
    parts = {part["name"]: part["resource"] for part in bundle["part"]}
    parts["MemberPatient"]["id"] = "their-member-42"
    local = {"reference": "Patient/their-member-42"}
    parts["CoverageToMatch"]["beneficiary"], parts["Consent"]["patient"], parts["Consent"]["performer"] = \
        local, local, [local]
    _, status, body = bulk_match(sidecar, bearer, [bundle])
    assert status == 200, body[:500]
    manifest = json.loads(body)
    group = next(g for item in manifest["output"] if item["type"] == "Group" for g in ndjson(item["url"], bearer)
                 if g["code"]["coding"][0]["code"] == "match")
    assert group["contained"] == [{**person, "id": "their-member-42"}]
    assert group["member"] == [{"entity": {"reference": f"Patient/{patient_id}", "extension": [
        {"url": "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/base-ext-match-parameters",
         "valueReference": {"reference": "#their-member-42"}}]}}]
    assert "error" not in manifest or manifest["error"] == []


@pytest.mark.parametrize("operation_scope, reads", [
    ("http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/BulkMemberMatch", "Group"),
    ("http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/bulk-member-match", "Parameters"),
], ids=["pdex-2.2.0", "pdex-2.1.0"])
def test_a_partner_of_either_pdex_version_matches_exports_and_downloads(hapi, sidecar, operation_scope, reads):
    """A 2.2.0 partner reads the Group file, a 2.1.0 partner the Parameters envelope; both asked for their own
    spelling of the operation scope and got it."""
    person, card, patient_id = seed_member(hapi, uuid.uuid4().hex[:8])
    partner = register_client(sidecar.data_dir, scopes=PARTNER_SCOPES)
    time.sleep(1.0)
    form = urllib.parse.urlencode(token_form(partner.client_id, f"{sidecar.public_url}/auth/token", partner.key,
                                             f"{operation_scope} system/*.read")).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{sidecar.public_url}/auth/token", data=form),
                                timeout=30) as response:
        answer = json.load(response)
    assert answer["scope"] == f"{operation_scope} system/*.read"
    bearer = answer["access_token"]
    _, status, body = bulk_match(sidecar, bearer, [member_bundle(person, card, consent(partner.organization))])
    assert status == 200, body[:500]
    item = next(i for i in json.loads(body)["output"] if i["type"] == reads)
    lines = ndjson(item["url"], bearer)
    groups = lines if reads == "Group" else [p["resource"] for p in lines[0]["parameter"]]
    matched = next(g for g in groups if g["code"]["coding"][0]["code"] == "match")
    kickoff = {"resourceType": "Parameters", "parameter": [
        {"name": "exportType", "valueCanonical": "hl7.fhir.us.davinci-pdex#payertopayer"},
        {"name": "_type", "valueString": "Patient"}]}
    status, headers, answer = call("POST", f"{sidecar.fhir_base}/Group/{matched['id']}/$davinci-data-export", bearer,
                                   kickoff, {"Prefer": "respond-async"})
    assert status == 202, answer[:500]
    status, _, answer = await_job(headers["Content-Location"], bearer)
    assert status == 200, answer[:500]
    patients = [p for i in json.loads(answer)["output"] for p in ndjson(i["url"], bearer)]
    assert [p["id"] for p in patients] == [patient_id]


def test_a_partner_finds_its_groups_and_no_other(world, sidecar):
    status, _, body = call("GET", f"{sidecar.fhir_base}/Group?code=match", world.bearer)
    assert status == 200
    assert [e["resource"]["id"] for e in json.loads(body)["entry"]] == [world.groups["match"]["id"]]
    other = register_client(sidecar.data_dir, scopes=PARTNER_SCOPES)
    time.sleep(1.0)
    other_bearer = token(sidecar, other)
    status, _, body = call("GET", f"{sidecar.fhir_base}/Group?code=match", other_bearer)
    assert status == 200 and "entry" not in json.loads(body) or json.loads(body)["entry"] == []
    assert call("GET", f"{sidecar.fhir_base}/Group/{world.groups['match']['id']}", other_bearer)[0] == 404
    assert call("GET", world.status_url, other_bearer)[0] == 404
    assert call("GET", world.manifest["output"][0]["url"], other_bearer)[0] == 404
    export = f"{sidecar.fhir_base}/Group/{world.groups['match']['id']}/$davinci-data-export"
    assert call("POST", export, other_bearer, {"resourceType": "Parameters", "parameter": []},
                {"Prefer": "respond-async"})[0] == 404
    assert call("GET", world.status_url)[0] == 401, "no token, no status"


MATCH_GROUPS_SCOPE = ("system.Group.u?code=http://hl7.org/fhir/us/davinci-pdex/ValueSet/"
                      "PDexMultiMemberMatchResultVS|match")


def test_pdex_match_groups_scope_shows_the_match_group_and_no_other_of_the_partners_groups(world, sidecar):
    bearer = token(sidecar, world.partner, f"system/Patient.read {MATCH_GROUPS_SCOPE}")
    status, _, body = call("GET", f"{sidecar.fhir_base}/Group", bearer)
    assert status == 200
    assert [e["resource"]["id"] for e in json.loads(body)["entry"]] == [world.groups["match"]["id"]]
    assert call("GET", f"{sidecar.fhir_base}/Group/{world.groups['match']['id']}", bearer)[0] == 200
    assert call("GET", f"{sidecar.fhir_base}/Group/{world.groups['nomatch']['id']}", bearer)[0] == 404
    assert call("GET", f"{sidecar.fhir_base}/Group/{world.groups['nomatch']['id']}", world.bearer)[0] == 200


def test_a_group_search_form_that_is_not_utf8_is_400(world, sidecar):
    request = urllib.request.Request(f"{sidecar.fhir_base}/Group/_search", method="POST", data=b"code=\xff\xfe",
                                     headers={"Authorization": f"Bearer {world.bearer}",
                                              "Content-Type": "application/x-www-form-urlencoded"})
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=30)
    assert raised.value.code == 400 and json.loads(raised.value.read())["issue"][0]["code"] == "invalid"


@pytest.mark.parametrize("body, element", [
    ({"resourceType": "Parameters", "parameter": {"name": "MemberBundle"}}, "Parameters.parameter"),
    ({"resourceType": "Parameters", "parameter": [{"name": "MemberBundle", "part": "x"}]},
     "Parameters.parameter[0].part"),
    ({"resourceType": "Parameters", "parameter": [{"name": "MemberBundle", "part": [
        {"name": "MemberPatient", "resource": "Patient"}]}]}, "Parameters.parameter[0].part[0].resource"),
], ids=["parameter-object", "part-string", "resource-string"])
def test_a_bulk_member_match_envelope_of_the_wrong_shape_is_400_naming_the_element(world, sidecar, body, element):
    status, _, answer = call("POST", f"{sidecar.fhir_base}/Group/$bulk-member-match", world.bearer, body,
                             {"Prefer": "respond-async"})
    issue = json.loads(answer)["issue"][0]
    assert status == 400 and issue["code"] == "invalid" and issue["expression"] == [element]


@pytest.mark.parametrize("parameter", [{"name": "_type", "valueString": "Patient"}, "_type"],
                         ids=["object", "string"])
def test_an_export_kickoff_whose_parameter_is_not_an_array_is_400_naming_it(world, sidecar, parameter):
    status, _, answer = call("POST", f"{sidecar.fhir_base}/Patient/$export", world.bearer,
                             {"resourceType": "Parameters", "parameter": parameter}, {"Prefer": "respond-async"})
    issue = json.loads(answer)["issue"][0]
    assert status == 400 and issue["code"] == "invalid" and issue["expression"] == ["Parameters.parameter"]


def raw_post(url: str, bearer: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method="POST", data=body, headers={
        "Authorization": f"Bearer {bearer}", "Content-Type": content_type, "Accept": "application/fhir+json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def search_groups(sidecar, world: World, query: str) -> tuple[int, dict]:
    status, _, body = call("GET", f"{sidecar.fhir_base}/Group?{query}", world.bearer)
    return status, json.loads(body)


def test_a_multipart_group_search_form_is_415(world, sidecar):
    body = b'--b\r\nContent-Disposition: form-data; name="code"\r\n\r\nmatch\r\n--b'  # no closing boundary
    status, answer = raw_post(f"{sidecar.fhir_base}/Group/_search", world.bearer, body,
                              "multipart/form-data; boundary=b")
    assert status == 415 and json.loads(answer)["resourceType"] == "OperationOutcome"


def test_an_empty_characteristic_value_reference_is_400_naming_it(world, sidecar):
    status, outcome = search_groups(sidecar, world, "characteristic-value-reference=")
    assert status == 400 and "characteristic-value-reference" in outcome["issue"][0]["diagnostics"]


def test_a_group_search_count_that_is_no_number_is_400_naming_it(world, sidecar):
    status, outcome = search_groups(sidecar, world, "_count=abc")
    assert status == 400 and "_count" in outcome["issue"][0]["diagnostics"]


def test_a_partner_finds_its_groups_by_characteristic_value_reference(world, sidecar):
    own = urllib.parse.quote(world.partner.organization)
    status, bundle = search_groups(sidecar, world, f"code=match&characteristic-value-reference={own}")
    assert status == 200 and [e["resource"]["id"] for e in bundle["entry"]] == [world.groups["match"]["id"]]
    status, bundle = search_groups(sidecar, world, "characteristic-value-reference=Organization/someone-else")
    assert status == 200 and not bundle.get("entry")


def export_group(sidecar, world: World, parameters: list[dict]) -> dict[str, list[dict]]:
    url = f"{sidecar.fhir_base}/Group/{world.groups['match']['id']}/$davinci-data-export"
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "exportType", "valueCanonical": "hl7.fhir.us.davinci-pdex#payertopayer"}, *parameters]}
    status, headers, answer = call("POST", url, world.bearer, body, {"Prefer": "respond-async"})
    assert status == 202, answer[:500]
    status, _, answer = await_job(headers["Content-Location"], world.bearer)
    assert status == 200, answer[:500]
    manifest = json.loads(answer)
    found: dict = {"transactionTime": manifest["transactionTime"]}
    for item in manifest["output"]:
        resources = ndjson(item["url"], world.bearer)
        assert len(resources) == item["count"]
        found.setdefault(item["type"], []).extend(resources)
    found["errors"] = [o for item in manifest.get("error", []) for o in ndjson(item["url"], world.bearer)]
    return found


def test_the_export_holds_exactly_what_the_filter_allows_and_leaves_out_a_revoked_member(world, sidecar):
    revoked = world.patients[0]
    result = subprocess.run([sys.executable, "-m", "sidecar", "consent", "revoke", "--member", revoked],
                            env={**os.environ, "SIDECAR_DATA_DIR": str(sidecar.data_dir),
                                 "SIDECAR_UPSTREAM_URL": sidecar.upstream_url}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    time.sleep(0.5)
    found = export_group(sidecar, world, [{"name": "_type", "valueString": "Patient,Observation,Condition"}])
    expected = {world.patients[i] for i in world.matched} - {revoked}
    assert {p["id"] for p in found["Patient"]} == expected
    assert {o["subject"]["reference"].split("/")[1] for o in found["Observation"]} == expected
    assert "Condition" not in found, "42 CFR Part 2 data stays home under #regular"


def scraped(sidecar) -> dict[tuple[str, tuple], float]:
    """(sample name, its sorted labels) → value, from the sidecar's metrics listener."""
    with urllib.request.urlopen(sidecar.metrics_url, timeout=10) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in text_string_to_metric_families(text)
            for s in family.samples}


def test_an_exports_released_and_withheld_resources_are_counted_by_type_and_rule(world, sidecar):
    before = scraped(sidecar)
    found = export_group(sidecar, world, [{"name": "_type", "valueString": "Patient,Condition"}])
    moved = {(name, labels[0][1]): value - before.get((name, labels), 0.0)
             for (name, labels), value in scraped(sidecar).items()
             if name.startswith("pdex_sidecar_export_resources_") and value != before.get((name, labels), 0.0)}
    released = {key[1]: value for key, value in moved.items() if "released" in key[0]}
    assert released == {"Patient": len(found["Patient"])}, "each Condition is 42 CFR Part 2 data: none leaves"
    withheld = {key[1]: value for key, value in moved.items() if "withheld" in key[0]}
    assert withheld and sum(withheld.values()) >= len(found["Patient"]), "at least each member's Condition"
    assert "None" not in withheld, "every withheld resource is counted under the rule that withheld it"


def test_a_bulk_matchs_members_are_counted_by_outcome_and_its_job_by_state(world, sidecar):
    seen = scraped(sidecar)

    def matches(outcome: str) -> float:
        labels = (("operation", "bulk-member-match"), ("outcome", outcome))
        return seen.get(("pdex_sidecar_member_matches_total", labels), 0.0)

    assert matches("match") >= MATCHED and matches("consent") >= CONSTRAINED
    assert matches("not-found") >= UNKNOWN and matches("invalid") >= 1, "the MemberBundle without a MemberPatient"
    assert seen[("pdex_sidecar_jobs", (("kind", "bulk-member-match"), ("state", "complete")))] >= 1


def test_run_off_since_the_last_transaction_time_returns_only_what_changed(world, sidecar, hapi):
    first = export_group(sidecar, world, [{"name": "_type", "valueString": "Observation"}])
    assert len(first["Observation"]) >= MATCHED - 1
    member = world.patients[5]
    status, _, body = call("POST", f"{hapi.base_url}/Observation", body={
        "resourceType": "Observation", "status": "final", "code": {"text": "run-off"},
        "subject": {"reference": f"Patient/{member}"},
        "effectiveDateTime": datetime.now(timezone.utc).date().isoformat()})
    assert status == 201
    later = export_group(sidecar, world, [{"name": "_type", "valueString": "Observation"},
                                          {"name": "_since", "valueInstant": first["transactionTime"]}])
    assert [o["id"] for o in later["Observation"]] == [json.loads(body)["id"]]


def test_an_old_since_is_not_rewritten_and_nothing_older_than_the_look_back_leaves(world, sidecar, hapi):
    """PDex 2.2.0 §pdex-176: `_since` (last updated) is passed on as given; the five years by date of service are
    enforced on the data, also inside a requester's wider date-of-service `_typeFilter`."""
    member = world.patients[7]
    today = datetime.now(timezone.utc).date()
    written = {}
    for label, when in (("old", today - timedelta(days=7 * 366)), ("recent", today - timedelta(days=366))):
        status, _, body = call("POST", f"{hapi.base_url}/Observation", body={
            "resourceType": "Observation", "status": "final", "code": {"text": f"look-back {label}"},
            "subject": {"reference": f"Patient/{member}"}, "effectiveDateTime": when.isoformat()})
        assert status == 201, body[:300]
        written[label] = json.loads(body)["id"]
    wide = f"Observation?date=ge{(today - timedelta(days=10 * 366)).isoformat()}"
    for filters in ([], [{"name": "_typeFilter", "valueString": wide}]):
        found = export_group(sidecar, world, [{"name": "_type", "valueString": "Observation"},
                                              {"name": "_since", "valueInstant": "2001-01-01T00:00:00Z"}, *filters])
        ids = {o["id"] for o in found["Observation"]}
        assert written["recent"] in ids and written["old"] not in ids, filters
        five_years_ago = (today - timedelta(days=5 * 366)).isoformat()
        assert all(o["effectiveDateTime"][:10] >= five_years_ago for o in found["Observation"])
        assert not [e for e in found["errors"] if "_since" in json.dumps(e)], "nothing was rewritten"


def member_of(resource: dict) -> str:
    if resource["resourceType"] == "Patient":
        return f"Patient/{resource['id']}"
    return (resource.get("subject") or resource["beneficiary"])["reference"]


def test_the_export_carries_this_payers_transmitter_provenance_of_exactly_the_released_resources(world, sidecar):
    found = export_group(sidecar, world, [])
    provenances = found.pop("Provenance")
    owner = {f"{r['resourceType']}/{r['id']}": member_of(r) for t, rs in found.items() if t != "transactionTime"
             for r in rs}
    released = list(owner)
    targets = [t["reference"] for p in provenances for t in p["target"]]
    assert sorted(targets) == sorted(released), "each released resource once, nothing withheld"
    assert not any(t.startswith("Condition/") for t in targets), "the Part 2 Conditions stayed home"
    system, value = THIS_PAYER.split("|")
    for provenance in provenances:
        assert provenance["meta"]["profile"] == ["http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/"
                                                 "pdex-provenance"]
        assert provenance["agent"] == [{"type": {"coding": [{
            "system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-provenance-participant-type",
            "code": "transmitter", "display": "Transmitter"}]},
            "who": {"type": "Organization", "identifier": {"system": system, "value": value}}}]
        assert provenance["recorded"] == found["transactionTime"]
        assert len({owner[t["reference"]] for t in provenance["target"]}) == 1, "one member per Provenance"


def test_an_export_whose_type_leaves_provenance_out_gets_none(world, sidecar):
    found = export_group(sidecar, world, [{"name": "_type", "valueString": "Observation"}])
    assert found["Observation"] and "Provenance" not in found


def test_a_type_filter_of_plain_search_parameters_is_run(world, sidecar):
    found = export_group(sidecar, world, [{"name": "_type", "valueString": "Observation"},
                                          {"name": "_typeFilter", "valueString": "Observation?status=final"}])
    assert found["Observation"] and all(o["status"] == "final" for o in found["Observation"])


def test_a_cancelled_export_is_gone(world, sidecar):
    url = f"{sidecar.fhir_base}/Group/{world.groups['match']['id']}/$export?_type=Observation"
    status, headers, _ = call("GET", url, world.bearer, headers={"Prefer": "respond-async"})
    assert status == 202
    assert call("DELETE", headers["Content-Location"], world.bearer)[0] == 202
    assert call("GET", headers["Content-Location"], world.bearer)[0] == 404


@pytest.mark.parametrize("query, fragment", [
    ("_outputFormat=text/csv", "_outputFormat"), ("_type=Claim", "cannot be exported"),
    ("_since=yesterday", "_since"), ("_typeFilter=Observation?_sort=date", "_sort"),
    ("_typeFilter=" + urllib.parse.quote("Observation?patient=Patient/1"), "_typeFilter"),
    ("_typeFilter=" + urllib.parse.quote("Observation?subject.name=x"), "_typeFilter"),
    ("_type=Patient&_typeFilter=" + urllib.parse.quote("Observation?status=final"), "_typeFilter"),
    ("_typeFilter=Observation", "_typeFilter"),
    ("_typeFilter=" + urllib.parse.quote("Observation?no-such-parameter=1"), "_typeFilter"),
    ("_typeFilter=" + urllib.parse.quote("Observation?date=notadate"), "_typeFilter"),
])
def test_a_bad_kickoff_gets_400_naming_the_parameter(world, sidecar, query, fragment):
    url = f"{sidecar.fhir_base}/Group/{world.groups['match']['id']}/$export?{query}"
    status, _, body = call("GET", url, world.bearer, headers={"Prefer": "respond-async"})
    assert status == 400 and fragment in json.loads(body)["issue"][0]["diagnostics"]


SMART_FETCH = Path(sys.executable).with_name("smart-fetch")


def test_smart_fetch_runs_a_group_export_through_the_sidecar(world, sidecar, tmp_path):
    key_file = tmp_path / "client.jwks"
    key_file.write_text(json.dumps({"keys": [world.partner.key.private_jwk()]}))
    result = subprocess.run(
        [str(SMART_FETCH), "bulk", str(tmp_path / "out"), "--group", world.groups["match"]["id"],
         "--fhir-url", sidecar.fhir_base, "--smart-client-id", world.partner.client_id, "--smart-key", str(key_file),
         "--type", "Patient,Observation", "--no-compression"],
        cwd=tmp_path, env=dict(os.environ, COLUMNS="200"), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:] + result.stdout[-2000:]
    # smart-fetch writes Type.NNN.ndjson files beside its own log.ndjson
    patients = {json.loads(line)["id"] for f in (tmp_path / "out").glob("Patient.*.ndjson")
                for line in f.read_text().splitlines() if line.strip()}
    assert patients and patients <= {world.patients[i] for i in world.matched}


def test_the_capability_statement_lists_the_bulk_operations(sidecar):
    status, _, body = call("GET", f"{sidecar.fhir_base}/metadata")
    resources = {r["type"]: r for r in json.loads(body)["rest"][0]["resource"]}
    assert {o["name"] for o in resources["Group"]["operation"]} == {"bulk-member-match", "davinci-data-export", "export"}
    assert resources["Group"]["supportedProfile"] == [
        "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-member-match-group",
        "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-member-no-match-group"]
    assert "export" in {o["name"] for o in resources["Patient"]["operation"]}


def test_the_capability_statement_lists_the_group_searches_a_partner_can_make_and_no_other(sidecar):
    status, _, body = call("GET", f"{sidecar.fhir_base}/metadata")
    group = next(r for r in json.loads(body)["rest"][0]["resource"] if r["type"] == "Group")
    assert {p["name"] for p in group["searchParam"]} == {"_id", "code", "identifier", "characteristic",
                                                         "characteristic-value-reference"}


def test_an_export_interrupted_by_a_crash_resumes_after_restart(world, hapi, tmp_path):
    from sidecar.devstack import SidecarProcess
    from sidecar.store.sqlite import SqliteStore
    from sidecar.store.grants import Grant, add_grant
    from sidecar.store.jobs import record_groups

    # The restarted process is another lease owner: it takes the job over once the crashed one's lease runs out.
    sidecar = SidecarProcess(hapi.base_url, tmp_path / "restarted", extra_env={"SIDECAR_JOB_LEASE_SECONDS": "3"}).start()
    try:
        client = register_client(sidecar.data_dir, scopes=PARTNER_SCOPES)
        store = SqliteStore(sidecar.data_dir)
        members = [world.patients[i] for i in sorted(world.matched)][:10]
        for member in members:
            add_grant(store, Grant(client.organization, member, "regular", None, time.time() - 60, None))
        record_groups(store, client.organization, "test", {"match": world.groups["match"]["id"]})
        store.close()
        time.sleep(1.0)
        bearer = token(sidecar, client)
        url = f"{sidecar.fhir_base}/Group/{world.groups['match']['id']}/$export?_type=Patient"
        status, headers, _ = call("GET", url, bearer, headers={"Prefer": "respond-async"})
        assert status == 202
        sidecar.process.kill()  # a crash mid-job: no chance to tidy up
        sidecar.process.wait()
        sidecar.start()
        status, _, body = await_job(headers["Content-Location"], bearer)
        assert status == 200, body[:300]
        output = json.loads(body)["output"]
        assert {p["id"] for item in output for p in ndjson(item["url"], bearer)} == set(members)
    finally:
        sidecar.stop()


def export_through_broken_hapi(world: World, hapi, tmp_path: Path, fail_when) -> tuple[int, bytes, list[str], Path]:
    """A Group export by a partner of 5 matched members, through a relay that fails HAPI requests `fail_when`
    picks: the final status, its body, the paths HAPI was asked for, and the sidecar's data directory."""
    from sidecar.devstack import SidecarProcess
    from sidecar.store.sqlite import SqliteStore
    from sidecar.store.grants import Grant, add_grant
    from sidecar.store.jobs import record_groups
    from tests.relay import FailingRelay

    with FailingRelay(hapi.base_url) as relay:
        sidecar = SidecarProcess(relay.base_url, tmp_path / "broken").start()
        try:
            client = register_client(sidecar.data_dir, scopes=PARTNER_SCOPES)
            store = SqliteStore(sidecar.data_dir)
            for member in [world.patients[i] for i in sorted(world.matched)][:5]:
                add_grant(store, Grant(client.organization, member, "regular", None, time.time() - 60, None))
            record_groups(store, client.organization, "test", {"match": world.groups["match"]["id"]})
            store.close()
            time.sleep(1.0)
            bearer = token(sidecar, client)
            relay.fail_when = fail_when
            url = f"{sidecar.fhir_base}/Group/{world.groups['match']['id']}/$davinci-data-export?_type=Patient"
            status, headers, _ = call("GET", url, bearer, headers={"Prefer": "respond-async"})
            assert status == 202
            status, _, body = await_job(headers["Content-Location"], bearer)
            return status, body, list(relay.seen), sidecar.data_dir
        finally:
            sidecar.stop()


@pytest.mark.parametrize("breaks", ["$export-poll-status", "/Binary/"], ids=["while-polling", "while-downloading"])
def test_hapi_failing_mid_job_fails_the_export_with_a_5xx_and_no_manifest(world, hapi, tmp_path, breaks):
    status, body, seen, data_dir = export_through_broken_hapi(world, hapi, tmp_path, lambda path: breaks in path)
    assert 500 <= status < 600, body[:300]
    outcome = json.loads(body)
    assert outcome["resourceType"] == "OperationOutcome" and "output" not in outcome
    assert any(breaks in path for path in seen)
    assert not any((data_dir / "files").glob("*/*"))


@pytest.mark.parametrize("breaks", ["/$export", "$export-poll-status"], ids=["at-kickoff", "while-polling"])
def test_a_failed_export_says_nothing_of_what_the_fhir_server_said(world, hapi, tmp_path, breaks):
    status, body, _, _ = export_through_broken_hapi(world, hapi, tmp_path, lambda path: path.endswith(breaks))
    diagnostics = json.loads(body)["issue"][0]["diagnostics"]
    assert status >= 500 and "HHH000001" not in diagnostics and "database" not in diagnostics
    assert "127.0.0.1" not in diagnostics and "localhost" not in diagnostics
