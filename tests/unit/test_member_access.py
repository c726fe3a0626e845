"""Which member a resource belongs to, and the per-resource check that every answer to a partner goes through."""
from __future__ import annotations

import pytest

from sidecar.access.caller import Caller
from sidecar.access.compartment import member_of, patient_id_of_reference
from sidecar.access.guard import PageOwners, filter_bundle, page_ids
from sidecar.auth.scopes import ScopeSet
from sidecar.store.clients import Client

PARTNER = Client("partner", "Organization/b", "system/*.read", {"keys": []}, None, False, True, 0)


def partner(patients: set[str], scopes: str = "system/*.read") -> Caller:
    return Caller(PARTNER, ScopeSet.parse(scopes), {p: "regular" for p in patients})


def observation(patient: str) -> dict:
    return {"resourceType": "Observation", "id": f"obs-{patient}", "subject": {"reference": f"Patient/{patient}"}}


@pytest.mark.parametrize("reference, expected", [
    ("Patient/123", "123"),
    ("https://payer.example/fhir/Patient/abc-1", "abc-1"),
    ("Patient/123/_history/4", "123"),
    ("Group/123", None),
    ("Patient/", None),
    (None, None),
    (42, None),
])
def test_patient_reference_forms(reference, expected):
    assert patient_id_of_reference(reference) == expected


def test_member_of_follows_each_types_patient_element():
    assert member_of({"resourceType": "Patient", "id": "p1"}) == "p1"
    assert member_of(observation("p2")) == "p2"
    assert member_of({"resourceType": "Coverage", "beneficiary": {"reference": "Patient/p3"},
                      "subscriber": {"reference": "Patient/p9"}}) == "p3"
    assert member_of({"resourceType": "ExplanationOfBenefit", "patient": {"reference": "Patient/p4"}}) == "p4"
    assert member_of({"resourceType": "Observation", "subject": {"reference": "Group/g"}}) is None
    assert member_of({"resourceType": "Provenance", "target": [{"reference": "Patient/p5"}]}) is None


def test_partner_sees_granted_members_and_reference_data_only():
    caller = partner({"p1"})
    assert caller.may_see(observation("p1"))
    assert not caller.may_see(observation("p2"))
    assert not caller.may_see({"resourceType": "Observation", "id": "no-subject"})
    assert caller.may_see({"resourceType": "Organization", "id": "o"})
    assert not caller.may_see({"resourceType": "Binary", "id": "b"})
    assert not caller.may_see({"resourceType": "Claim", "patient": {"reference": "Patient/p1"}})
    assert not caller.may_see("not a resource")


def test_provenance_passes_the_member_check_to_be_decided_by_what_it_targets():
    assert partner({"p1"}).may_see({"resourceType": "Provenance", "target": [{"reference": "Encounter/e"}]})


def test_scopes_limit_types_even_for_granted_members():
    caller = partner({"p1"}, scopes="system/Patient.read")
    assert caller.may_see({"resourceType": "Patient", "id": "p1"})
    assert not caller.may_see(observation("p1"))


def test_bundle_filter_drops_other_members_and_the_total_that_would_count_them():
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": 3, "entry": [
        {"resource": observation("p1"), "search": {"mode": "match"}},
        {"resource": observation("p2"), "search": {"mode": "match"}},
        {"resource": {"resourceType": "OperationOutcome", "issue": []}, "search": {"mode": "outcome"}},
    ]}
    filtered = filter_bundle(partner({"p1"}), bundle)
    assert [e["resource"]["resourceType"] for e in filtered["entry"]] == ["Observation", "OperationOutcome"]
    assert "total" not in filtered


def test_bundle_filter_keeps_total_when_nothing_was_dropped():
    bundle = {"resourceType": "Bundle", "total": 1, "entry": [{"resource": observation("p1")}]}
    assert filter_bundle(partner({"p1"}), bundle)["total"] == 1


def test_bundle_with_nothing_visible_has_no_entry_element():
    bundle = {"resourceType": "Bundle", "entry": [{"resource": observation("p2")}]}
    assert "entry" not in filter_bundle(partner({"p1"}), bundle)


def test_page_ids_are_read_from_links_and_owned_by_one_client():
    bundle = {"link": [{"relation": "self", "url": "https://x/fhir/Observation?patient=1"},
                       {"relation": "next", "url": "https://x/fhir?_getpages=abc-123&_getpagesoffset=2&_count=2"}]}
    assert page_ids(bundle) == ["abc-123"]
    owners = PageOwners(capacity=2)
    owners.remember("abc-123", "partner")
    assert owners.owned_by("abc-123", "partner") and not owners.owned_by("abc-123", "other")
    owners.remember("d", "x")
    owners.remember("e", "x")
    assert not owners.owned_by("abc-123", "partner"), "the oldest page is forgotten past capacity"
