"""Bulk export kick-off parameters: what is accepted, normalised, left out or refused."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from sidecar.config import Settings
from sidecar.export.request import BadExport, pairs_of_parameters, parse_export

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
ALLOWED = ["Condition", "Observation", "Patient"]


def parse(pairs, **kwargs):
    return parse_export(pairs, "group", "g1", ALLOWED, NOW, timezone.utc, 5, True, **kwargs)


def test_without_type_a_partner_gets_every_type_it_may_receive():
    assert parse([]).types == ALLOWED


def test_repeated_and_comma_separated_types_are_one_list():
    assert parse([("_type", "Patient,Observation"), ("_type", "Condition")]).types == ["Patient", "Observation",
                                                                                         "Condition"]


def test_types_the_client_may_not_receive_are_left_out_and_named():
    params = parse([("_type", "Patient,Claim")])
    assert params.types == ["Patient"] and params.left_out_types == ["Claim"]


def test_a_type_list_with_nothing_exportable_is_refused():
    with pytest.raises(BadExport, match="Claim"):
        parse([("_type", "Claim")])


@pytest.mark.parametrize("output_format", ["application/fhir+ndjson", "application/ndjson", "ndjson"])
def test_the_three_ndjson_spellings_are_accepted(output_format):
    parse([("_outputFormat", output_format)])


def test_by_default_a_since_older_than_the_look_back_is_passed_on_unchanged():
    assert Settings().export_since_floor is False, "PDex 2.2.0 §pdex-176: never silently rewritten"
    params = parse_export([("_since", "2001-01-01T00:00:00Z")], "group", "g1", ALLOWED, NOW, timezone.utc, 5,
                          Settings().export_since_floor)
    assert params.since == "2001-01-01T00:00:00Z" and not params.since_raised
    assert ("_since", "2001-01-01T00:00:00Z") in params.upstream_params()


def test_with_the_pdex_2_1_0_setting_a_since_older_than_the_look_back_is_raised_to_its_start():
    params = parse([("_since", "2001-01-01T00:00:00Z")])
    assert params.since == "2021-11-23T12:00:00Z" and params.since_raised


def test_a_recent_since_passes_unchanged():
    params = parse([("_since", "2026-01-01T00:00:00Z")])
    assert params.since == "2026-01-01T00:00:00Z" and not params.since_raised


@pytest.mark.parametrize("pairs, fragment", [
    ([("_since", "2026-01-01")], "instant"), ([("exportType", "other#thing")], "exportType"),
    ([("_typeFilter", "Observation?_include=Observation:subject")], "_include"),
    ([("_typeFilter", "Claim?status=active")], "_typeFilter"), ([("patient", "Group/1")], "Patient/id"),
    ([("_elements", "id")], "_elements"),
])
def test_bad_parameters_are_refused_with_a_reason(pairs, fragment):
    with pytest.raises(BadExport, match=fragment):
        parse(pairs)


def test_post_parameters_become_pairs_including_references():
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "_type", "valueString": "Patient"}, {"name": "patient", "valueReference": {"reference": "Patient/7"}},
        {"name": "_since", "valueInstant": "2026-01-01T00:00:00Z"}]}
    assert pairs_of_parameters(body) == [("_type", "Patient"), ("patient", "Patient/7"),
                                         ("_since", "2026-01-01T00:00:00Z")]


def test_an_unrestricted_client_without_type_leaves_the_choice_to_hapi():
    params = parse([], unrestricted=True)
    assert params.types == [] and ("_type", "") not in params.upstream_params()


@pytest.mark.parametrize("parameter", [{"name": "_type", "valueString": "Patient"}, "_type=Patient"],
                         ids=["object", "string"])
def test_a_post_kickoff_whose_parameter_is_not_an_array_is_refused_naming_it(parameter):
    with pytest.raises(BadExport) as raised:
        pairs_of_parameters({"resourceType": "Parameters", "parameter": parameter})
    assert raised.value.expression == "Parameters.parameter"


@pytest.mark.parametrize("parameter", ["_type", 1, ["_type", "Patient"]])
def test_a_post_kickoff_parameter_that_is_not_an_object_is_refused_naming_it(parameter):
    with pytest.raises(BadExport) as raised:
        pairs_of_parameters({"resourceType": "Parameters", "parameter": [parameter]})
    assert raised.value.expression == "Parameters.parameter[0]"


@pytest.mark.parametrize("name", [None, 3, ["_type"]])
def test_a_post_kickoff_parameter_name_that_is_not_a_string_is_refused_naming_it(name):
    with pytest.raises(BadExport) as raised:
        pairs_of_parameters({"resourceType": "Parameters", "parameter": [{"name": name, "valueString": "Patient"}]})
    assert raised.value.expression == "Parameters.parameter[0].name"


@pytest.mark.parametrize("query", [
    "Observation?patient=Patient/other", "Observation?subject:Patient=other", "Observation?_id=1",
    "Observation?_has:Group:member:_id=g2", "Observation?encounter.patient=Patient/other",
    "Observation?subject.identifier=x", "Patient?link=Patient/other"])
def test_a_type_filter_that_could_widen_the_member_set_is_refused(query):
    with pytest.raises(BadExport, match="_typeFilter"):
        parse([("_typeFilter", query)])


@pytest.mark.parametrize("query", ["Observation", "?code=x", "Observation?", "Observation?code",
                                   "Observation?code=", "Observation?code=%ff", "Observation?code=a&&status=final",
                                   "Observation?code=a\x01b", "Claim?status=active",
                                   "Observation?code=" + "x" * 1000])
def test_a_type_filter_that_is_not_type_and_query_for_an_exported_type_is_refused(query):
    with pytest.raises(BadExport, match="_typeFilter"):
        parse([("_typeFilter", query)])


def test_a_type_filter_for_a_type_outside_the_asked_types_is_refused():
    with pytest.raises(BadExport, match="_typeFilter"):
        parse([("_type", "Patient"), ("_typeFilter", "Observation?status=final")])


@pytest.mark.parametrize("parameter", ["_sort", "_revinclude", "_count", "_elements", "_filter", "_text"])
def test_a_type_filter_with_a_result_or_server_specific_parameter_is_refused(parameter):
    with pytest.raises(BadExport, match=parameter):
        parse([("_typeFilter", f"Observation?{parameter}=x")])


def test_a_type_filter_of_plain_search_parameters_is_taken_as_given():
    query = "Observation?code=http%3A%2F%2Floinc.org%7C29463-7&date=ge2024-01-01"
    assert parse([("_typeFilter", query)]).type_filters == [query]
