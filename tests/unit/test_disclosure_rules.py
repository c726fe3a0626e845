"""The disclosure rules one at a time: members, prior authorizations, claims, and sensitive data under each consent."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from sidecar.disclosure.claims import non_financial
from sidecar.disclosure.claims import BASIS_PROFILES, non_financial
from sidecar.disclosure.rules import REGULAR, SENSITIVE, DisclosureRules, policy_of
from sidecar.disclosure.sensitivity import PACKAGED_DATA, Reason, SensitiveData, SensitiveDataError

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
DATA = SensitiveData.load()
RULES = DisclosureRules(DATA, timezone.utc)
WHEN_ADJUDICATED = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/base-ext-when-adjudicated"
PA_PROFILE = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-priorauthorization"
PDEX = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/"
PAS = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def decide(resource: dict, policy: str = REGULAR, sensitive_refs: dict | None = None, rules=RULES):
    return rules.decide(resource, rules.context(NOW, {"p1": policy}, sensitive_refs))


def condition(code: str, system: str = ICD10, **extra) -> dict:
    return {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
            "recordedDate": "2025-02-01", "code": {"coding": [{"system": system, "code": code}]}, **extra}


def prior_auth(status: str = "active", outcome: str = "complete", changed: str | None = None, **extra) -> dict:
    adjudication = [{"category": {"coding": [{"code": "submitted"}]}}]
    if changed:
        adjudication[0]["extension"] = [{"url": WHEN_ADJUDICATED, "valueDateTime": changed}]
    return {"resourceType": "ExplanationOfBenefit", "id": "pa", "use": "preauthorization", "status": status,
            "outcome": outcome, "patient": {"reference": "Patient/p1"}, "created": "2019-01-01",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type",
                                 "code": "professional"}]},
            "meta": {"lastUpdated": "2019-01-01T00:00:00Z"}, "adjudication": adjudication, **extra}


# --- members ---------------------------------------------------------------------------------------------------

def test_a_resource_of_a_member_not_granted_never_leaves():
    observation = {"resourceType": "Observation", "subject": {"reference": "Patient/p2"}, "effectiveDateTime": "2026-01-01"}
    reason = decide(observation).reason
    assert reason.rule == "member-not-granted" and reason.element == "subject"


def test_types_outside_payer_to_payer_data_never_leave():
    claim = {"resourceType": "Claim", "patient": {"reference": "Patient/p1"}, "created": "2026-01-01"}
    assert decide(claim).reason.rule == "not-payer-to-payer-data"


def test_entered_in_error_records_never_leave():
    assert decide(condition("E11.9", status="entered-in-error")).reason.rule == "entered-in-error"


@pytest.mark.parametrize("uri, policy", [
    ("http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-hrex-consent.html#sensitive", SENSITIVE),
    ("http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-hrex-consent.html#regular", REGULAR),
    ("sensitive", SENSITIVE), ("something-else", REGULAR), (None, REGULAR),
])
def test_consent_policy_names(uri, policy):
    assert policy_of(uri) == policy


# --- prior authorizations -------------------------------------------------------------------------------------

def test_a_pending_prior_authorization_leaves_whatever_its_age():
    assert decide(prior_auth(outcome="queued", changed="2019-05-01")).released


def test_an_authorization_in_effect_now_leaves():
    assert decide(prior_auth(changed="2023-01-01", preAuthRefPeriod=[{"start": "2023-01-01", "end": "2027-01-01"}])).released


def test_an_authorization_that_expired_long_ago_is_withheld():
    decision = decide(prior_auth(changed="2023-01-01", preAuthRefPeriod=[{"start": "2023-01-01", "end": "2024-01-01"}]))
    assert decision.reason.as_dict() == {"rule": "prior-authorization-window",
                                         "element": "adjudication.extension[when-adjudicated]", "code": "2023-01-01"}


@pytest.mark.parametrize("changed, expected", [
    ("2025-11-23", True),             # exactly twelve months
    ("2025-11-23T08:00:00Z", True),   # the first day, earlier than the time of the request
    ("2025-11-22", False),            # a day more
    ("2025-12-24T09:00:00Z", True),   # eleven months
    ("2025-10-23", False),            # thirteen months
])
def test_a_decided_prior_authorization_leaves_for_twelve_months_after_its_status_changed(changed, expected):
    assert decide(prior_auth(changed=changed)).released is expected


def test_the_latest_status_change_counts():
    pa = prior_auth(changed="2020-01-01")
    pa["item"] = [{"sequence": 1, "adjudication": [{"category": {"coding": [{"code": "submitted"}]}, "extension": [
        {"url": WHEN_ADJUDICATED, "valueDateTime": "2026-06-01T00:00:00Z"}]}]}]
    assert decide(pa).released


def test_without_a_status_change_date_last_updated_stands_in():
    assert not decide(prior_auth()).released
    recent = prior_auth()
    recent["meta"] = {"lastUpdated": "2026-10-01T00:00:00Z"}
    assert decide(recent).released


def test_a_cancelled_prior_authorization_leaves_only_within_the_window():
    assert decide(prior_auth(status="cancelled", changed="2026-08-01")).released
    assert not decide(prior_auth(status="cancelled", outcome="queued", changed="2024-08-01")).released


def test_drug_prior_authorizations_are_withheld_unless_enabled():
    drug = prior_auth(outcome="queued")
    drug["type"]["coding"][0]["code"] = "pharmacy"
    assert decide(drug).reason.rule == "drug-prior-authorization"
    assert decide(drug, rules=DisclosureRules(DATA, timezone.utc, drug_prior_authorizations=True)).released


def test_the_pdex_profile_marks_a_prior_authorization_too():
    pa = prior_auth(outcome="queued")
    del pa["use"]
    pa["meta"]["profile"] = [PA_PROFILE]
    assert decide(pa).released


def test_predeterminations_are_not_payer_to_payer_data():
    eob = prior_auth(outcome="queued")
    eob["use"] = "predetermination"
    assert decide(eob).reason.rule == "not-payer-to-payer-data"


def test_use_decides_over_the_pdex_profile():
    predetermination = prior_auth(outcome="queued", use="predetermination")
    predetermination["meta"]["profile"] = [PA_PROFILE]
    assert decide(predetermination).reason.as_dict() == {"rule": "not-payer-to-payer-data", "element": "use",
                                                         "code": "predetermination"}


def test_a_claim_naming_the_pdex_profile_is_a_claim():
    claim = prior_auth(use="claim", billablePeriod={"start": "2026-01-02", "end": "2026-01-02"})
    claim["meta"]["profile"] = [PA_PROFILE]
    assert decide(claim).reason.rule == "non-financial-view"


def reviewed(code: str, ig: str = PDEX) -> dict:
    """An adjudication carrying a review action with an X12 306 code (A1 certified in total, A3 not certified)."""
    return {"category": {"coding": [{"code": "submitted"}]}, "extension": [{"url": ig + "extension-reviewAction",
            "extension": [{"url": "number", "valueString": "AUTH0001"},
                          {"url": ig + "extension-reviewActionCode", "valueCodeableConcept": {"coding": [
                              {"system": "https://codesystem.x12.org/005010/306", "code": code}]}}]}]}


def adjudication(category: str, **extra) -> dict:
    return {"category": {"coding": [{"code": category}]}, **extra}


def items(*adjudications: list[dict]) -> list[dict]:
    return [{"sequence": n, "adjudication": entries} for n, entries in enumerate(adjudications, 1)]


def test_a_prior_authorization_in_error_is_denied_and_never_leaves():
    assert decide(prior_auth(outcome="error", changed="2026-10-01")).reason.as_dict() == {
        "rule": "prior-authorization-denied", "element": "outcome", "code": "error"}


def test_a_prior_authorization_not_certified_never_leaves_even_while_its_period_runs():
    denied = prior_auth(outcome="queued", changed="2026-10-01", adjudication=[reviewed("A3")],
                        preAuthRefPeriod=[{"start": "2026-10-01", "end": "2027-10-01"}])
    assert decide(denied).reason.as_dict() == {"rule": "prior-authorization-denied",
                                               "element": "adjudication[0].extension[reviewAction]", "code": "A3"}


def test_a_prior_authorization_with_every_item_not_certified_is_denied():
    denied = prior_auth(changed="2026-10-01", item=items([reviewed("A3", PAS)], [reviewed("A3", PAS)]))
    assert decide(denied).reason.element == "item[0].adjudication[0].extension[reviewAction]"


def test_a_denied_adjudication_category_denies():
    denied = prior_auth(changed="2026-10-01", item=items([adjudication("denied")]))
    assert decide(denied).reason.as_dict() == {"rule": "prior-authorization-denied",
                                               "element": "item[0].adjudication[0].category", "code": "denied"}


def test_an_item_given_only_a_denial_reason_is_denied():
    denied = prior_auth(changed="2026-10-01", item=items([adjudication("denialreason", reason={"coding": [
        {"system": "https://x12.org/codes/claim-adjustment-reason-codes", "code": "50"}]})]))
    assert decide(denied).reason.as_dict() == {"rule": "prior-authorization-denied",
                                               "element": "item[0].adjudication", "code": "denialreason"}


def test_a_denial_reason_beside_allowed_units_is_a_partial_approval():
    partial = prior_auth(changed="2026-10-01", item=items([adjudication("denialreason"),
                                                           adjudication("allowedunits", value=2)]))
    assert decide(partial).released


def test_a_review_action_outweighs_a_denial_reason():
    certified = prior_auth(changed="2026-10-01", item=items([reviewed("A1"), adjudication("denialreason")]))
    assert decide(certified).released


def test_a_partly_denied_prior_authorization_leaves():
    partial = prior_auth(changed="2026-10-01", item=items([reviewed("A1")], [reviewed("A3")]))
    assert decide(partial).released


# --- claims ---------------------------------------------------------------------------------------------------

MONEY = {"value": 120.0, "currency": "USD"}


def test_a_claim_leaves_without_any_amount():
    claim = {
        "resourceType": "ExplanationOfBenefit", "id": "eob", "use": "claim", "status": "active",
        "patient": {"reference": "Patient/p1"}, "billablePeriod": {"start": "2025-01-02", "end": "2025-01-02"},
        "meta": {"profile": ["http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-ExplanationOfBenefit-Professional-NonClinician"]},
        "type": {"coding": [{"code": "professional"}]},
        "diagnosis": [{"sequence": 1, "diagnosisCodeableConcept": {"coding": [{"system": ICD10, "code": "E11.9"}]}}],
        "item": [{"sequence": 1, "servicedDate": "2025-01-02", "productOrService": {"coding": [{"code": "99213"}]},
                  "unitPrice": MONEY, "net": MONEY, "factor": 1,
                  "adjudication": [
                      {"category": {"coding": [{"code": "submitted"}]}, "amount": MONEY},
                      {"category": {"coding": [{"code": "denialreason"}]}, "reason": {"coding": [{"code": "CO45"}]},
                       "amount": MONEY},
                      {"category": {"coding": [{"code": "allowedunits"}]}, "value": 2}],
                  "detail": [{"sequence": 1, "net": MONEY, "adjudication": [
                      {"category": {"coding": [{"code": "paidtoprovider"}]}, "amount": MONEY}]}]}],
        "adjudication": [{"category": {"coding": [{"code": "benefit"}]}, "amount": MONEY}],
        "total": [{"category": {"coding": [{"code": "submitted"}]}, "amount": MONEY}],
        "payment": {"amount": MONEY, "date": "2025-02-01"},
        "benefitBalance": [{"category": {"coding": [{"code": "medical"}]}, "financial": []}],
    }
    decision = decide(claim)
    assert decision.reason.rule == "non-financial-view"
    assert decision.resource == {
        "resourceType": "ExplanationOfBenefit", "id": "eob", "use": "claim", "status": "active",
        "patient": {"reference": "Patient/p1"}, "billablePeriod": {"start": "2025-01-02", "end": "2025-01-02"},
        "meta": {"profile": [BASIS_PROFILES["professional"]]},
        "type": {"coding": [{"code": "professional"}]},
        "diagnosis": [{"sequence": 1, "diagnosisCodeableConcept": {"coding": [{"system": ICD10, "code": "E11.9"}]}}],
        "item": [{"sequence": 1, "servicedDate": "2025-01-02", "productOrService": {"coding": [{"code": "99213"}]},
                  "adjudication": [
                      {"category": {"coding": [{"code": "denialreason"}]}, "reason": {"coding": [{"code": "CO45"}]}},
                      {"category": {"coding": [{"code": "allowedunits"}]}, "value": 2}],
                  "detail": [{"sequence": 1}]}],
    }
    assert "total" in claim and claim["item"][0]["net"] == MONEY, "the stored resource is not changed"


@pytest.mark.parametrize("type_code, sub_type, kind", [
    ("institutional", "inpatient", "inpatient"), ("institutional", "outpatient", "outpatient"),
    ("professional", None, "professional"), ("oral", None, "oral"), ("pharmacy", None, "pharmacy"),
])
def test_each_kind_of_claim_names_its_basis_profile(type_code, sub_type, kind):
    claim = {"resourceType": "ExplanationOfBenefit", "use": "claim", "type": {"coding": [{"code": type_code}]}}
    if sub_type:
        claim["subType"] = {"coding": [{"code": sub_type}]}
    assert non_financial(claim)[0]["meta"]["profile"] == [BASIS_PROFILES[kind]]


def test_a_claim_outside_the_five_years_is_withheld():
    claim = {"resourceType": "ExplanationOfBenefit", "use": "claim", "patient": {"reference": "Patient/p1"},
             "billablePeriod": {"start": "2020-03-01", "end": "2020-03-04"}}
    assert decide(claim).reason.rule == "five-year-lookback"


# --- sensitive data -------------------------------------------------------------------------------------------

def test_a_part2_label_withholds_under_regular_and_releases_under_sensitive():
    labelled = condition("E11.9", meta={"security": [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "42CFRPart2"}]})
    assert decide(labelled).reason.as_dict() == {
        "rule": "security-label", "element": "meta.security[0]",
        "code": "http://terminology.hl7.org/CodeSystem/v3-ActCode|42CFRPart2"}
    assert decide(labelled, SENSITIVE).released


def test_restricted_confidentiality_is_sensitive():
    restricted = condition("E11.9", meta={"security": [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}]})
    assert not decide(restricted).released


def test_normal_confidentiality_is_not():
    normal = condition("E11.9", meta={"security": [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "N"}]})
    assert decide(normal).released


def test_substance_use_diagnoses_are_sensitive_without_any_label():
    reason = decide(condition("F11.20")).reason
    assert reason.as_dict() == {"rule": "sensitive-code:sud", "element": "code.coding[0]", "code": f"{ICD10}|F11.20"}
    assert decide(condition("F11.20"), SENSITIVE).released


def test_nicotine_dependence_is_not_part2_data():
    assert decide(condition("F17.210")).released


def test_a_code_counts_only_in_its_own_code_system():
    assert decide(condition("1819", system="http://loinc.org")).released
    assert not decide(condition("1819", system=RXNORM)).released


def test_a_sensitive_drug_in_a_contained_medication_is_found():
    dispense = {"resourceType": "MedicationDispense", "subject": {"reference": "Patient/p1"},
                "whenHandedOver": "2026-01-01", "medicationReference": {"reference": "#m"},
                "contained": [{"resourceType": "Medication", "id": "m",
                               "code": {"coding": [{"system": RXNORM, "code": "1010604"}]}}]}
    assert decide(dispense).reason.element == "contained[0].code.coding[0]"


def test_a_sensitive_drug_named_only_in_text_is_found():
    request = {"resourceType": "MedicationRequest", "subject": {"reference": "Patient/p1"}, "authoredOn": "2026-01-01",
               "medicationCodeableConcept": {"coding": [{"system": "http://hl7.org/fhir/sid/ndc", "code": "12496-1208-1"}],
                                             "text": "Buprenorphine and naloxone sublingual film"}}
    assert decide(request).reason.as_dict() == {"rule": "sensitive-text:sud", "element": "medicationCodeableConcept.text",
                                                "code": "buprenorphine"}


@pytest.mark.parametrize("text", ["Suboxone 8 mg-2 mg sublingual film", "ZUBSOLV 5.7/1.4 MG", "Sublocade injection",
                                  "Vivitrol 380 mg", "Brixadi weekly", "Lucemyra 0.18 mg", "Antabuse 250 mg",
                                  "Campral DR 333 mg", "Methadose oral concentrate", "Dolophine 10 mg"])
def test_a_sud_drug_named_only_by_its_brand_is_found_in_any_case(text):
    request = {"resourceType": "MedicationRequest", "subject": {"reference": "Patient/p1"}, "authoredOn": "2026-01-01",
               "medicationCodeableConcept": {"coding": [{"system": "urn:local", "code": "7", "display": text}]}}
    assert decide(request).reason.rule == "sensitive-text:sud"


def test_pointing_at_a_sensitive_resource_makes_a_resource_sensitive():
    encounter = {"resourceType": "Encounter", "subject": {"reference": "Patient/p1"}, "period": {"end": "2026-01-01"},
                 "diagnosis": [{"condition": {"reference": "Condition/c9"}}]}
    refs = {"Condition/c9": Reason("sensitive-code:sud", "code.coding[0]", f"{ICD10}|F10.20")}
    assert decide(encounter, sensitive_refs=refs).reason.as_dict() == {
        "rule": "sensitive-reference", "element": "reference", "code": "Condition/c9 (sensitive-code:sud)"}
    assert decide(encounter, SENSITIVE, sensitive_refs=refs).released


def test_a_payer_marks_part2_programs_by_identifier(tmp_path: Path):
    for source in PACKAGED_DATA.glob("*.json"):
        (tmp_path / source.name).write_text(source.read_text())
    (tmp_path / "part2-organizations.json").write_text(json.dumps(
        {"identifiers": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}]}))
    data = SensitiveData.load(tmp_path)
    program = {"resourceType": "Organization", "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi",
                                                                "value": "1234567893"}]}
    assert data.direct(program).rule == "part2-program"
    assert data.direct({**program, "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1"}]}) is None


def test_only_the_chosen_categories_count():
    hiv = condition("B20")
    assert not decide(hiv).released
    only_sud = DisclosureRules(SensitiveData.load(categories=["sud"]), timezone.utc)
    assert decide(hiv, rules=only_sud).released


def test_a_missing_category_file_is_a_configuration_error():
    with pytest.raises(SensitiveDataError, match="no-such"):
        SensitiveData.load(categories=["sud", "no-such"])


@pytest.mark.parametrize("system, code", [
    ("urn:oid:2.16.840.1.113883.6.90", "F11.20"),     # ICD-10-CM
    ("urn:oid:2.16.840.1.113883.6.3", "F10.20"),      # ICD-10
    ("urn:oid:2.16.840.1.113883.6.96", "66590003"),   # SNOMED CT
    ("urn:oid:2.16.840.1.113883.6.88", "1819"),       # RxNorm
    ("urn:oid:2.16.840.1.113883.6.12", "99408"),      # CPT
    ("urn:oid:2.16.840.1.113883.6.285", "H0001"),     # HCPCS Level II
    ("urn:oid:2.16.840.1.113883.6.14", "H0001"),      # HCPCS
])
def test_a_sensitive_code_written_with_its_systems_oid_is_sensitive(system, code):
    assert decide(condition(code, system=system)).reason.rule == "sensitive-code:sud"


def test_a_code_system_written_with_a_trailing_slash_is_the_same_system():
    assert not decide(condition("F11.20", system="http://hl7.org/fhir/sid/icd-10-cm/")).released


def test_a_snomed_code_with_the_edition_in_its_system_is_sensitive():
    assert not decide(condition("66590003", system="http://snomed.info/sct/731000124108/version/20230301")).released


def test_an_unknown_oid_is_not_a_known_system():
    assert decide(condition("F11.20", system="urn:oid:1.2.3.4")).released


def test_a_security_label_written_with_its_systems_oid_counts():
    labelled = condition("E11.9", meta={"security": [
        {"system": "urn:oid:2.16.840.1.113883.5.4", "code": "42CFRPart2"}]})
    assert decide(labelled).reason.rule == "security-label"


def test_a_payers_value_set_may_name_a_system_by_its_oid(tmp_path: Path):
    for source in PACKAGED_DATA.glob("*.json"):
        (tmp_path / source.name).write_text(source.read_text())
    (tmp_path / "sud.json").write_text(json.dumps(
        {"category": "sud", "include": [{"systems": ["urn:oid:2.16.840.1.113883.6.90"], "codes": ["F1120"]}]}))
    rules = DisclosureRules(SensitiveData.load(tmp_path), timezone.utc)
    assert decide(condition("F11.20"), rules=rules).reason.rule == "sensitive-code:sud"


@pytest.mark.parametrize("code", ["F1020", "F10.20", "f10.20"])
def test_icd_codes_match_with_or_without_the_dot_and_in_any_case(code):
    assert not decide(condition(code)).released


def test_an_exact_code_does_not_match_a_longer_one():
    assert decide(condition("18190", system=RXNORM)).released


def test_a_display_with_escaped_quotes_is_still_read():
    request = {"resourceType": "MedicationRequest", "subject": {"reference": "Patient/p1"}, "authoredOn": "2026-01-01",
               "medicationCodeableConcept": {"coding": [{"system": "urn:local", "code": "7",
                                                         "display": 'the "blue" methadone tablet'}]}}
    assert decide(request).reason.rule == "sensitive-text:sud"


def test_network_status_adjudications_stay_in_the_basis_view_without_amounts():
    category = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudicationDiscriminator"
    status = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBPayerAdjudicationStatus"
    eob = {"resourceType": "ExplanationOfBenefit", "use": "claim", "type": {"coding": [{"code": "oral"}]},
           "adjudication": [{"category": {"coding": [{"system": category, "code": code}]},
                             "reason": {"coding": [{"system": status, "code": "innetwork"}]},
                             "amount": {"value": 1, "currency": "USD"}}
                            for code in ("billingnetworkstatus", "renderingnetworkstatus")]}
    view, _ = non_financial(eob)
    assert [a["category"]["coding"][0]["code"] for a in view["adjudication"]] == ["billingnetworkstatus",
                                                                                "renderingnetworkstatus"]
    assert all("amount" not in a for a in view["adjudication"])
