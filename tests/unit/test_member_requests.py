"""What we send a partner about a member, and which members the scheduled run-off pulls cover."""
from __future__ import annotations

from datetime import date

from sidecar.client.member_requests import MemberRequest, is_source_consent, names_partner
from sidecar.store.partners import Partner

PARTNER = Partner("payer-a", "https://a.example/fhir", "us", "/keys/a.jwks", ("http://npi|111",), "system/*.read")


def request(coverage: dict | None = None) -> MemberRequest:
    patient = {"resourceType": "Patient", "id": "b-5", "meta": {"versionId": "3"}, "name": [{"family": "Ames"}]}
    prior = coverage or {"resourceType": "Coverage", "id": "c1", "status": "active",
                         "beneficiary": {"reference": "Patient/b-5"}, "payor": [{"display": "payer-a"}]}
    consent = {"resourceType": "Consent", "id": "k1", "status": "active", "patient": {"reference": "Patient/b-5"},
               "performer": [{"reference": "Patient/b-5"}, {"reference": "Organization/us"}]}
    return MemberRequest("b-5", patient, prior, None, consent, 0.0)


def test_the_parts_point_at_the_member_patient_by_a_local_reference():
    parts = {p["name"]: p["resource"] for p in request().parts()}
    assert parts["MemberPatient"]["id"] == "b-5" and "meta" not in parts["MemberPatient"]
    assert parts["CoverageToMatch"]["beneficiary"] == {"reference": "Patient/b-5"}
    assert parts["Consent"]["patient"] == {"reference": "Patient/b-5"}
    assert parts["Consent"]["performer"] == [{"reference": "Patient/b-5"}, {"reference": "Organization/us"}]
    assert "CoverageToLink" not in parts


def test_coverage_still_in_force_at_the_partner_is_concurrent():
    assert request().concurrent(date(2026, 11, 23))
    ended = {"resourceType": "Coverage", "status": "active", "period": {"end": "2026-06-30"}}
    assert not request(ended).concurrent(date(2026, 11, 23))
    assert not request({"resourceType": "Coverage", "status": "cancelled"}).concurrent(date(2026, 11, 23))


def test_the_partner_is_recognised_by_name_identifier_or_display():
    assert names_partner({"identifier": {"system": "http://npi", "value": "111"}}, PARTNER)
    assert names_partner({"display": "payer-a"}, PARTNER)
    assert not names_partner({"reference": "Organization/someone-else"}, PARTNER)


def test_only_an_active_consent_naming_the_partner_as_source_counts():
    actor = {"role": {"coding": [{"code": "performer"}]}, "reference": {"identifier": {"system": "http://npi",
                                                                                        "value": "111"}}}
    consent = {"resourceType": "Consent", "status": "active", "provision": {"actor": [actor]}}
    assert is_source_consent(consent, PARTNER)
    assert not is_source_consent({**consent, "status": "inactive"}, PARTNER)
    recipient = {**actor, "role": {"coding": [{"code": "IRCP"}]}}
    assert not is_source_consent({**consent, "provision": {"actor": [recipient]}}, PARTNER)
