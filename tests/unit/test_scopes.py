"""SMART scopes: both syntaxes, operation scopes, and granting that never widens."""
from __future__ import annotations

import pytest

from sidecar.auth.scopes import ScopeError, ScopeSet, grant, parse_scope, parse_scopes


def granted(requested: str, allowed: str) -> str:
    return " ".join(s.render() for s in grant(parse_scopes(requested), parse_scopes(allowed)))


@pytest.mark.parametrize("text, resource_type, permissions", [
    ("system/Patient.read", "Patient", "rs"),
    ("system/*.read", "*", "rs"),
    ("system/*.write", "*", "cud"),
    ("system/*.*", "*", "cruds"),
    ("system/Observation.rs", "Observation", "rs"),
    ("system/Observation.r", "Observation", "r"),
    ("system/*.cruds", "*", "cruds"),
])
def test_v1_and_v2_scopes_parse_to_permissions(text, resource_type, permissions):
    scope = parse_scope(text)
    assert (scope.resource_type, scope.permissions) == (resource_type, permissions)


@pytest.mark.parametrize("text", [
    "system/Patient.sr",  # out of order
    "system/Patient.rr",
    "system/Patient.x",
    "patient/Patient.read",  # needs a launch context
    "user/*.read",
    "system/NotAType.read",
    "system/Patient.rs?identifier=x|1",  # constrained: refused, never widened
    "launch",
    "system/Patient.$not-an-operation",
])
def test_scopes_the_server_cannot_grant_as_written_are_errors(text):
    with pytest.raises(ScopeError):
        parse_scope(text)


def test_operation_scope_and_its_pdex_alias_name_the_same_operation():
    alias = parse_scope("http://hl7.org/fhir/us/davinci-hrex/OperationDefinition/member-match")
    plain = parse_scope("system/Patient.$member-match")
    assert (alias.resource_type, alias.operation) == (plain.resource_type, plain.operation) == \
        ("Patient", "$member-match")


def test_alias_is_granted_in_the_form_requested():
    alias = "http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/BulkMemberMatch"
    assert granted(alias, "system/Group.$bulk-member-match") == alias


@pytest.mark.parametrize("spelling", [
    "http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/BulkMemberMatch",  # PDex 2.2.0
    "http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/bulk-member-match",  # PDex 2.1.0
    "system/Group.$bulk-member-match",
])
@pytest.mark.parametrize("registered", [
    "http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/BulkMemberMatch",
    "http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/bulk-member-match",
    "system/Group.$bulk-member-match",
])
def test_every_bulk_member_match_spelling_is_granted_by_any_other_and_echoed_as_asked(spelling, registered):
    assert granted(spelling, registered) == spelling
    assert ScopeSet.parse(granted(spelling, registered)).allows_operation("Group", "$bulk-member-match")


def test_both_pdex_spellings_asked_together_are_both_echoed():
    both = ("http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/BulkMemberMatch "
            "http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/bulk-member-match")
    assert granted(both, "system/Group.$bulk-member-match") == both


@pytest.mark.parametrize("requested, allowed, expected", [
    ("system/*.read", "system/*.read", "system/*.read"),
    ("system/*.rs", "system/*.read", "system/*.rs"),
    ("system/*.*", "system/*.read", "system/*.read"),
    ("system/*.read", "system/Patient.rs", "system/Patient.read"),
    ("system/Patient.read", "system/*.r", "system/Patient.r"),  # v1 cannot say read-without-search
    ("system/Patient.read system/Observation.read", "system/Patient.read", "system/Patient.read"),
    ("system/Observation.read", "system/Patient.read", ""),
    ("system/Patient.$member-match", "system/*.read", ""),
    ("system/*.write", "system/*.read", ""),
    ("system/Patient.read system/Patient.rs", "system/*.read", "system/Patient.read system/Patient.rs"),
])
def test_grant_is_the_intersection_in_the_requested_syntax(requested, allowed, expected):
    assert granted(requested, allowed) == expected


def test_scope_set_answers_permission_questions():
    scopes = ScopeSet.parse("system/Patient.rs system/Observation.r system/Patient.$member-match")
    assert scopes.allows("Patient", "s") and scopes.allows("Observation", "r")
    assert not scopes.allows("Observation", "s") and not scopes.allows("Coverage", "r")
    assert scopes.allows_operation("Patient", "$member-match")
    assert not scopes.allows_operation("Group", "$bulk-member-match")
    assert not scopes.reads_everything
    assert ScopeSet.parse("system/*.read").reads_everything


MATCH_GROUPS = ("system.Group.u?code=http://hl7.org/fhir/us/davinci-pdex/ValueSet/PDexMultiMemberMatchResultVS"
                "|match")


def test_pdex_match_groups_scope_is_granted_as_asked_where_group_read_and_search_are_registered():
    assert granted(f"system/Patient.read {MATCH_GROUPS}", "system/*.read") == f"system/Patient.read {MATCH_GROUPS}"


def test_pdex_match_groups_scope_reads_and_searches_match_groups_only():
    scopes = ScopeSet.parse(MATCH_GROUPS)
    assert scopes.allows("Group", "r") and scopes.allows("Group", "s")
    assert not scopes.sees_all_groups() and not scopes.allows("Patient", "r")
    assert ScopeSet.parse(f"{MATCH_GROUPS} system/Group.rs").sees_all_groups()


def test_a_client_registered_for_match_groups_only_gets_no_wider_group_scope_than_that():
    assert granted("system/*.read", MATCH_GROUPS) == MATCH_GROUPS
    assert granted("system/Group.rs", MATCH_GROUPS) == MATCH_GROUPS


def test_pdex_match_groups_scope_is_not_granted_with_fewer_permissions_than_it_says():
    assert granted(MATCH_GROUPS, "system/Group.r") == ""


def test_other_constrained_group_scopes_are_still_refused():
    with pytest.raises(ScopeError):
        parse_scope(MATCH_GROUPS.replace("|match", "|nonmatch"))
