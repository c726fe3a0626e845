"""Reference data in a partner's export: which types are added, how references and their policies are kept, and
how a reference resource pointed to from another file of the export is judged."""
from __future__ import annotations

from sidecar.auth.scopes import ScopeSet
from sidecar.disclosure.answers import INCLUDE, MATCH
from sidecar.disclosure.rules import REGULAR, SENSITIVE
from sidecar.export.references import REFERENCE_TYPES, PointedTo, exported_reference_types
from tests.unit.test_disclosure_answers import NOW, STORE, FakeHapi, answer_filter, observation

EVERYTHING = ScopeSet.parse("system/*.read")


def test_without_type_every_readable_reference_type_is_added():
    assert exported_reference_types([("exportType", "x")], EVERYTHING) == list(REFERENCE_TYPES)


def test_a_type_list_adds_only_the_reference_types_it_names():
    pairs = [("_type", "Encounter, Organization"), ("_type", "Location")]
    assert exported_reference_types(pairs, EVERYTHING) == ["Location", "Organization"]


def test_a_reference_type_the_token_may_not_read_is_not_added():
    scopes = ScopeSet.parse("system/Encounter.read system/Practitioner.rs")
    assert exported_reference_types([], scopes) == ["Practitioner"]


def test_only_references_to_the_chosen_types_are_kept():
    pointed = PointedTo(["Organization"])
    pointed.note({"Organization/a": REGULAR, "Practitioner/b": REGULAR, "Condition/c": REGULAR})
    assert list(pointed.batches("Organization", 10)) == [{"Organization/a": REGULAR}]
    assert list(pointed.batches("Practitioner", 10)) == []


def test_the_most_permissive_policy_pointing_to_a_reference_wins_whatever_the_order():
    pointed = PointedTo(["Organization"])
    pointed.note({"Organization/a": REGULAR, "Organization/b": SENSITIVE})
    pointed.note({"Organization/a": SENSITIVE, "Organization/b": REGULAR})
    assert list(pointed.batches("Organization", 10)) == [{"Organization/a": SENSITIVE, "Organization/b": SENSITIVE}]


def test_references_come_in_batches_of_at_most_the_size_in_id_order():
    pointed = PointedTo(["Location"])
    pointed.note({f"Location/{i}": REGULAR for i in "ecadb"})
    assert [list(batch) for batch in pointed.batches("Location", 2)] == [
        ["Location/a", "Location/b"], ["Location/c", "Location/d"], ["Location/e"]]


async def test_the_outcome_names_what_released_data_points_to_and_not_what_withheld_data_does():
    seen_there = observation("o1", performer=[{"reference": "Organization/clinic"}])
    too_old = observation("o2", effectiveDateTime="2001-01-01", performer=[{"reference": "Organization/old"}])
    outcome = await answer_filter(FakeHapi()).filter({"p1": REGULAR}, [(seen_there, MATCH), (too_old, MATCH)], NOW)
    assert outcome.pointed_to == {"Organization/clinic": REGULAR}


async def test_reference_data_pointed_to_elsewhere_leaves_under_that_policy():
    clinic = STORE["Organization/clinic"]
    outcome = await answer_filter(FakeHapi()).filter({}, [(clinic, INCLUDE)], NOW, {"Organization/clinic": REGULAR})
    assert outcome.released == [clinic]


async def test_a_part2_program_pointed_to_elsewhere_leaves_only_under_sensitive_consent():
    program = STORE["Organization/program"]
    regular = await answer_filter(FakeHapi()).filter({}, [(program, INCLUDE)], NOW, {"Organization/program": REGULAR})
    sensitive = await answer_filter(FakeHapi()).filter({}, [(program, INCLUDE)], NOW,
                                                       {"Organization/program": SENSITIVE})
    assert regular.released == [None] and sensitive.released == [program]
