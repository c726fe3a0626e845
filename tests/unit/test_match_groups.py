"""Member Match Groups as the PDex 2.2.0 profiles have them, and how submitted Patients are contained."""
from __future__ import annotations

from sidecar.matching.match_groups import MATCH_GROUP, NO_MATCH_GROUP, build_groups, contain, containable

PAYER = {"type": "Organization", "identifier": {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}}


def patient(patient_id: str | None = "1", family: str = "Ames", **extra) -> dict:
    found = {"resourceType": "Patient", "name": [{"family": family, "given": ["Ann"]}], "birthDate": "1980-01-02",
             **extra}
    return {**found, "id": patient_id} if patient_id is not None else found


def member(submitted: dict | None) -> dict:
    return {"MemberPatient": submitted} if submitted is not None else {}


def built(members: list[dict], done: dict[int, tuple[str, str | None]]):
    return build_groups("job1", "Organization/requester", PAYER, "2026-12-05", members, done)


def test_every_group_is_an_actual_group_of_persons_managed_by_this_payer_organization():
    groups = built([member(patient("a")), member(patient("b")), member(patient("c"))],
                   {0: ("match", "p1"), 1: ("nomatch", None), 2: ("consent", None)}).groups
    assert set(groups) == {"match", "nomatch", "consentconstraint"}
    for code, group in groups.items():
        assert (group["type"], group["actual"], group["managingEntity"]) == ("person", True, PAYER)
        assert group["meta"]["profile"] == [MATCH_GROUP if code == "match" else NO_MATCH_GROUP]
        assert group["characteristic"][0]["code"]["coding"][0]["code"] == code
        assert group["characteristic"][0]["exclude"] is False
        assert group["characteristic"][0]["valueReference"]["identifier"]["value"] == "Organization/requester"


def test_matched_members_group_is_emitted_even_when_nobody_matched():
    groups = built([member(patient())], {0: ("nomatch", None)}).groups
    assert groups["match"]["quantity"] == 0 and "member" not in groups["match"]
    assert "consentconstraint" not in groups


def test_a_contained_patient_keeps_its_submitted_id_and_loses_the_meta_a_contained_resource_may_not_carry():
    submitted = patient("member-7", meta={"versionId": "3", "lastUpdated": "2026-01-01T00:00:00Z",
                                          "security": [{"code": "R"}], "profile": ["http://example.org/p"]})
    group = built([member(submitted)], {0: ("match", "p1")}).groups["match"]
    assert group["contained"] == [{**submitted, "meta": {"profile": ["http://example.org/p"]}}]
    entity = group["member"][0]["entity"]
    assert entity["reference"] == "Patient/p1"
    assert entity["extension"][0]["valueReference"] == {"reference": "#member-7"}


def test_a_meta_with_nothing_else_is_dropped_from_the_contained_patient():
    assert "meta" not in containable(patient(meta={"versionId": "1", "lastUpdated": "2026-01-01T00:00:00Z"}))


def test_the_consent_constrained_group_says_nothing_about_why():
    group = built([member(patient())], {0: ("consent", None)}).groups["consentconstraint"]
    assert set(group) == {"resourceType", "meta", "identifier", "type", "actual", "code", "characteristic",
                          "managingEntity", "quantity", "contained", "member"}
    assert group["member"] == [{"entity": {"reference": "#1", "extension": [
        {"url": "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/base-ext-match-parameters",
         "valueReference": {"reference": "#1"}}]}}]


def test_the_same_patient_submitted_twice_is_contained_once_and_named_by_both_members():
    contained, names, renamed = contain([(0, patient("1")), (1, patient("1"))])
    assert [c["id"] for c in contained] == ["1"] and names[0] == names[1] == {"reference": "#1"}
    assert renamed == []


def test_a_different_patient_with_an_id_already_contained_gets_its_position_appended_and_a_warning():
    result = built([member(patient("1", "Ames")), member(patient("1", "Bell")), member(patient("1-mb2", "Cole"))],
                   {0: ("match", "p1"), 1: ("match", "p2"), 2: ("match", "p3")})
    group = result.groups["match"]
    assert [(c["id"], c["name"][0]["family"]) for c in group["contained"]] == [
        ("1", "Ames"), ("1-mb2-2", "Bell"), ("1-mb2", "Cole")], "a made id never takes one a member submitted"
    assert [m["entity"]["extension"][0]["valueReference"]["reference"] for m in group["member"]] == [
        "#1", "#1-mb2-2", "#1-mb2"]
    assert len(result.warnings) == 1 and "MatchedMembers" in result.warnings[0] and "(MemberBundles 2)" in \
        result.warnings[0]


def test_ids_only_need_to_be_unique_within_one_group():
    groups = built([member(patient("1", "Ames")), member(patient("1", "Bell"))],
                   {0: ("match", "p1"), 1: ("nomatch", None)})
    assert [c["id"] for c in groups.groups["match"]["contained"]] == ["1"]
    assert [c["id"] for c in groups.groups["nomatch"]["contained"]] == ["1"]
    assert groups.warnings == []


def test_a_patient_without_an_id_is_given_one_by_its_position():
    contained, names, renamed = contain([(4, patient(None))])
    assert contained[0]["id"] == "mb5" and names[4] == {"reference": "#mb5"} and renamed == []


def test_a_patient_that_cannot_be_contained_unaltered_is_named_by_position():
    not_fhir = patient(birthDate="1980-13-45")
    nested = patient(contained=[{"resourceType": "Organization", "id": "o"}])
    group = built([member(not_fhir), member(nested), member(None)],
                  {0: ("nomatch", None), 1: ("nomatch", None), 2: ("nomatch", None)}).groups["nomatch"]
    assert "contained" not in group
    assert [m["entity"]["extension"][0]["valueReference"] for m in group["member"]] == [
        {"display": "MemberBundle 1"}, {"display": "MemberBundle 2"}, {"display": "MemberBundle 3"}]


def member_with_coverage(submitted: dict, subscriber_id: str) -> dict:
    return {"MemberPatient": submitted, "CoverageToMatch": {
        "resourceType": "Coverage", "id": "9", "meta": {"versionId": "2"}, "status": "active",
        "subscriberId": subscriber_id, "beneficiary": {"reference": "Patient/1"}, "payor": [{"display": "Old Plan"}]}}


def test_one_patient_submitted_with_two_coverages_has_each_coverage_contained_and_referenced():
    group = built([member_with_coverage(patient(), "A-1"), member_with_coverage(patient(), "B-2")],
                  {0: ("match", "p1"), 1: ("match", "p1")}).groups["match"]
    coverages = {c["id"]: c for c in group["contained"] if c["resourceType"] == "Coverage"}
    assert {c["subscriberId"] for c in coverages.values()} == {"A-1", "B-2"}
    assert all(c["beneficiary"] == {"reference": "#1"} and "meta" not in c for c in coverages.values())
    for entry, subscriber in zip(group["member"], ("A-1", "B-2")):
        url, reference = entry["entity"]["extension"][1]["url"], entry["entity"]["extension"][1]["valueReference"]
        assert url == "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/base-ext-match-coverage"
        assert coverages[reference["reference"][1:]]["subscriberId"] == subscriber


def test_one_patient_submitted_twice_with_the_same_coverage_has_no_coverage_contained():
    group = built([member_with_coverage(patient(), "A-1"), member_with_coverage(patient(), "A-1")],
                  {0: ("nomatch", None), 1: ("nomatch", None)}).groups["nomatch"]
    assert [c["resourceType"] for c in group["contained"]] == ["Patient"]
    assert all(len(entry["entity"]["extension"]) == 1 for entry in group["member"])


def test_different_patients_with_different_coverages_have_no_coverage_contained():
    group = built([member_with_coverage(patient("a"), "A-1"), member_with_coverage(patient("b", "Bell"), "B-2")],
                  {0: ("match", "p1"), 1: ("match", "p2")}).groups["match"]
    assert {c["resourceType"] for c in group["contained"]} == {"Patient"}
