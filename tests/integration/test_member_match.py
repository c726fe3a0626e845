"""`$member-match` through the sidecar against a realistic roster in real HAPI: each way a request can differ from
the record (middle names, suffixes, birth-date slips, gender codes, hyphenated and accented names, a changed
surname), families under one subscriber id, twins and common names; then consent, grants and revocation.

The roster's birth dates are shifted by a random offset per run and its card numbers carry a run prefix, so
rosters of earlier runs against the same HAPI never collide with this one.
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import pytest

from tests.conftest import THIS_PAYER
from tests.integration.test_discovery_and_audit import audit_rows
from tests.smart import bearer_headers

pytestmark = pytest.mark.hapi

FHIR_JSON = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
MATCH_SCOPE = "system/*.read system/Patient.$member-match"
HREX = "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-hrex-consent.html#"
NPI = "http://hl7.org/fhir/sid/us-npi"
SSN = "http://hl7.org/fhir/sid/us-ssn"

# key: (given names, family, gender, birth date offset in days, subscriber id suffix)
ROSTER = {
    "walsh": (["Jennifer", "Anne"], "Walsh", "female", 0, "101"),
    "miller_jr": (["Robert", "James"], "Miller", "male", 1000, "201"),
    "miller_sr": (["Robert"], "Miller", "male", -9000, "202"),
    "okafor": (["Samuel"], "Okafor", "male", 0, "301"),
    "fernandez_ruiz": (["Lucia"], "Fernandez-Ruiz", "female", 3000, "401"),
    "nunez": (["José"], "Núñez", "male", 4000, "402"),
    "carter": (["Emily"], "Carter", "female", 5000, "403"),
    "chen_david": (["David"], "Chen", "male", -3000, "500"),
    "chen_grace": (["Grace"], "Chen", "female", -2500, "500"),
    "chen_lily": (["Lily"], "Chen", "female", 6000, "500"),
    "chen_noah": (["Noah"], "Chen", "male", 6500, "500"),
    "chen_liam": (["Liam"], "Chen", "male", 6500, "500"),
    "smith_1": (["John"], "Smith", "male", 100, "601"),
    "smith_2": (["John"], "Smith", "male", 200, "602"),
    "smith_3": (["John"], "Smith", "male", 300, "603"),
    "brown_1": (["Michael"], "Brown", "male", 400, "701"),
    "brown_2": (["Michael"], "Brown", "male", 400, "702"),
}


@dataclass
class Roster:
    run: str
    base: date
    ids: dict[str, str]
    ssn: str  # Jennifer Walsh's

    def birth_date(self, key: str) -> date:
        return self.base + timedelta(days=ROSTER[key][3])

    def card(self, key: str) -> str:
        return f"{self.run}-{ROSTER[key][4]}"


@pytest.fixture(scope="module")
def roster(hapi) -> Roster:
    run = uuid.uuid4().hex[:8].upper()
    # Day of month ≤ 12 and unlike the month in the base date, so a day/month transposition is another real date.
    month = random.randint(1, 12)
    base = date(random.randint(1945, 1975), month, random.choice([d for d in range(1, 13) if d != month]))
    ssn = f"{random.randint(100, 665)}-{random.randint(10, 99)}-{random.randint(1000, 9999)}"
    entries = []
    for key, (given, family, gender, offset, card) in ROSTER.items():
        urn = f"urn:uuid:{uuid.uuid4()}"
        entries.append({"fullUrl": urn, "request": {"method": "POST", "url": "Patient"}, "resource": {
            "resourceType": "Patient", "identifier": [{"type": {"coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MB"}]},
                "system": "urn:test:this-payer:member", "value": f"{run}-{key}"},
                *([{"system": SSN, "value": ssn}] if key == "walsh" else [])],
            "name": [{"use": "official", "family": family, "given": given,
                      **({"suffix": ["Jr"]} if key == "miller_jr" else {})}],
            "gender": gender, "birthDate": (base + timedelta(days=offset)).isoformat()}})
        entries.append({"request": {"method": "POST", "url": "Coverage"}, "resource": {
            "resourceType": "Coverage", "status": "active", "subscriberId": f"{run}-{card}",
            "beneficiary": {"reference": urn}, "payor": [{"display": "This Payer"}]}})
    locations = store(hapi.base_url, entries)
    ids = {key: locations[2 * i].split("/")[1] for i, key in enumerate(ROSTER)}
    return Roster(run, base, ids, ssn)


def store(base_url: str, entries: list[dict]) -> list[str]:
    """Stores the transaction entries straight in HAPI; their locations."""
    request = urllib.request.Request(base_url, method="POST", headers=FHIR_JSON, data=json.dumps(
        {"resourceType": "Bundle", "type": "transaction", "entry": entries}).encode())
    with urllib.request.urlopen(request, timeout=120) as response:
        return [e["response"]["location"] for e in json.load(response)["entry"]]


def patient(given: list[str], family: str, birth: date | str, gender: str | None = None, **extra) -> dict:
    resource = {"resourceType": "Patient", "id": "1", "name": [{"family": family, "given": given}],
                "birthDate": birth if isinstance(birth, str) else birth.isoformat(), **extra}
    if gender:
        resource["gender"] = gender
    return resource


def consent(organization: str, policy: str = "regular", start: date | None = None, end: date | None = None,
            recipient: str | None = None) -> dict:
    today = datetime.now(timezone.utc).date()
    return {
        "resourceType": "Consent", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                              "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IDSCL"}]}],
        "patient": {"reference": "Patient/1"}, "performer": [{"reference": "Patient/1"}],
        "sourceReference": {"reference": "http://new-payer.example/DocumentReference/signed"},
        "policy": [{"uri": HREX + policy}],
        "provision": {"type": "permit", "period": {"start": (start or today - timedelta(days=10)).isoformat(),
                                                   "end": (end or today + timedelta(days=90)).isoformat()},
                      "actor": [
                          {"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                                                "code": "performer"}]},
                           "reference": {"identifier": {"system": NPI, "value": THIS_PAYER.split("|")[1]}}},
                          {"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                                "code": "IRCP"}]},
                           "reference": {"reference": recipient or organization}}],
                      "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction",
                                              "code": "disclose"}]}]}}


def parameters(member: dict, card: str | None = None, consent_resource: dict | None = None,
               number: str | None = None) -> dict:
    """`card`: the subscriber id on the member's old card; `number`: their own member number on it."""
    coverage = {"resourceType": "Coverage", "id": "9", "status": "active", "beneficiary": {"reference": "Patient/1"},
                "payor": [{"identifier": {"system": NPI, "value": THIS_PAYER.split("|")[1]}}]}
    if card:
        coverage["subscriberId"] = card
    if number:
        coverage["identifier"] = [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                                        "code": "MB"}]}, "value": number}]
    params = [{"name": "MemberPatient", "resource": member}, {"name": "CoverageToMatch", "resource": coverage}]
    if consent_resource:
        params.append({"name": "Consent", "resource": consent_resource})
    return {"resourceType": "Parameters", "parameter": params}


@pytest.fixture
async def matcher(register, anonymous, token_url):
    client = await register(scopes=MATCH_SCOPE)
    headers = {**FHIR_JSON, **await bearer_headers(anonymous, token_url, client, scope=MATCH_SCOPE)}
    return client, headers


async def member_match(http, sidecar, headers: dict, body: dict) -> tuple[int, dict]:
    async with http.post(f"{sidecar.fhir_base}/Patient/$member-match", headers=headers, json=body) as resp:
        return resp.status, await resp.json(content_type=None)


def matched_id(answer: dict) -> str:
    member_id = next(p for p in answer["parameter"] if p["name"] == "MemberId")
    return member_id["valueReference"]["reference"].split("/")[1]


@pytest.mark.parametrize("key, request_patient, with_card", [
    ("walsh", lambda r: patient(["Jennifer"], "Walsh", r.birth_date("walsh"), "female"), True),
    ("walsh", lambda r: patient(["Jennifer", "A."], "WALSH", r.birth_date("walsh")), False),
    ("miller_jr", lambda r: patient(["Robert"], "Miller Jr.", r.birth_date("miller_jr"), "male"), False),
    ("okafor", lambda r: patient(["Samuel"], "Okafor", r.birth_date("okafor") + timedelta(days=1), "male"), True),
    ("okafor", lambda r: patient(["Samuel"], "Okafor", date(r.birth_date("okafor").year, r.birth_date("okafor").day,
                                                            r.birth_date("okafor").month), "male"), True),
    ("okafor", lambda r: patient(["Sam"], "Okafor", r.birth_date("okafor"), "unknown"), True),
    ("okafor", lambda r: patient(["Samuel"], "Okafor", r.birth_date("okafor")), False),
    ("fernandez_ruiz", lambda r: patient(["Lucia"], "Ruiz Fernandez", r.birth_date("fernandez_ruiz"), "female"), True),
    ("nunez", lambda r: patient(["Jose"], "Nunez", r.birth_date("nunez"), "male"), False),
    ("carter", lambda r: patient(["Emily"], "Thompson", r.birth_date("carter"), "female"), True),
    ("chen_lily", lambda r: patient(["Lily"], "Chen", r.birth_date("chen_lily"), "female"), True),
    ("chen_grace", lambda r: patient(["Grace"], "Chen", r.birth_date("chen_grace"), "female"), True),
    ("chen_noah", lambda r: patient(["Noah"], "Chen", r.birth_date("chen_noah"), "male"), True),
    ("chen_liam", lambda r: patient(["Liam"], "Chen", r.birth_date("chen_liam"), "male"), True),
    ("smith_2", lambda r: patient(["John"], "Smith", r.birth_date("smith_2"), "male"), False),
    ("brown_2", lambda r: patient(["Michael"], "Brown", r.birth_date("brown_2"), "male"), True),
], ids=["middle-name", "middle-initial-and-case", "suffix", "birth-date-one-day", "birth-date-transposed",
        "nickname-and-unknown-gender", "no-gender-no-card", "hyphenated-surname-reordered", "diacritics",
        "changed-surname-with-card", "dependent-child", "dependent-spouse", "twin-noah", "twin-liam",
        "common-name-by-birth-date", "same-name-same-birth-date-by-card"])
async def test_each_variation_matches_the_right_member(anonymous, sidecar, roster, matcher, key, request_patient,
                                                       with_card):
    client, headers = matcher
    card = f"{roster.card(key)}" if with_card else None
    status, answer = await member_match(anonymous, sidecar, headers, parameters(request_patient(roster), card))
    assert status == 200, answer
    assert matched_id(answer) == roster.ids[key]
    identifier = next(p for p in answer["parameter"] if p["name"] == "MemberIdentifier")["valueIdentifier"]
    assert identifier["value"] == f"{roster.run}-{key}"
    assert {c["code"] for c in identifier["type"]["coding"]} == {"MB", "UMB"}


@pytest.mark.parametrize("request_patient, card, code", [
    (lambda r: patient(["Emily"], "Thompson", r.birth_date("carter"), "female"), None, "not-found"),
    (lambda r: patient(["Michael"], "Brown", r.birth_date("brown_1"), "male"), None, "multiple-matches"),
    (lambda r: patient(["Walter"], "Nobody", r.base - timedelta(days=77)), None, "not-found"),
    (lambda r: patient(["Emma"], "Chen", r.birth_date("chen_lily")), "card-of-chen", "not-found"),
    (lambda r: patient(["Lily"], "Chen", r.base + timedelta(days=9999)), "card-of-chen", "not-found"),
    (lambda r: patient(["Mia"], "Chen", r.birth_date("chen_noah")), "card-of-chen", "not-found"),
], ids=["changed-surname-without-card", "same-name-same-birth-date-without-card", "nobody",
        "card-with-wrong-person", "card-with-wrong-birth-date", "a-twin-this-payer-does-not-cover"])
async def test_uncertain_requests_are_refused_without_saying_why(anonymous, sidecar, roster, matcher,
                                                                 request_patient, card, code):
    _, headers = matcher
    card = roster.card("chen_lily") if card == "card-of-chen" else card
    status, answer = await member_match(anonymous, sidecar, headers, parameters(request_patient(roster), card))
    assert status == 422
    assert answer["issue"][0]["code"] == code
    assert roster.run not in json.dumps(answer) and "Chen" not in json.dumps(answer)


async def test_the_members_own_number_stands_in_for_a_missing_first_name_the_subscriber_id_does_not(
        anonymous, sidecar, roster, matcher):
    _, headers = matcher
    unnamed = {"resourceType": "Patient", "id": "1", "name": [{"family": "Chen"}],
               "birthDate": roster.birth_date("chen_liam").isoformat()}
    status, answer = await member_match(anonymous, sidecar, headers,
                                        parameters(unnamed, number=f"{roster.run}-chen_liam"))
    assert status == 200, answer
    assert matched_id(answer) == roster.ids["chen_liam"]
    status, _ = await member_match(anonymous, sidecar, headers, parameters(unnamed, roster.card("chen_liam")))
    assert status == 422, "Noah, his twin, shares the subscriber id"


async def test_a_twin_this_payer_does_not_cover_carrying_her_brothers_member_number_is_refused(anonymous, sidecar,
                                                                                               roster, matcher):
    _, headers = matcher
    mia = patient(["Mia"], "Chen", roster.birth_date("chen_liam"), "female")
    status, answer = await member_match(anonymous, sidecar, headers,
                                        parameters(mia, roster.card("chen_liam"), number=f"{roster.run}-chen_liam"))
    assert status == 422
    assert answer["issue"][0]["code"] == "not-found"


async def test_an_ssn_a_covered_child_carries_tells_her_from_a_twin_this_payer_does_not_cover(
        anonymous, sidecar, hapi, roster, matcher):
    """Ava is covered here as a child, with her father's SSN on her record; her twin Zoe and the father are not."""
    _, headers = matcher
    born, ssn = roster.base + timedelta(days=7000), f"{random.randint(100, 665)}{random.randint(100000, 999999)}"
    urn = f"urn:uuid:{uuid.uuid4()}"
    locations = store(hapi.base_url, [
        {"fullUrl": urn, "request": {"method": "POST", "url": "Patient"}, "resource": {
            "resourceType": "Patient", "identifier": [{"system": SSN, "value": ssn}],
            "name": [{"family": "Okonkwo", "given": ["Ava"]}], "birthDate": born.isoformat()}},
        {"request": {"method": "POST", "url": "Coverage"}, "resource": {
            "resourceType": "Coverage", "status": "active", "subscriberId": f"{roster.run}-900",
            "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship",
                                         "code": "child"}]},
            "beneficiary": {"reference": urn}, "payor": [{"display": "This Payer"}]}}])
    ssn_identifier = [{"system": SSN, "value": ssn}]
    zoe = patient(["Zoe"], "Okonkwo", born, identifier=ssn_identifier)
    status, answer = await member_match(anonymous, sidecar, headers, parameters(zoe))
    assert status == 422 and answer["issue"][0]["code"] == "not-found"
    ava = patient(["Ava"], "Okonkwo", born, identifier=ssn_identifier)
    status, answer = await member_match(anonymous, sidecar, headers, parameters(ava))
    assert status == 200, answer
    assert matched_id(answer) == locations[0].split("/")[1]


async def test_a_request_without_a_birth_date_matches_on_name_and_ssn(anonymous, sidecar, roster, matcher):
    _, headers = matcher
    member = {"resourceType": "Patient", "id": "1", "name": [{"family": "Walsh", "given": ["Jennifer"]}],
              "identifier": [{"system": SSN, "value": roster.ssn.replace("-", "")}]}
    status, answer = await member_match(anonymous, sidecar, headers, parameters(member))
    assert status == 200, answer
    assert matched_id(answer) == roster.ids["walsh"]


async def test_a_match_with_consent_grants_that_member_and_nothing_else(anonymous, sidecar, roster, matcher, seed):
    client, headers = matcher
    mine, other = roster.ids["okafor"], roster.ids["walsh"]
    for member in (mine, other):
        await seed.create({"resourceType": "Observation", "status": "final", "subject": {"reference": f"Patient/{member}"},
                           "code": {"text": "weight"}, "effectiveDateTime": datetime.now(timezone.utc).date().isoformat()})
    reads = {**headers}
    async with anonymous.get(f"{sidecar.fhir_base}/Patient/{mine}", headers=reads) as resp:
        assert resp.status == 404, "no access before the match"
    body = parameters(patient(["Samuel"], "Okafor", roster.birth_date("okafor")), roster.card("okafor"),
                      consent(client.organization))
    status, answer = await member_match(anonymous, sidecar, headers, body)
    assert status == 200 and matched_id(answer) == mine
    async with anonymous.get(f"{sidecar.fhir_base}/Observation", headers=reads, params={"patient": mine}) as resp:
        assert len((await resp.json(content_type=None))["entry"]) == 1
    async with anonymous.get(f"{sidecar.fhir_base}/Patient/{other}", headers=reads) as resp:
        assert resp.status == 404
    async with anonymous.get(f"{sidecar.fhir_base}/Observation", headers=reads, params={"patient": other}) as resp:
        assert "entry" not in await resp.json(content_type=None)

    revoked = subprocess.run([sys.executable, "-m", "sidecar", "consent", "revoke", "--member", mine],
                             env={**os.environ, "SIDECAR_DATA_DIR": str(sidecar.data_dir),
                                  "SIDECAR_UPSTREAM_URL": sidecar.upstream_url}, capture_output=True, text=True)
    assert revoked.returncode == 0, revoked.stderr
    await asyncio.sleep(0.3)
    async with anonymous.get(f"{sidecar.fhir_base}/Patient/{mine}", headers=reads) as resp:
        assert resp.status == 404, "refused at once after the member's opt-out"


async def test_the_consent_is_stored_in_hapi_linked_to_member_and_requester(anonymous, sidecar, roster, matcher,
                                                                           seed):
    client, headers = matcher
    body = parameters(patient(["Grace"], "Chen", roster.birth_date("chen_grace")), roster.card("chen_grace"),
                      consent(client.organization, "sensitive"))
    status, _ = await member_match(anonymous, sidecar, headers, body)
    assert status == 200
    _, found = await seed.get("Consent", patient=roster.ids["chen_grace"],
                              identifier=f"urn:pdex-sidecar:member-match-requester|{client.organization}")
    stored = found["entry"][0]["resource"]
    assert stored["policy"][0]["uri"] == HREX + "sensitive" and stored["status"] == "active"


@pytest.mark.parametrize("make_consent", [
    lambda org: consent(org, recipient="Organization/someone-else"),
    lambda org: consent(org, start=date(2020, 1, 1), end=date(2021, 1, 1)),
    lambda org: {**consent(org), "status": "inactive"},
    lambda org: {**consent(org), "policy": [{"uri": "http://example.org/policy#everything"}]},
], ids=["other-recipient", "expired", "inactive", "unknown-policy"])
async def test_a_consent_that_cannot_be_honoured_is_refused_whoever_the_member(anonymous, sidecar, roster, matcher,
                                                                               make_consent):
    client, headers = matcher
    for member in (patient(["Lily"], "Chen", roster.birth_date("chen_lily")), patient(["No"], "One", "1901-01-01")):
        status, answer = await member_match(anonymous, sidecar, headers,
                                            parameters(member, roster.card("chen_lily"), make_consent(client.organization)))
        assert status == 422 and answer["issue"][0]["code"] == "business-rule"


@pytest.mark.parametrize("body, expression", [
    (lambda r: {"resourceType": "Parameters", "parameter": [
        {"name": "MemberPatient", "resource": patient(["A"], "B", "1980-01-01")}]},
     "Parameters.parameter[CoverageToMatch]"),
    (lambda r: parameters(patient(["A"], "B", "1980-13-01")), "Parameters.parameter[MemberPatient].resource.birthDate"),
    (lambda r: {**parameters(patient(["A"], "B", "1980-01-01")), "parameter": parameters(
        patient(["A"], "B", "1980-01-01"))["parameter"] + [{"name": "Extra", "valueString": "x"}]},
     "Parameters.parameter[Extra]"),
], ids=["missing-coverage", "bad-birth-date", "unknown-parameter"])
async def test_malformed_requests_get_400_naming_the_element(anonymous, sidecar, roster, matcher, body, expression):
    _, headers = matcher
    status, answer = await member_match(anonymous, sidecar, headers, body(roster))
    assert status == 400 and answer["issue"][0]["code"] == "invalid"
    assert answer["issue"][0]["expression"] == [expression]


async def test_varying_card_numbers_with_the_same_demographics_are_throttled_and_audited(anonymous, sidecar, roster,
                                                                                        matcher):
    client, headers = matcher
    member = patient(["Lily"], "Chen", roster.base - timedelta(days=4321))
    statuses = []
    for guess in range(5):
        status, _ = await member_match(anonymous, sidecar, headers, parameters(member, f"{roster.run}-9{guess}"))
        statuses.append(status)
    assert statuses == [422, 422, 422, 429, 429]
    await asyncio.sleep(0.3)
    rows = audit_rows(sidecar, "client_id = ? AND reason LIKE ?", client.client_id, "429 throttled%")
    assert len(rows) == 2


async def test_member_match_needs_its_scope(anonymous, sidecar, roster, register, token_url):
    client = await register(scopes="system/*.read")
    headers = {**FHIR_JSON, **await bearer_headers(anonymous, token_url, client)}
    status, answer = await member_match(anonymous, sidecar, headers,
                                        parameters(patient(["Lily"], "Chen", roster.birth_date("chen_lily"))))
    assert status == 403 and answer["issue"][0]["code"] == "forbidden"


async def test_each_decision_is_audited_with_its_field_contributions(anonymous, sidecar, roster, matcher):
    client, headers = matcher
    await member_match(anonymous, sidecar, headers,
                       parameters(patient(["Noah"], "Chen", roster.birth_date("chen_noah")), roster.card("chen_noah")))
    await asyncio.sleep(0.3)
    row = audit_rows(sidecar, "client_id = ? AND request LIKE ?", client.client_id, "POST /fhir/Patient/$member-match%")[-1]
    match = json.loads(row["detail"])["match"]
    assert match["outcome"] == "match" and match["best"]["patient"] == roster.ids["chen_noah"]
    assert match["best"]["fields"]["given"]["level"] == "exact"
    assert match["runner_up"]["fields"]["given"]["level"] == "disagree"


async def test_the_capability_statement_lists_member_match(anonymous, sidecar):
    async with anonymous.get(f"{sidecar.fhir_base}/metadata", headers=FHIR_JSON) as resp:
        statement = await resp.json(content_type=None)
    patient_resource = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    assert {"name": "member-match", "definition": "http://hl7.org/fhir/us/davinci-hrex/OperationDefinition/member-match"} \
        in patient_resource["operation"]
