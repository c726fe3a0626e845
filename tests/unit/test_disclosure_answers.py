"""Answers as a whole: sensitivity found through references, provenance and reference data following member data."""
from __future__ import annotations

from datetime import datetime, timezone

from sidecar.disclosure.answers import INCLUDE, MATCH, AnswerFilter
from sidecar.disclosure.resolver import ReferenceSensitivity
from sidecar.disclosure.rules import REGULAR, SENSITIVE, DisclosureRules
from sidecar.disclosure.sensitivity import SensitiveData

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
DATA = SensitiveData.load()
PART2_LABEL = {"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "42CFRPart2"}]}

STORE = {
    "Condition/sud": {"resourceType": "Condition", "id": "sud", "subject": {"reference": "Patient/p1"},
                      "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F10.20"}]}},
    "Encounter/visit": {"resourceType": "Encounter", "id": "visit", "subject": {"reference": "Patient/p1"},
                        "period": {"end": "2026-01-01"}, "diagnosis": [{"condition": {"reference": "Condition/sud"}}]},
    "Organization/program": {"resourceType": "Organization", "id": "program", "meta": PART2_LABEL},
    "Organization/clinic": {"resourceType": "Organization", "id": "clinic"},
    "Observation/plain": {"resourceType": "Observation", "id": "plain", "subject": {"reference": "Patient/p1"},
                          "effectiveDateTime": "2026-01-01"},
}


class FakeHapi:
    def __init__(self) -> None:
        self.asked: list[tuple[str, list[str]]] = []

    async def __call__(self, resource_type: str, ids: list[str]) -> list[dict]:
        self.asked.append((resource_type, sorted(ids)))
        return [STORE[f"{resource_type}/{i}"] for i in ids if f"{resource_type}/{i}" in STORE]


def answer_filter(hapi: FakeHapi, ttl: float = 30.0) -> AnswerFilter:
    return AnswerFilter(DisclosureRules(DATA, timezone.utc), ReferenceSensitivity(DATA, hapi, ttl), hapi)


def observation(id_: str, **extra) -> dict:
    return {"resourceType": "Observation", "id": id_, "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2026-02-01", **extra}


async def test_sensitivity_is_followed_through_references_two_hops_away():
    hapi = FakeHapi()
    made_in_visit = observation("o1", encounter={"reference": "Encounter/visit"})
    outcome = await answer_filter(hapi).filter({"p1": REGULAR}, [(made_in_visit, MATCH)], NOW)
    assert outcome.released == [None]
    assert outcome.withheld == [{"resource": "Observation/o1", "rule": "sensitive-reference", "element": "reference",
                                 "code": "Encounter/visit (sensitive-reference)"}]
    assert ("Encounter", ["visit"]) in hapi.asked and ("Condition", ["sud"]) in hapi.asked


async def test_looked_up_references_are_remembered():
    hapi = FakeHapi()
    filter_ = answer_filter(hapi)
    made_in_visit = observation("o1", encounter={"reference": "Encounter/visit"})
    await filter_.filter({"p1": REGULAR}, [(made_in_visit, MATCH)], NOW)
    asked = len(hapi.asked)
    await filter_.filter({"p1": REGULAR}, [(made_in_visit, MATCH)], NOW)
    assert len(hapi.asked) == asked


async def test_an_included_organization_leaves_only_with_released_data_pointing_at_it():
    clinic = STORE["Organization/clinic"]
    lonely = await answer_filter(FakeHapi()).filter({"p1": REGULAR}, [(clinic, INCLUDE)], NOW)
    assert lonely.released == [None] and lonely.withheld[0]["rule"] == "not-referenced-by-released-data"
    seen_there = observation("o2", performer=[{"reference": "Organization/clinic"}])
    outcome = await answer_filter(FakeHapi()).filter({"p1": REGULAR}, [(seen_there, MATCH), (clinic, INCLUDE)], NOW)
    assert outcome.released == [seen_there, clinic]


async def test_a_part2_program_is_included_only_under_sensitive_consent():
    program = STORE["Organization/program"]
    treated_there = observation("o3", performer=[{"reference": "Organization/program"}])
    regular = await answer_filter(FakeHapi()).filter({"p1": REGULAR}, [(treated_there, MATCH), (program, INCLUDE)], NOW)
    assert regular.released == [None, None]
    sensitive = await answer_filter(FakeHapi()).filter({"p1": SENSITIVE}, [(treated_there, MATCH), (program, INCLUDE)],
                                                       NOW)
    assert sensitive.released == [treated_there, program]


async def test_reference_data_asked_for_directly_is_directory_data_unless_sensitive():
    outcome = await answer_filter(FakeHapi()).filter(
        {"p1": SENSITIVE}, [(STORE["Organization/clinic"], MATCH), (STORE["Organization/program"], MATCH)], NOW)
    assert outcome.released == [STORE["Organization/clinic"], None]


async def test_provenance_follows_the_resources_it_targets():
    about_plain = {"resourceType": "Provenance", "id": "pv1", "target": [{"reference": "Observation/plain"}]}
    about_visit = {"resourceType": "Provenance", "id": "pv2", "target": [{"reference": "Encounter/visit"}]}
    outcome = await answer_filter(FakeHapi()).filter({"p1": REGULAR}, [(about_plain, MATCH), (about_visit, MATCH)], NOW)
    assert outcome.released == [about_plain, None]
    assert outcome.withheld == [{"resource": "Provenance/pv2", "rule": "provenance-target-not-released",
                                 "element": "target"}]


async def test_provenance_of_another_members_data_never_leaves():
    other = {"resourceType": "Provenance", "id": "pv3", "target": [{"reference": "Observation/plain"}]}
    outcome = await answer_filter(FakeHapi()).filter({"p2": SENSITIVE}, [(other, MATCH)], NOW)
    assert outcome.released == [None]


async def test_claims_count_as_transformed():
    claim = {"resourceType": "ExplanationOfBenefit", "id": "e1", "use": "claim", "patient": {"reference": "Patient/p1"},
             "billablePeriod": {"end": "2026-01-01"}, "total": [{"amount": {"value": 1}}]}
    outcome = await answer_filter(FakeHapi()).filter({"p1": REGULAR}, [(claim, MATCH)], NOW)
    assert outcome.transformed == 1 and "total" not in outcome.released[0]
