"""A partner's search is an allow-list: the type's own parameters, listed modifiers and prefixes, validated values."""
import pytest

from sidecar.gate.caller import PARTNER_TYPES
from sidecar.gate.query import (MAX_COUNT, QueryRefused, SearchCatalog, canonical_everything, canonical_search,
                                check_plain_read)

CATALOG = SearchCatalog.from_capability_statement({"rest": [{"resource": [
    {"type": "Observation", "searchParam": [
        {"name": "code", "type": "token"}, {"name": "date", "type": "date"}, {"name": "patient", "type": "reference"},
        {"name": "encounter", "type": "reference"}, {"name": "value-quantity", "type": "quantity"},
        {"name": "value-string", "type": "string"}, {"name": "_has", "type": "string"},
        {"name": "code-value-concept", "type": "composite"}]},
    {"type": "Encounter", "searchParam": [{"name": "patient", "type": "reference"}]},
    {"type": "Provenance", "searchParam": [{"name": "target", "type": "reference"}]},
]}]})


def search(*pairs: tuple[str, str]):
    return canonical_search("Observation", list(pairs), CATALOG, PARTNER_TYPES)


def refused(*pairs: tuple[str, str]) -> QueryRefused:
    with pytest.raises(QueryRefused) as caught:
        search(*pairs)
    return caught.value


@pytest.mark.parametrize("name", ["_elements", "_elements:exclude", "_summary", "_summary:text", "_total",
                                  "_contained", "_containedType", "_filter", "_query", "_offset", "_has",
                                  "_has:Observation:patient:code", "_list", "_text", "_content", "unknown",
                                  "_getpagesoffset"])
def test_result_shaping_and_unknown_parameters_are_refused_by_name(name):
    assert refused((name, "x")).parameter.startswith(name.split(":")[0])


def test_chained_parameters_are_refused():
    assert "chained" in str(refused(("encounter.date", "lt2015")))


def test_a_modifier_not_listed_for_the_type_of_parameter_is_refused():
    assert refused(("code:below", "http://loinc.org|1")).parameter == "code:below"


def test_known_parameters_with_listed_modifiers_pass_in_a_fixed_order():
    query = search(("date", "ge2022-01-01"), ("code:not", "x|1"), ("value-string:exact", "a"), ("_format", "json"))
    assert query.pairs == (("code:not", "x|1"), ("date", "ge2022-01-01"), ("value-string:exact", "a"))
    assert query.count == 20


@pytest.mark.parametrize("value", ["2022-13-01", "yesterday", "ge", "2022-01-01T25:00:00Z"])
def test_dates_are_validated(value):
    assert refused(("date", value)).parameter == "date"


def test_quantities_are_validated():
    assert search(("value-quantity", "gt5.4|http://unitsofmeasure.org|mg")).pairs
    assert refused(("value-quantity", "lots")).parameter == "value-quantity"


@pytest.mark.parametrize("value", ["0", "-1", "abc", str(MAX_COUNT + 1), "1.5"])
def test_count_outside_its_bounds_is_refused(value):
    assert refused(("_count", value)).parameter == "_count"


def test_count_is_the_page_size_and_not_sent_as_a_search_parameter():
    query = search(("_count", "3"))
    assert query.count == 3 and query.pairs == ()


def test_empty_values_and_control_characters_are_refused():
    assert refused(("code", "")).parameter == "code"
    assert refused(("code", "a\nb")).parameter == "code"


def test_includes_name_a_reference_parameter_of_the_searched_type():
    assert search(("_include", "Observation:encounter")).pairs == (("_include", "Observation:encounter"),)
    assert refused(("_include", "Observation:code")).parameter == "_include"
    assert refused(("_include", "Encounter:patient")).parameter == "_include"
    assert refused(("_include", "*")).parameter == "_include"


def test_revincludes_of_internal_types_are_refused():
    assert search(("_revinclude", "Provenance:target")).pairs
    assert refused(("_revinclude", "Consent:patient")).parameter == "_revinclude"


def test_sort_takes_known_parameters_only():
    assert search(("_sort", "-date,_lastUpdated")).pairs == (("_sort", "-date,_lastUpdated"),)
    assert refused(("_sort", "secret")).parameter == "_sort"


def test_a_reads_parameters_other_than_format_are_refused():
    check_plain_read([("_format", "json"), ("_pretty", "true")])
    with pytest.raises(QueryRefused) as caught:
        check_plain_read([("_elements", "id")])
    assert caught.value.parameter == "_elements"


def test_everything_takes_its_own_parameters_only():
    assert canonical_everything([("_since", "2024-01-01T00:00:00Z"), ("_count", "5")]).count == 5
    with pytest.raises(QueryRefused):
        canonical_everything([("_elements", "id")])
    with pytest.raises(QueryRefused):
        canonical_everything([("_type", "Observation?x")])
