"""`$bulk-member-match` kick-off: the Parameters envelope's shape is checked up front, naming the element."""
from __future__ import annotations

import pytest

from sidecar.matching.bulk import members_of
from sidecar.matching.operation import BadRequest, parse

PATIENT = {"resourceType": "Patient", "name": [{"family": "Doe"}]}


def bundle(*parts: object) -> dict:
    return {"name": "MemberBundle", "part": list(parts)}


def envelope(*parameters: object) -> dict:
    return {"resourceType": "Parameters", "parameter": list(parameters)}


def refusal(body: object) -> BadRequest:
    with pytest.raises(BadRequest) as raised:
        members_of(body)
    return raised.value


def test_each_member_bundle_becomes_its_parts_by_name():
    assert members_of(envelope(bundle({"name": "MemberPatient", "resource": PATIENT}))) == [
        {"MemberPatient": PATIENT}]


@pytest.mark.parametrize("parameter", [{"name": "MemberBundle"}, "MemberBundle"], ids=["object", "string"])
def test_a_parameter_element_that_is_not_an_array_is_refused(parameter):
    assert refusal({"resourceType": "Parameters", "parameter": parameter}).expression == "Parameters.parameter"


@pytest.mark.parametrize("parameter", ["MemberBundle", 7, None, ["x"]])
def test_a_parameter_that_is_not_an_object_is_refused(parameter):
    assert refusal(envelope(parameter)).expression == "Parameters.parameter[0]"


@pytest.mark.parametrize("name", [None, 5, ["MemberBundle"], {"x": 1}])
def test_a_parameter_name_that_is_not_a_string_is_refused(name):
    assert refusal(envelope({"name": name, "part": []})).expression == "Parameters.parameter[0].name"


def test_an_unknown_parameter_is_refused():
    assert refusal(envelope({"name": "Other"})).expression == "Parameters.parameter[0].name"


@pytest.mark.parametrize("part", [{"name": "MemberPatient"}, "MemberPatient"], ids=["object", "string"])
def test_a_part_element_that_is_not_an_array_is_refused(part):
    assert refusal(envelope({"name": "MemberBundle", "part": part})).expression == "Parameters.parameter[0].part"


@pytest.mark.parametrize("part", ["MemberPatient", 3, None])
def test_a_part_that_is_not_an_object_is_refused(part):
    assert refusal(envelope(bundle(part))).expression == "Parameters.parameter[0].part[0]"


def test_a_part_name_that_is_not_a_string_is_refused():
    assert refusal(envelope(bundle({"name": {"x": 1}, "resource": PATIENT}))).expression == \
        "Parameters.parameter[0].part[0].name"


@pytest.mark.parametrize("resource", ["Patient", [PATIENT], 1])
def test_a_part_resource_that_is_not_an_object_is_refused(resource):
    assert refusal(envelope(bundle({"name": "MemberPatient", "resource": resource}))).expression == \
        "Parameters.parameter[0].part[0].resource"


def test_a_part_given_twice_is_refused():
    part = {"name": "MemberPatient", "resource": PATIENT}
    assert refusal(envelope(bundle(part, part))).expression == "Parameters.parameter[0].part[1]"


def test_an_envelope_without_member_bundles_is_refused():
    assert refusal(envelope()).expression == "Parameters.parameter[MemberBundle]"


@pytest.mark.parametrize("name", [["MemberPatient"], {"a": 1}, 3])
def test_member_match_refuses_a_parameter_name_that_is_not_a_string(name):
    with pytest.raises(BadRequest):
        parse(envelope({"name": name, "resource": PATIENT}))
