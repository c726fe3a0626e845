"""Which member a resource belongs to, and the per-resource check that every answer to a partner goes through."""
from __future__ import annotations

import pytest

from sidecar.gate.caller import Caller
from sidecar.gate.compartment import member_of, patient_id_of_reference
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
