"""Reading a partner's `$bulk-member-match` Groups back to our members, and when a member is sent again."""
from __future__ import annotations

from sidecar.client.connection import retry_after
from sidecar.client.match_at_partner import MATCH_EXTENSION, due, outcomes_of_groups
from sidecar.client.member_requests import MemberRequest
from sidecar.store import exchanges as ex

CODES = "http://hl7.org/fhir/us/davinci-pdex/CodeSystem/PdexMultiMemberMatchResultCS"


def request(member: str, family: str, changed_at: float = 100.0) -> MemberRequest:
    patient = {"resourceType": "Patient", "name": [{"family": family, "given": ["A"]}], "birthDate": "1980-01-01",
               "identifier": [{"system": "urn:payer-b:member", "value": member}]}
    return MemberRequest(member, patient, {}, None, {}, changed_at)


def group(code: str, members: list[tuple[str, dict]], group_id: str = "g1") -> dict:
    contained = [{**patient, "id": f"m{n}"} for n, (_, patient) in enumerate(members)]
    return {"resourceType": "Group", "id": group_id, "code": {"coding": [{"system": CODES, "code": code}]},
            "contained": contained,
            "member": [{"entity": {"reference": target, "extension": [
                {"url": MATCH_EXTENSION, "valueReference": {"reference": f"#m{n}"}}]}}
                for n, (target, _) in enumerate(members)]}


def test_members_are_found_by_their_contained_patient_even_when_its_id_changed():
    one, two, three = request("b1", "Ames"), request("b2", "Bell"), request("b3", "Cole")
    answer = [group("match", [("Patient/a9", one.patient)], "g-match"),
              group("nomatch", [("#m0", two.patient)], "g-no"),
              group("consentconstraint", [("#m0", three.patient)], "g-consent")]
    outcomes = {o.member: o for o in outcomes_of_groups(answer, [one, two, three])}
    assert (outcomes["b1"].state, outcomes["b1"].partner_patient, outcomes["b1"].export_scope) == (
        ex.MATCHED, "a9", "Group/g-match")
    assert outcomes["b2"].state == ex.NO_MATCH
    assert outcomes["b3"].state == ex.CONSENT_REFUSED


def test_a_member_the_answer_leaves_out_is_not_matched_and_will_be_retried():
    outcomes = outcomes_of_groups([group("match", [])], [request("b1", "Ames")])
    assert outcomes[0].state == ex.NO_MATCH


def exchange(state: str, updated_at: float = 200.0, next_attempt: float | None = None) -> ex.Exchange:
    return ex.Exchange("payer-a", "b1", state, None, None, None, 1, next_attempt, 0, updated_at)


def test_a_member_never_sent_is_due():
    assert due(request("b1", "Ames"), None)


def test_a_member_with_data_is_not_matched_again():
    assert not due(request("b1", "Ames", changed_at=999.0), exchange(ex.INGESTED))


def test_a_refused_member_is_sent_again_once_our_data_changed():
    assert not due(request("b1", "Ames", changed_at=100.0), exchange(ex.NEEDS_IDENTIFIERS))
    assert due(request("b1", "Ames", changed_at=300.0), exchange(ex.NEEDS_IDENTIFIERS))


def test_a_member_not_found_is_retried_when_its_time_comes():
    assert not due(request("b1", "Ames"), exchange(ex.NO_MATCH, next_attempt=1000.0), now=500.0)
    assert due(request("b1", "Ames"), exchange(ex.NO_MATCH, next_attempt=1000.0), now=1500.0)


def test_retry_after_reads_seconds_and_caps_them():
    assert retry_after({"Retry-After": "7"}, 2.0) == 7.0
    assert retry_after({"Retry-After": "86400"}, 2.0) == 120.0
    assert retry_after({}, 2.0) == 2.0


def test_a_malformed_answer_leaves_members_not_matched_instead_of_failing_the_pull():
    one, two = request("b1", "Ames"), request("b2", "Bell")
    without_id = group("match", [("Patient/a9", one.patient)])
    del without_id["id"]
    garbled = {**group("match", [("Patient/a8", two.patient)]), "code": "match", "member": "everyone"}
    outcomes = outcomes_of_groups([without_id, garbled, {"resourceType": "Group", "code": {"coding": "x"}}],
                                  [one, two])
    assert [(o.state, o.partner_patient) for o in outcomes] == [(ex.NO_MATCH, None), (ex.NO_MATCH, None)]
