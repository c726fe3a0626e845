"""What the sidecar emits, validated offline by HAPI's FHIR validator (validator/, the `validator` fixture) against the
profiles the specs name, with the IG packages of fhir_packages_dir (else ../shared/fhir-packages):

- the `$member-match` answer: HRex `hrex-parameters-member-match-out` (1.0.0, the only HRex in the packages);
- the Member Match Groups of `$bulk-member-match`: PDex 2.2.0 `pdex-member-match-group` (MatchedMembers) and
  `pdex-member-no-match-group` (NonMatchedMembers, ConsentConstrainedMembers); the 2.1.0 Parameters envelope:
  `pdex-parameters-multi-member-match-bundle-out` of PDex 2.2.0 and 2.1.1; the manifest's error file and every
  exported resource: base R4;
- claims as partners receive them (the CARIN BB non-financial Basis view): CARIN BB 2.0.0 has no Basis profiles
  (2.1.0 added them), so each is checked against the 2.0.0 profile of its kind, where only the financial elements
  the Basis view leaves out by design may fail; validated as exported, the Basis profile is reported unknown;
- Provenance: PDex 2.2.0 `pdex-provenance`, in exports and as the requesting side writes it (test_pull.py validates
  all a pull writes into the requesting side's HAPI);
- the CapabilityStatement and OperationOutcomes (4xx, and 5xx when HAPI is down, silent or garbled): base R4; the
  Consent stored in HAPI: HRex `hrex-consent`.

Tests marked xfail name a known error in what the product emits; the fix flips them (strict).
"""
from __future__ import annotations

import asyncio
import io
import json
import random
import re
import tarfile
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from sidecar.client.ingest import provenance
from sidecar.devstack import SidecarProcess, free_port
from sidecar.disclosure.claims import BASIS_PROFILES, claim_kind
from sidecar.matching.match_groups import build_groups
from sidecar.store.sqlite import SqliteStore
from sidecar.store.grants import Grant, add_grant
from sidecar.validation.command import write_report
from sidecar.validation.engine import Validator
from sidecar.validation.inputs import read_inputs
from tests.integration.test_disclosure import history, partner_headers  # noqa: F401 (fixture)
from tests.integration.test_bulk import PARTNER_SCOPES, await_job, call, member_bundle, ndjson, token
from tests.integration.test_member_match import MATCH_SCOPE, THIS_PAYER, consent, parameters, patient
from tests.smart import Registered, register_client
from tests.ten_year_member import REGULAR
from tests.unit.test_upstream_trouble import authorized_client, serve_raw, settings_for

pytestmark = pytest.mark.hapi

HREX = "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition/"
PDEX = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/"
C4BB = "http://hl7.org/fhir/us/carin-bb/StructureDefinition/"
MEMBER_MATCH_OUT = HREX + "hrex-parameters-member-match-out|1.0.0"
HREX_CONSENT = HREX + "hrex-consent|1.0.0"
MATCH_GROUP = PDEX + "pdex-member-match-group|2.2.0"
NO_MATCH_GROUP = PDEX + "pdex-member-no-match-group|2.2.0"
MULTI_MATCH_OUT = PDEX + "pdex-parameters-multi-member-match-bundle-out|2.2.0"
# The 2.1.x profile has the same canonical URL; 2.1.1 is the build nearest published 2.1.0 in the packages.
MULTI_MATCH_OUT_2_1 = PDEX + "pdex-parameters-multi-member-match-bundle-out|2.1.1"
PDEX_PROVENANCE = PDEX + "pdex-provenance|2.2.0"
CLOSEST_CARIN = {"inpatient": "Inpatient-Institutional", "outpatient": "Outpatient-Institutional",
                 "professional": "Professional-NonClinician", "oral": "Oral", "pharmacy": "Pharmacy"}
CARIN_EXAMPLES = {"inpatient": "EOBInpatient1", "outpatient": "EOBOutpatient1", "professional": "EOBProfessional1",
                  "oral": "EOBOral1", "pharmacy": "EOBPharmacy1"}
# What CARIN BB 2.0.0 requires and the Basis view removes by design: the totals and the adjudications carrying
# amounts (adjudicationamounttype; a line then holds fewer adjudications than 2.0.0's minimum).
FINANCIAL = re.compile(r"ExplanationOfBenefit\.total\b|:adjudicationamounttype'|"
                       r"EOB-institutional-item-or-header-adjudication|"
                       r"ExplanationOfBenefit\.item\.adjudication: minimum")
FHIR_JSON = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}


def errors(validator: Validator, resource: dict, *profiles: str) -> list[str]:
    return [str(issue) for issue in validator.validate(resource, profiles).errors]


def assert_conforms(validator: Validator, resource: dict, *profiles: str) -> None:
    found = errors(validator, resource, *profiles)
    assert not found, "\n".join(found)


def assert_none(found: dict[str, list[str]]) -> None:
    """Errors by resource: none may have any."""
    failing = {name: errs for name, errs in found.items() if errs}
    assert not failing, "\n".join(f"{name}: {e}" for name, errs in failing.items() for e in errs)


def store(base_url: str, entries: list[dict]) -> list[str]:
    """A transaction straight into HAPI; the locations of its entries."""
    status, _, body = call("POST", base_url, body={"resourceType": "Bundle", "type": "transaction",
                                                   "entry": entries})
    assert status == 200, body[:500]
    return [e["response"]["location"] for e in json.loads(body)["entry"]]


def new_member(hapi, run: str, given: str) -> tuple[dict, str, str]:
    """A member of this payer: the Patient as a partner describes them, their card, their id here."""
    born = date(1950, 1, 1) + timedelta(days=random.randint(0, 15000))  # no twins: each is told apart easily
    person = patient([given], f"Profile{run}", born, "female")
    urn = f"urn:uuid:{uuid.uuid4()}"
    card = f"{run}-{given}"
    locations = store(hapi.base_url, [
        {"fullUrl": urn, "request": {"method": "POST", "url": "Patient"},
         "resource": {**{k: v for k, v in person.items() if k != "id"},
                      "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                                           "code": "MB"}]},
                                      "system": "urn:test:this-payer:member", "value": card}]}},
        {"request": {"method": "POST", "url": "Coverage"},
         "resource": {"resourceType": "Coverage", "status": "active", "subscriberId": card,
                      "beneficiary": {"reference": urn}, "payor": [{"display": "This Payer"}]}}])
    return person, card, locations[0].split("/")[1]


def client_token(sidecar, scopes: str) -> tuple[Registered, str]:
    client = register_client(sidecar.data_dir, scopes=scopes)
    time.sleep(0.5)  # the sidecar notices new clients within state_refresh_seconds
    return client, token(sidecar, client, scopes)


@dataclass
class Matched:
    answer: dict               # $member-match with the default settings (MemberIdentifier and MemberId)
    answer_hrex_1_0: dict      # with member_match_member_id false, as for HRex 1.0.0 partners
    stored_consent: dict


@pytest.fixture(scope="module")
def matched(hapi, sidecar, tmp_path_factory) -> Matched:
    run = uuid.uuid4().hex[:8]
    hrex_1_0 = SidecarProcess(hapi.base_url, tmp_path_factory.mktemp("hrex-1-0"),
                              extra_env={"SIDECAR_PAYER_IDENTIFIERS": THIS_PAYER,
                                         "SIDECAR_MEMBER_MATCH_MEMBER_ID": "false"}).start()
    try:
        answers = []
        for process, given in ((sidecar, "Ada"), (hrex_1_0, "Bea")):
            person, card, member = new_member(hapi, run, given)
            client, bearer = client_token(process, MATCH_SCOPE)
            status, _, body = call("POST", f"{process.fhir_base}/Patient/$member-match", bearer,
                                   parameters(person, card, consent(client.organization)))
            assert status == 200, body[:500]
            answers.append(json.loads(body))
    finally:
        hrex_1_0.stop()
    status, _, body = call("GET", f"{hapi.base_url}/Consent?patient={member}")
    assert status == 200
    return Matched(answers[0], answers[1], json.loads(body)["entry"][0]["resource"])


def test_member_match_answer_for_hrex_1_0_partners_conforms_to_member_match_out(validator, matched):
    assert_conforms(validator, matched.answer_hrex_1_0, MEMBER_MATCH_OUT)


@pytest.mark.xfail(strict=True, reason=(
    "HRex 1.0.0 member-match-out allows one parameter: \"Parameters.parameter: max allowed = 1, but found 2\" and "
    "\"Parameters.parameter[1]: This element does not match any known slice ... slicing is CLOSED\" (MemberId); "
    "MemberId is HRex 1.1.0+, and no HRex 1.1.0/1.2.0 package is in the packages folder: fixed by adding that "
    "package, not by the product"))
def test_member_match_answer_with_member_id_conforms_to_member_match_out(validator, matched):
    assert_conforms(validator, matched.answer, MEMBER_MATCH_OUT)


def test_the_consent_stored_in_hapi_conforms_to_hrex_consent(validator, matched):
    assert_conforms(validator, matched.stored_consent, HREX_CONSENT)


@dataclass
class BulkMatch:
    groups: dict[str, dict]         # code → Group
    envelope: dict                  # the 2.1.0 Parameters
    outcomes: list[dict]            # the manifest's error file
    exported: list[dict]            # a $davinci-data-export of the matched Group


@pytest.fixture(scope="module")
def bulk(hapi, sidecar) -> BulkMatch:
    run = uuid.uuid4().hex[:8]
    person, card, member = new_member(hapi, run, "Cleo")
    partner, bearer = client_token(sidecar, PARTNER_SCOPES)
    today = datetime.now(timezone.utc).date().isoformat()
    status, _, body = call("POST", f"{hapi.base_url}/Observation", body={
        "resourceType": "Observation", "status": "final", "code": {"text": "weight"},
        "subject": {"reference": f"Patient/{member}"}, "effectiveDateTime": today})
    assert status == 201, body[:300]
    unknown = patient(["Nobody"], f"Unknown{run}", "1950-01-01")
    constrained_person, constrained_card, _ = new_member(hapi, run, "Dora")
    bundles = [member_bundle(person, card, consent(partner.organization)),
               member_bundle(unknown, f"{run}-none", consent(partner.organization)),
               member_bundle(unknown, f"{run}-none-2", consent(partner.organization)),  # §pdex-153
               member_bundle(constrained_person, constrained_card,
                             consent(partner.organization, recipient="Organization/someone-else")),
               {"name": "MemberBundle", "part": [{"name": "CoverageToMatch", "resource": {
                   "resourceType": "Coverage", "status": "active", "beneficiary": {"reference": "Patient/1"},
                   "payor": [{"display": "x"}]}}]}]
    status, headers, body = call("POST", f"{sidecar.fhir_base}/Group/$bulk-member-match", bearer,
                                 {"resourceType": "Parameters", "parameter": bundles}, {"Prefer": "respond-async"})
    assert status == 202, body[:500]
    status, _, body = await_job(headers["Content-Location"], bearer)
    assert status == 200, body[:500]
    manifest = json.loads(body)
    files = {item["type"]: ndjson(item["url"], bearer) for item in manifest["output"]}
    groups = {g["code"]["coding"][0]["code"]: g for g in files["Group"]}
    outcomes = [o for item in manifest["error"] for o in ndjson(item["url"], bearer)]

    export = f"{sidecar.fhir_base}/Group/{groups['match']['id']}/$davinci-data-export"
    status, headers, body = call("POST", export, bearer, {"resourceType": "Parameters", "parameter": [
        {"name": "exportType", "valueCanonical": "hl7.fhir.us.davinci-pdex#payertopayer"}]},
        {"Prefer": "respond-async"})
    assert status == 202, body[:500]
    status, _, body = await_job(headers["Content-Location"], bearer)
    assert status == 200, body[:500]
    exported = [r for item in json.loads(body)["output"] for r in ndjson(item["url"], bearer)]
    return BulkMatch(groups, files["Parameters"][0], outcomes, exported)


@pytest.mark.parametrize("code, profile", [("match", MATCH_GROUP), ("nomatch", NO_MATCH_GROUP),
                                           ("consentconstraint", NO_MATCH_GROUP)])
def test_each_member_match_group_conforms_to_its_pdex_profile(validator, bulk, code, profile):
    assert_conforms(validator, bulk.groups[code], profile)


def test_a_patient_submitted_with_two_coverages_has_both_in_the_no_match_group(bulk):
    group = bulk.groups["nomatch"]
    assert len([c for c in group["contained"] if c["resourceType"] == "Coverage"]) == 2
    assert sum(len(m["entity"]["extension"]) == 2 for m in group["member"]) == 2


def test_a_match_group_with_a_patient_matched_on_two_coverages_conforms_to_the_pdex_profile(validator):
    submitted = patient(["Ann"], "Ames", "1980-01-02")
    members = [{"MemberPatient": {**submitted, "id": "1"}, "CoverageToMatch": {
        "resourceType": "Coverage", "id": "9", "status": "active", "subscriberId": card,
        "beneficiary": {"reference": "Patient/1"}, "payor": [{"display": "This Payer"}]}} for card in ("A-1", "B-2")]
    group = build_groups("job1", "Organization/requester", {"type": "Organization", "identifier": {
        "system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}}, "2026-12-05", members,
        {0: ("match", "p1"), 1: ("match", "p1")}).groups["match"]
    assert_conforms(validator, {**group, "id": "g1"}, MATCH_GROUP)


def test_the_2_1_0_parameters_envelope_conforms_to_multi_member_match_out(validator, bulk):
    assert_conforms(validator, bulk.envelope, MULTI_MATCH_OUT)


def test_the_2_1_0_parameters_envelope_conforms_to_pdex_2_1_multi_member_match_out(validator, bulk):
    assert_conforms(validator, bulk.envelope, MULTI_MATCH_OUT_2_1)


def test_every_exported_resource_conforms_to_its_own_profiles(validator, bulk):
    assert {r["resourceType"] for r in bulk.exported} >= {"Patient", "Coverage", "Observation"}
    found = {f"{r['resourceType']}/{r['id']}": errors(validator, r) for r in bulk.exported}
    assert_none(found)


def test_exports_carry_a_provenance_conforming_to_pdex_provenance(validator, bulk):
    provenances = [r for r in bulk.exported if r["resourceType"] == "Provenance"]
    assert provenances
    assert_none({f"Provenance/{p['id']}": errors(validator, p, PDEX_PROVENANCE) for p in provenances})


def test_the_provenance_the_requesting_side_writes_conforms_to_pdex_provenance(validator):
    written = provenance("payer-a", "https://payer-a.example/fhir", "p2p-member", ["Observation/p2p-1"],
                         ["digest"], "2026-01-02T03:04:05Z")
    assert_conforms(validator, written, PDEX_PROVENANCE)


def test_bulk_match_error_outcomes_conform_to_r4(validator, bulk):
    assert bulk.outcomes
    assert_none({f"outcome {n}": errors(validator, o) for n, o in enumerate(bulk.outcomes, start=1)})


def carin_examples(packages: Path) -> dict[str, dict]:
    """CARIN BB 2.0.0's own example claims and what they point to, by `Type/id`."""
    examples = {}
    with tarfile.open(packages / "hl7.fhir.us.carin-bb#2.0.0.tgz") as package:
        for member in package.getmembers():
            if member.name.startswith("package/example/") and member.name.endswith(".json"):
                resource = json.load(io.TextIOWrapper(package.extractfile(member), encoding="utf-8"))
                examples[f"{resource['resourceType']}/{resource['id']}"] = resource
    return examples


def recent(eob: dict, today: date) -> dict:
    """The example claim with its service dates in the look-back window (the examples date from 2011 to 2021)."""
    eob = json.loads(json.dumps(eob))
    eob["billablePeriod"] = {"start": (today - timedelta(days=40)).isoformat(),
                             "end": (today - timedelta(days=38)).isoformat()}
    for item in eob.get("item", []):
        item.pop("servicedPeriod", None)
        item["servicedDate"] = (today - timedelta(days=39)).isoformat()
    return eob


@pytest.fixture(scope="module")
def claims(hapi, sidecar, validator) -> dict[str, tuple[dict, dict]]:
    """Each kind of claim: CARIN's example as stored in HAPI, and as a partner (#sensitive consent) receives it."""
    examples = carin_examples(validator.packages_dir)
    today = datetime.now(timezone.utc).date()
    urns = {ref: f"urn:uuid:{uuid.uuid4()}" for ref in examples}
    entries = []
    for ref, resource in examples.items():
        if resource["resourceType"] == "ExplanationOfBenefit" and ref.split("/")[1] not in CARIN_EXAMPLES.values():
            continue
        if resource["resourceType"] == "ExplanationOfBenefit":
            resource = recent(resource, today)
        text = json.dumps({k: v for k, v in resource.items() if k != "id"})
        for target, urn in urns.items():
            text = text.replace(f'"reference": "{target}"', f'"reference": "{urn}"')
        entries.append({"fullUrl": urns[ref], "resource": json.loads(text),
                        "request": {"method": "POST", "url": resource["resourceType"]}})
    locations = dict(zip((e["fullUrl"] for e in entries), store(hapi.base_url, entries)))
    member = locations[urns["Patient/Patient2"]].split("/")[1]
    partner = register_client(sidecar.data_dir)
    db = SqliteStore(sidecar.data_dir)
    try:
        add_grant(db, Grant(partner.organization, member,
                            "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-hrex-consent.html#sensitive",
                            None, time.time() - 1, None))
    finally:
        db.close()
    time.sleep(0.5)
    bearer = token(sidecar, partner, "system/*.read")
    status, _, body = call("GET", f"{sidecar.fhir_base}/ExplanationOfBenefit?patient={member}&_count=50", bearer)
    assert status == 200, body[:500]
    received = {e["resource"]["id"]: e["resource"] for e in json.loads(body).get("entry", [])}
    found = {}
    for kind, name in CARIN_EXAMPLES.items():
        stored_id = locations[urns[f"ExplanationOfBenefit/{name}"]].split("/")[1]
        found[kind] = (recent(examples[f"ExplanationOfBenefit/{name}"], today), received[stored_id])
    return found


@pytest.mark.parametrize("kind", ["inpatient", "outpatient", "pharmacy", "professional", "oral"])
def test_a_claim_in_its_basis_view_adds_no_carin_2_0_0_error_but_for_the_amounts_it_leaves_out(validator, claims,
                                                                                                kind):
    original, basis = claims[kind]
    assert claim_kind(basis) == kind
    profile = f"{C4BB}C4BB-ExplanationOfBenefit-{CLOSEST_CARIN[kind]}|2.0.0"
    # The Basis profile basis names is CARIN BB 2.1.0+, in no package here: the 2.0.0 profile stands in for it.
    stand_in = {**basis, "meta": {**basis["meta"], "profile": [profile]}}
    # CARIN's own example is the control: what it already fails offline (a narrative entity, a taxonomy value set
    # no package holds) is not the view's doing.
    inherited = set(errors(validator, original, profile))
    added = [e for e in errors(validator, stand_in, profile) if e not in inherited and not FINANCIAL.search(e)]
    assert_none({"basis view": added})


def test_validating_claims_as_exported_names_their_basis_profiles_as_unknown_and_exits_three(validator, claims,
                                                                                           tmp_path):
    (tmp_path / "ExplanationOfBenefit.ndjson").write_text("\n".join(json.dumps(basis) for _, basis in claims.values()))
    out = io.StringIO()
    status = write_report(validator, list(read_inputs([tmp_path])), [], out)
    report = out.getvalue()
    assert status == 3, report
    assert "5 resource(s): 0 with errors" in report
    assert all(f"{profile} (1)" in report for profile in BASIS_PROFILES.values()), report


def test_the_capability_statement_conforms_to_r4(validator, sidecar):
    status, _, body = call("GET", f"{sidecar.fhir_base}/metadata")
    assert status == 200
    assert_conforms(validator, json.loads(body))


def outcome_answers(sidecar, bearer: str) -> dict[str, tuple[int, bytes]]:
    """Error answers of each kind the sidecar gives: by the bearer check, the gate, the operations."""
    def answer(method: str, path: str, bearer_token: str | None, body: dict | None = None) -> tuple[int, bytes]:
        status, _, content = call(method, f"{sidecar.fhir_base}/{path}", bearer_token, body)
        return status, content

    return {
        "no-token": answer("GET", "Patient", None),
        "bad-token": answer("GET", "Patient", "not-a-token"),
        "not-allowed": answer("DELETE", "Patient/1", bearer),
        "missing-scope": answer("POST", "Patient/$member-match", bearer, parameters(patient(["A"], "B", "1980-01-01"))),
        "unknown-group": answer("GET", "Group/no-such-group", bearer),
        "bad-search": answer("GET", "Patient?_elements=id", bearer),
    }


def test_operation_outcomes_conform_to_r4(validator, sidecar):
    _, bearer = client_token(sidecar, "system/*.read")
    answers = outcome_answers(sidecar, bearer)
    assert all(status >= 400 for status, _ in answers.values()), {k: s for k, (s, _) in answers.items()}
    found = {kind: errors(validator, json.loads(body)) for kind, (_, body) in answers.items()}
    assert_none(found)


async def test_operation_outcomes_of_hapi_unreachable_silent_or_garbled_conform_to_r4(validator, aiohttp_client,
                                                                                     tmp_path):
    async def silent(reader, writer):
        await asyncio.sleep(5)
        writer.close()

    async def garbage(reader, writer):
        await reader.read(100)
        writer.write(b"THIS IS NOT HTTP\r\n\r\n")
        await writer.drain()
        writer.close()

    answers = {}
    down = settings_for(f"http://127.0.0.1:{free_port()}/fhir", tmp_path / "down")
    client, auth = await authorized_client(aiohttp_client, down)
    for name, path, headers in (("search", "/fhir/Patient?name=x", auth), ("metadata", "/fhir/metadata", {})):
        resp = await client.get(path, headers=headers)
        answers[f"unreachable {name}"] = (resp.status, await resp.json(content_type=None))
    for name, handler, timeout in (("silent", silent, 0.3), ("garbled", garbage, 60.0)):
        server, base = await serve_raw(handler)
        async with server:
            client, auth = await authorized_client(aiohttp_client, settings_for(base, tmp_path / name, timeout))
            resp = await client.get("/fhir/Patient", headers=auth)
            answers[name] = (resp.status, await resp.json(content_type=None))
    assert {name: status for name, (status, _) in answers.items()} == {
        "unreachable search": 503, "unreachable metadata": 503, "silent": 504, "garbled": 502}
    assert_none({name: errors(validator, outcome) for name, (_, outcome) in answers.items()})


def test_member_match_refusals_conform_to_r4(validator, sidecar):
    _, bearer = client_token(sidecar, MATCH_SCOPE)
    malformed = parameters(patient(["A"], "B", "1980-13-01"))
    unknown = parameters(patient(["Nobody"], f"Unknown{uuid.uuid4().hex[:8]}", "1950-01-01"))
    found = {}
    for name, body in (("malformed", malformed), ("not-found", unknown)):
        status, _, answer = call("POST", f"{sidecar.fhir_base}/Patient/$member-match", bearer, body)
        assert status in (400, 422), answer[:300]
        found[name] = errors(validator, json.loads(answer))
    assert_none(found)


def test_validation_after_start_takes_milliseconds_per_resource(validator, matched, capsys):
    resources = [matched.answer_hrex_1_0, matched.stored_consent] * 10
    started = time.monotonic()
    for resource in resources:
        validator.validate(resource)
    per_resource = (time.monotonic() - started) * 1000 / len(resources)
    with capsys.disabled():
        print(f"\nvalidator: started in {validator.startup_ms / 1000:.1f} s, {per_resource:.1f} ms per resource")
    assert per_resource < 500


def without_basis_profiles(bundle: dict) -> dict:
    """The Bundle with its claims' CARIN Basis profile claims taken out: no package here defines those profiles, and
    the validator refuses to go on without a claimed profile."""
    copy = json.loads(json.dumps(bundle))
    for entry in copy.get("entry", []):
        meta = entry["resource"].get("meta", {})
        if "profile" in meta:
            meta["profile"] = [p for p in meta["profile"] if p not in set(BASIS_PROFILES.values())]
    return copy


def bundle_errors(validator: Validator, bundle: dict) -> list[str]:
    """Errors in what the sidecar builds around the resources it relays: the Bundle, its links and entries, and what
    it generated (a Transmitter Provenance, `urn:uuid:`). The relayed resources are the test data as stored; the
    export tests validate released data against its profiles."""
    generated = {i for i, e in enumerate(bundle.get("entry", [])) if e["fullUrl"].startswith("urn:uuid:")}
    relayed = re.compile(r"Bundle\.entry\[(\d+)\]\.resource")
    return [e for e in errors(validator, without_basis_profiles(bundle))
            if not ((m := relayed.search(e)) and int(m[1]) not in generated)]


async def test_the_sidecars_own_search_and_everything_pages_conform_to_r4(validator, anonymous, sidecar, token_url,
                                                                         history):
    """The gate builds these Bundles itself (its own paging, links, the Transmitter Provenance on `$everything`)."""
    headers = await partner_headers(anonymous, token_url, history, REGULAR)

    async def get(url: str) -> dict:
        async with anonymous.get(url, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json(content_type=None)

    pages = {"search": await get(f"{sidecar.fhir_base}/Observation?patient={history.patient_id}&_count=1"),
             "everything": await get(f"{sidecar.fhir_base}/Patient/{history.patient_id}/$everything?_count=5")}
    for name in ("search", "everything"):
        pages[f"{name}, next page"] = await get(next(link["url"] for link in pages[name]["link"]
                                                     if link["relation"] == "next"))
    assert_none({name: bundle_errors(validator, bundle) for name, bundle in pages.items()})
    generated = [e["resource"] for e in pages["everything"]["entry"] if e["fullUrl"].startswith("urn:uuid:")]
    assert_conforms(validator, generated[0], PDEX_PROVENANCE)
