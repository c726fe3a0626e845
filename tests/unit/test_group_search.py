"""A partner's Group search: which parameters and values are taken, and how characteristic-value-reference matches."""
from __future__ import annotations

import pytest

from sidecar.matching.groups import BadSearch, _has_value_references, check_search

GROUP = {"resourceType": "Group", "characteristic": [
    {"valueReference": {"identifier": {"system": "urn:pdex-sidecar:organization", "value": "Organization/p1"}}}]}


def test_the_pdex_parameters_with_sane_values_are_taken():
    check_search([("code", "match"), ("identifier", "urn:x|1"), ("characteristic", "match"),
                  ("characteristic-value-reference", "Organization/p1"), ("_id", "a1,b-2"), ("_count", "10")])


@pytest.mark.parametrize("name", ["code", "identifier", "characteristic", "characteristic-value-reference", "_id",
                                  "_count"])
def test_an_empty_value_is_refused_naming_the_parameter(name):
    with pytest.raises(BadSearch, match=f"^{name} needs a value"):
        check_search([(name, "")])


def test_an_overlong_value_is_refused_naming_the_parameter():
    with pytest.raises(BadSearch, match="^identifier "):
        check_search([("identifier", "x" * 257)])


def test_a_value_with_a_control_character_is_refused_naming_the_parameter():
    with pytest.raises(BadSearch, match="^code "):
        check_search([("code", "match\x00")])


@pytest.mark.parametrize("count", ["abc", "-1", "1001", "1.5", "²"])
def test_a_count_that_is_no_count_within_bounds_is_refused(count):
    with pytest.raises(BadSearch, match="^_count "):
        check_search([("_count", count)])


def test_an_id_that_is_no_fhir_id_is_refused():
    with pytest.raises(BadSearch, match="^_id "):
        check_search([("_id", "a,b/c")])


def test_an_unknown_parameter_is_not_supported():
    with pytest.raises(BadSearch, match="member") as raised:
        check_search([("member", "Patient/1")])
    assert raised.value.code == "not-supported"


@pytest.mark.parametrize("value", ["Organization/p1", "urn:pdex-sidecar:organization|Organization/p1",
                                   "Organization/other,Organization/p1"])
def test_a_value_reference_matches_by_identifier_value_or_system_and_value(value):
    assert _has_value_references(GROUP, [value])


def test_a_value_reference_to_another_organization_does_not_match():
    assert not _has_value_references(GROUP, ["Organization/other"])
