"""The demo data set, as a FHIR transaction Bundle of PUTs with fixed ids, so loading it twice changes nothing.

Dates are relative to the load date, so the data stays inside the five-year lookback whenever it is loaded.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

PAYER_ID = "demo-payer"
MEMBER_ID_SYSTEM = "https://demo-payer.example.org/member-id"
CLAIM_ID_SYSTEM = "https://demo-payer.example.org/claim-id"


@dataclass(frozen=True)
class DemoMember:
    key: str
    given: str
    family: str
    birth_date: str
    gender: str
    member_id: str


MEMBERS = (
    DemoMember("m1", "Maria", "Lopez", "1984-03-12", "female", "DP100001"),
    DemoMember("m2", "James", "O'Neil", "1971-11-02", "male", "DP100002"),
    DemoMember("m3", "Aiko", "Tanaka", "1999-07-25", "female", "DP100003"),
)


def _ref(resource_type: str, rid: str) -> dict:
    return {"reference": f"{resource_type}/{rid}"}


def _coding(system: str, code: str, display: str) -> dict:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _member_resources(m: DemoMember, today: date) -> list[dict]:
    pid = f"demo-{m.key}"

    def days(n: int) -> str:
        return (today - timedelta(days=n)).isoformat()

    patient = {
        "resourceType": "Patient", "id": pid,
        "identifier": [{"type": _coding("http://terminology.hl7.org/CodeSystem/v2-0203", "MB", "Member Number"),
                        "system": MEMBER_ID_SYSTEM, "value": m.member_id}],
        "name": [{"family": m.family, "given": [m.given]}],
        "gender": m.gender, "birthDate": m.birth_date,
        "address": [{"line": ["1 Main St"], "city": "Springfield", "state": "IL", "postalCode": "62701"}],
    }
    coverage = {
        "resourceType": "Coverage", "id": f"{pid}-coverage", "status": "active",
        "identifier": [{"system": MEMBER_ID_SYSTEM, "value": m.member_id}],
        "subscriberId": m.member_id, "beneficiary": _ref("Patient", pid), "subscriber": _ref("Patient", pid),
        "relationship": _coding("http://terminology.hl7.org/CodeSystem/subscriber-relationship", "self", "Self"),
        "period": {"start": days(3 * 365)}, "payor": [_ref("Organization", PAYER_ID)],
        "class": [{"type": _coding("http://terminology.hl7.org/CodeSystem/coverage-class", "plan", "Plan"),
                   "value": "GOLD-PPO", "name": "Gold PPO"}],
    }
    encounter = {
        "resourceType": "Encounter", "id": f"{pid}-enc1", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB",
                  "display": "ambulatory"},
        "type": [_coding("http://snomed.info/sct", "185349003", "Encounter for check up")],
        "subject": _ref("Patient", pid), "period": {"start": days(200), "end": days(200)},
    }
    condition = {
        "resourceType": "Condition", "id": f"{pid}-cond1",
        "clinicalStatus": _coding("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"),
        "category": [_coding("http://terminology.hl7.org/CodeSystem/condition-category", "encounter-diagnosis",
                             "Encounter Diagnosis")],
        "code": _coding("http://hl7.org/fhir/sid/icd-10-cm", "E11.9", "Type 2 diabetes mellitus without complications"),
        "subject": _ref("Patient", pid), "encounter": _ref("Encounter", f"{pid}-enc1"), "onsetDateTime": days(200),
        "recordedDate": days(200),
    }
    observation = {
        "resourceType": "Observation", "id": f"{pid}-a1c", "status": "final",
        "category": [_coding("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory",
                             "Laboratory")],
        "code": _coding("http://loinc.org", "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"),
        "subject": _ref("Patient", pid), "effectiveDateTime": days(200),
        "valueQuantity": {"value": 7.1, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"},
    }
    claim = {
        "resourceType": "ExplanationOfBenefit", "id": f"{pid}-eob1", "status": "active", "use": "claim",
        "identifier": [{"system": CLAIM_ID_SYSTEM, "value": f"{m.member_id}-C1"}],
        "type": _coding("http://terminology.hl7.org/CodeSystem/claim-type", "professional", "Professional"),
        "patient": _ref("Patient", pid), "created": days(190), "billablePeriod": {"start": days(200),
                                                                               "end": days(200)},
        "insurer": _ref("Organization", PAYER_ID), "provider": _ref("Organization", PAYER_ID),
        "outcome": "complete", "insurance": [{"focal": True, "coverage": _ref("Coverage", f"{pid}-coverage")}],
        "diagnosis": [{"sequence": 1, "diagnosisCodeableConcept": _coding("http://hl7.org/fhir/sid/icd-10-cm",
                                                                          "E11.9", "Type 2 diabetes")}],
        "item": [{"sequence": 1, "servicedDate": days(200),
                  "productOrService": _coding("http://www.ama-assn.org/go/cpt", "99214", "Office visit"),
                  "adjudication": [{"category": _coding(
                      "http://terminology.hl7.org/CodeSystem/adjudication", "submitted", "Submitted Amount"),
                      "amount": {"value": 180.0, "currency": "USD"}}]}],
        "total": [{"category": _coding("http://terminology.hl7.org/CodeSystem/adjudication", "submitted",
                                       "Submitted Amount"), "amount": {"value": 180.0, "currency": "USD"}}],
        "payment": {"amount": {"value": 126.0, "currency": "USD"}},
    }
    prior_auth = {
        "resourceType": "ExplanationOfBenefit", "id": f"{pid}-pa1", "status": "active", "use": "preauthorization",
        "identifier": [{"system": CLAIM_ID_SYSTEM, "value": f"{m.member_id}-PA1"}],
        "type": _coding("http://terminology.hl7.org/CodeSystem/claim-type", "professional", "Professional"),
        "patient": _ref("Patient", pid), "created": days(30), "insurer": _ref("Organization", PAYER_ID),
        "provider": _ref("Organization", PAYER_ID), "outcome": "complete", "preAuthRef": [f"PA-{m.member_id}"],
        "insurance": [{"focal": True, "coverage": _ref("Coverage", f"{pid}-coverage")}],
        "item": [{"sequence": 1, "productOrService": _coding("http://www.ama-assn.org/go/cpt", "97110",
                                                             "Therapeutic exercises")}],
    }
    return [patient, coverage, encounter, condition, observation, claim, prior_auth]


def demo_bundle(today: date | None = None) -> dict:
    today = today or date.today()
    payer = {"resourceType": "Organization", "id": PAYER_ID, "active": True, "name": "Demo Health Plan",
             "type": [_coding("http://terminology.hl7.org/CodeSystem/organization-type", "pay", "Payer")]}
    resources = [payer] + [r for m in MEMBERS for r in _member_resources(m, today)]
    return {
        "resourceType": "Bundle", "type": "transaction",
        "entry": [{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
                  for r in resources],
    }
