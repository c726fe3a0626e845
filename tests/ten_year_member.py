"""A member with ten years of history across every payer-to-payer type, each resource with its expected fate.

Every resource has a key and what should happen to it under a `#regular` and a `#sensitive` consent:
RELEASED, WITHHELD, or STRIPPED (a claim leaving as its non-financial Basis view; `stripped` holds that exact form).
Reference data (organizations, practitioners, medications...) has two expectations: when a partner asks for it
directly (`read`), and when it comes as an `_include` with the member's data (`include`, per consent).

Dates are counted back from today, never near a window boundary (boundaries are the unit tests' business).
The whole member is loaded into HAPI as one transaction with `urn:uuid` references.
"""
from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

RELEASED, WITHHELD, STRIPPED = "released", "withheld", "stripped"
REGULAR, SENSITIVE = "regular", "sensitive"

ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
HCPCS = "https://bluebutton.cms.gov/resources/codesystem/hcpcs"
CPT = "http://www.ama-assn.org/go/cpt"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
C4BB = "http://hl7.org/fhir/us/carin-bb/StructureDefinition/"
ADJUDICATION = "http://terminology.hl7.org/CodeSystem/adjudication"
C4BB_DISCRIMINATOR = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudicationDiscriminator"
WHEN_ADJUDICATED = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/base-ext-when-adjudicated"
PA_PROFILE = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-priorauthorization"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
PART2_LABELS = [{"system": CONFIDENTIALITY, "code": "R"}, {"system": ACT_CODE, "code": "42CFRPart2"},
                {"system": ACT_CODE, "code": "SUD"}]
USD = "USD"


def ago(years: float = 0, months: float = 0) -> str:
    today = datetime.now(timezone.utc).date()
    return (today - timedelta(days=round(years * 365.25 + months * 30.5))).isoformat()


def ahead(years: float) -> str:
    return (datetime.now(timezone.utc).date() + timedelta(days=round(years * 365.25))).isoformat()


def concept(system: str, code: str, display: str | None = None) -> dict:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


@dataclass
class Entry:
    key: str
    resource: dict
    regular: str
    sensitive: str
    stripped: dict | None = None
    """For claims: the exact form expected to leave (references still as urn:uuid placeholders)."""

    def expected(self, policy: str) -> str:
        return self.regular if policy == REGULAR else self.sensitive


@dataclass
class Reference:
    key: str
    resource: dict
    read: str
    include: dict[str, str] = field(default_factory=dict)


class TenYearMember:
    def __init__(self, unique: str) -> None:
        self.unique = unique
        self.urns: dict[str, str] = {}
        self.members: list[Entry] = []
        self.references: list[Reference] = []
        self.provenances: list[Entry] = []
        self._build()

    # --- helpers ---------------------------------------------------------------------------------------------

    def ref(self, key: str) -> dict:
        return {"reference": self.urns.setdefault(key, f"urn:uuid:{uuid.uuid4()}")}

    def _member(self, key: str, resource: dict, regular: str, sensitive: str | None = None,
                stripped: dict | None = None) -> None:
        self.ref(key)
        self.members.append(Entry(key, resource, regular, sensitive or regular, stripped))

    def _provenance(self, key: str, resource: dict, regular: str, sensitive: str) -> None:
        self.ref(key)
        self.provenances.append(Entry(key, resource, regular, sensitive))

    def _reference(self, key: str, resource: dict, read: str, regular: str, sensitive: str) -> None:
        self.ref(key)
        self.references.append(Reference(key, resource, read, {REGULAR: regular, SENSITIVE: sensitive}))

    @property
    def patient(self) -> dict:
        return self.ref("patient")

    def claim(self, key: str, kind: str, when: str, *, diagnosis: str | None = None,
              product: tuple[str, str] = (CPT, "99213"), regular: str = STRIPPED, sensitive: str = STRIPPED) -> None:
        types = {"inpatient": ("institutional", "inpatient"), "outpatient": ("institutional", "outpatient"),
                 "professional": ("professional", None), "pharmacy": ("pharmacy", None), "oral": ("oral", None)}
        type_code, sub_type = types[kind]
        profile = {"inpatient": "Inpatient-Institutional", "outpatient": "Outpatient-Institutional",
                   "professional": "Professional-NonClinician", "pharmacy": "Pharmacy", "oral": "Oral"}[kind]
        base = {
            "resourceType": "ExplanationOfBenefit",
            "meta": {"profile": [f"{C4BB}C4BB-ExplanationOfBenefit-{profile}"]},
            "identifier": [{"system": f"urn:test:{self.unique}:claim", "value": key}],
            "status": "active", "use": "claim", "outcome": "complete",
            "type": concept(CLAIM_TYPE, type_code),
            "patient": self.patient, "created": when,
            "insurer": self.ref("org_payer"), "provider": self.ref("org_clinic"),
            "billablePeriod": {"start": when, "end": when},
            "insurance": [{"focal": True, "coverage": self.ref("coverage")}],
            "diagnosis": [{"sequence": 1, "diagnosisCodeableConcept": concept(ICD10, diagnosis or "E11.9")}],
            "item": [{"sequence": 1, "servicedDate": when, "productOrService": concept(*product),
                      "adjudication": [{"category": concept(C4BB_DISCRIMINATOR, "denialreason"),
                                        "reason": concept("https://x12.org/codes/claim-adjustment-reason-codes",
                                                          "CO45")}]}],
        }
        if sub_type:
            base["subType"] = concept("http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBInstitutionalClaimSubType",
                                      sub_type)
        money = {"value": 125.5, "currency": USD}
        full = copy.deepcopy(base)
        full["item"][0].update({"unitPrice": money, "net": money})
        full["item"][0]["adjudication"][0]["amount"] = money
        full["item"][0]["adjudication"].append({"category": concept(ADJUDICATION, "submitted"), "amount": money})
        full["adjudication"] = [{"category": concept(ADJUDICATION, "benefit"), "amount": money}]
        full["total"] = [{"category": concept(ADJUDICATION, "submitted"), "amount": money}]
        full["payment"] = {"amount": money, "date": when}
        full["benefitBalance"] = [{"category": concept("https://x12.org/codes/service-type-codes", "30"),
                                   "financial": [{"type": concept("http://terminology.hl7.org/CodeSystem/"
                                                                  "benefit-type", "benefit"),
                                                  "usedMoney": money}]}]
        stripped = copy.deepcopy(base)
        stripped["meta"]["profile"] = [f"{C4BB}C4BB-ExplanationOfBenefit-{profile}-Basis"]
        self._member(key, full, regular, sensitive, stripped)

    def prior_auth(self, key: str, regular: str, sensitive: str | None = None, *, status: str = "active",
                   outcome: str = "complete", changed: str | None = None, period: tuple[str, str] | None = None,
                   kind: str = "professional", product: tuple[str, str] = (CPT, "97110")) -> None:
        adjudication: dict = {"category": concept(ADJUDICATION, "submitted")}
        if changed:
            adjudication["extension"] = [{"url": WHEN_ADJUDICATED, "valueDateTime": changed + "T10:00:00Z"}]
        resource = {
            "resourceType": "ExplanationOfBenefit", "meta": {"profile": [PA_PROFILE]},
            "identifier": [{"system": f"urn:test:{self.unique}:pa", "value": key}],
            "status": status, "use": "preauthorization", "outcome": outcome,
            "type": concept(CLAIM_TYPE, kind), "patient": self.patient, "created": ago(4),
            "insurer": self.ref("org_payer"), "provider": self.ref("org_clinic"),
            "insurance": [{"focal": True, "coverage": self.ref("coverage")}],
            "adjudication": [adjudication],
            "item": [{"sequence": 1, "productOrService": concept(*product)}],
        }
        if period:
            resource["preAuthRefPeriod"] = [{"start": period[0], "end": period[1]}]
        self._member(key, resource, regular, sensitive)

    # --- the member ------------------------------------------------------------------------------------------

    def _build(self) -> None:
        u = self.unique
        self._reference("org_payer", {"resourceType": "Organization", "name": f"Old Payer {u}"},
                        RELEASED, RELEASED, RELEASED)
        self._reference("org_clinic", {"resourceType": "Organization", "name": f"Clinic {u}"},
                        RELEASED, RELEASED, RELEASED)
        self._reference("org_part2", {"resourceType": "Organization", "name": f"Recovery Program {u}",
                                      "meta": {"security": [{"system": ACT_CODE, "code": "42CFRPart2"}]}},
                        WITHHELD, WITHHELD, RELEASED)
        self._reference("practitioner", {"resourceType": "Practitioner", "name": [{"family": f"Doc{u[:8]}"}]},
                        RELEASED, RELEASED, RELEASED)
        self._reference("med_lisinopril", {"resourceType": "Medication", "code": concept(
            RXNORM, "314076", "lisinopril 10 MG Oral Tablet")}, RELEASED, RELEASED, RELEASED)
        self._reference("med_bup", {"resourceType": "Medication", "code": concept(
            RXNORM, "1010604", "buprenorphine 8 MG / naloxone 2 MG Sublingual Film")}, WITHHELD, WITHHELD, RELEASED)

        p = self.patient
        self._member("patient", {"resourceType": "Patient", "identifier": [
            {"system": f"urn:test:{u}:member", "value": "M-1"}], "name": [{"family": f"History{u[:8]}",
                                                                          "given": ["Dana"]}],
            "gender": "female", "birthDate": "1980-04-12"}, RELEASED)
        self._member("coverage", {"resourceType": "Coverage", "status": "active", "beneficiary": p,
                                  "payor": [self.ref("org_payer")], "subscriberId": "S-1",
                                  "period": {"start": ago(10), "end": ago(0.1)}}, RELEASED)
        self._member("related", {"resourceType": "RelatedPerson", "patient": p, "name": [{"family": "Spouse"}]},
                     RELEASED)

        # Claims of every CARIN kind, in and out of the five years, and two that reveal substance use.
        self.claim("claim_inpatient", "inpatient", ago(2))
        self.claim("claim_outpatient", "outpatient", ago(3))
        self.claim("claim_professional", "professional", ago(1))
        self.claim("claim_pharmacy", "pharmacy", ago(0.5), product=(RXNORM, "314076"))
        self.claim("claim_oral", "oral", ago(4), product=("http://www.ada.org/cdt", "D1110"))
        self.claim("claim_professional_7y", "professional", ago(7), regular=WITHHELD, sensitive=WITHHELD)
        self.claim("claim_inpatient_9y", "inpatient", ago(9.5), regular=WITHHELD, sensitive=WITHHELD)
        self.claim("claim_sud_diagnosis", "professional", ago(2), diagnosis="F11.20", regular=WITHHELD)
        self.claim("claim_buprenorphine", "pharmacy", ago(1), product=(RXNORM, "1010604"), regular=WITHHELD)

        # Prior authorizations in every state and age.
        self.prior_auth("pa_pending_3y", RELEASED, outcome="queued", changed=ago(3))
        self.prior_auth("pa_in_effect", RELEASED, changed=ago(2), period=(ago(2), ahead(1)))
        self.prior_auth("pa_denied_6m", RELEASED, changed=ago(months=6))
        self.prior_auth("pa_denied_2y", WITHHELD, changed=ago(2))
        self.prior_auth("pa_cancelled_3m", RELEASED, status="cancelled", changed=ago(months=3))
        self.prior_auth("pa_cancelled_18m", WITHHELD, status="cancelled", changed=ago(months=18))
        self.prior_auth("pa_expired_14m", WITHHELD, changed=ago(months=14), period=(ago(3), ago(1)))
        self.prior_auth("pa_drug", WITHHELD, outcome="queued", changed=ago(months=1), kind="pharmacy",
                        product=(RXNORM, "314076"))
        self.prior_auth("pa_entered_in_error", WITHHELD, status="entered-in-error", changed=ago(months=1))
        self.prior_auth("pa_no_change_date", RELEASED)  # HAPI's meta.lastUpdated (today) stands in
        self.prior_auth("pa_sud_treatment", WITHHELD, RELEASED, outcome="queued", changed=ago(months=2),
                        product=(HCPCS, "H0020"))

        # Clinical data of each US Core type.
        self._member("allergy_2y", {"resourceType": "AllergyIntolerance", "patient": p, "recordedDate": ago(2),
                                    "code": concept(SNOMED, "91936005", "Penicillin allergy")}, RELEASED)
        self._member("allergy_undated", {"resourceType": "AllergyIntolerance", "patient": p,
                                         "code": concept(SNOMED, "300913006", "Shellfish allergy")}, RELEASED)
        self._member("allergy_8y", {"resourceType": "AllergyIntolerance", "patient": p, "recordedDate": ago(8),
                                    "code": concept(SNOMED, "418689008", "Grass pollen allergy")}, WITHHELD)
        self._member("careplan", {"resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": p,
                                  "period": {"start": ago(1)}}, RELEASED)
        self._member("careteam", {"resourceType": "CareTeam", "subject": p,
                                  "period": {"start": ago(2), "end": ago(1)}}, RELEASED)
        self._member("condition_diabetes", {"resourceType": "Condition", "subject": p, "onsetDateTime": ago(3),
                                            "code": concept(ICD10, "E11.9")}, RELEASED)
        self._member("condition_9y", {"resourceType": "Condition", "subject": p, "onsetDateTime": ago(9),
                                      "recordedDate": ago(9), "code": concept(ICD10, "J45.909")}, WITHHELD)
        self._member("condition_alcohol", {"resourceType": "Condition", "subject": p, "onsetDateTime": ago(2),
                                           "code": concept(ICD10, "F10.20", "Alcohol dependence, uncomplicated")},
                     WITHHELD, RELEASED)
        self._member("condition_nicotine", {"resourceType": "Condition", "subject": p, "onsetDateTime": ago(1),
                                            "code": concept(ICD10, "F17.210")}, RELEASED)
        self._member("condition_hiv", {"resourceType": "Condition", "subject": p, "onsetDateTime": ago(3),
                                       "code": concept(ICD10, "B20")}, WITHHELD, RELEASED)
        self._member("device", {"resourceType": "Device", "patient": p, "distinctIdentifier": f"D-{u[:6]}"},
                     RELEASED)
        self._member("report_1y", {"resourceType": "DiagnosticReport", "status": "final", "subject": p,
                                   "code": concept(LOINC, "58410-2"), "effectiveDateTime": ago(1)}, RELEASED)
        self._member("report_6y", {"resourceType": "DiagnosticReport", "status": "final", "subject": p,
                                   "code": concept(LOINC, "58410-2"), "effectiveDateTime": ago(6)}, WITHHELD)
        self._member("document_note", {"resourceType": "DocumentReference", "status": "current", "subject": p,
                                       "custodian": self.ref("org_clinic"), "type": concept(LOINC, "11506-3"),
                                       "context": {"period": {"start": ago(1), "end": ago(1)}}}, RELEASED)
        self._member("document_part2_program", {"resourceType": "DocumentReference", "status": "current",
                                                "subject": p, "custodian": self.ref("org_part2"),
                                                "type": concept(LOINC, "11506-3"),
                                                "context": {"period": {"end": ago(1)}}}, WITHHELD, RELEASED)
        self._member("document_restricted", {"resourceType": "DocumentReference", "status": "current", "subject": p,
                                             "meta": {"security": [{"system": CONFIDENTIALITY, "code": "R"}]},
                                             "type": concept(LOINC, "11506-3"), "date": ago(2) + "T09:00:00Z"},
                     WITHHELD, RELEASED)
        self._member("document_7y", {"resourceType": "DocumentReference", "status": "current", "subject": p,
                                     "type": concept(LOINC, "11506-3"), "date": ago(7) + "T09:00:00Z"}, WITHHELD)
        self._member("encounter_1y", {"resourceType": "Encounter", "status": "finished", "subject": p,
                                      "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                                "code": "AMB"},
                                      "serviceProvider": self.ref("org_clinic"),
                                      "participant": [{"individual": self.ref("practitioner")}],
                                      "period": {"start": ago(1), "end": ago(1)}}, RELEASED)
        self._member("encounter_7y", {"resourceType": "Encounter", "status": "finished", "subject": p,
                                      "class": {"code": "AMB"}, "period": {"start": ago(7), "end": ago(7)}}, WITHHELD)
        self._member("encounter_for_alcohol", {"resourceType": "Encounter", "status": "finished", "subject": p,
                                               "class": {"code": "AMB"},
                                               "diagnosis": [{"condition": self.ref("condition_alcohol")}],
                                               "period": {"start": ago(2), "end": ago(2)}}, WITHHELD, RELEASED)
        self._member("encounter_part2_program", {"resourceType": "Encounter", "status": "finished", "subject": p,
                                                 "class": {"code": "AMB"}, "serviceProvider": self.ref("org_part2"),
                                                 "period": {"start": ago(3), "end": ago(3)}}, WITHHELD, RELEASED)
        self._member("goal", {"resourceType": "Goal", "lifecycleStatus": "active", "subject": p,
                              "description": {"text": "HbA1c below 7"}, "startDate": ago(1)}, RELEASED)
        self._member("immunization_2y", {"resourceType": "Immunization", "status": "completed", "patient": p,
                                         "vaccineCode": concept("http://hl7.org/fhir/sid/cvx", "140"),
                                         "occurrenceDateTime": ago(2)}, RELEASED)
        self._member("immunization_8y", {"resourceType": "Immunization", "status": "completed", "patient": p,
                                         "vaccineCode": concept("http://hl7.org/fhir/sid/cvx", "140"),
                                         "occurrenceDateTime": ago(8)}, WITHHELD)
        self._member("dispense_lisinopril", {"resourceType": "MedicationDispense", "status": "completed",
                                             "subject": p, "medicationReference": self.ref("med_lisinopril"),
                                             "whenHandedOver": ago(0.5)}, RELEASED)
        self._member("dispense_buprenorphine", {"resourceType": "MedicationDispense", "status": "completed",
                                                "subject": p, "medicationReference": self.ref("med_bup"),
                                                "whenHandedOver": ago(0.5)}, WITHHELD, RELEASED)
        self._member("request_metformin", {"resourceType": "MedicationRequest", "status": "active",
                                           "intent": "order", "subject": p, "authoredOn": ago(1),
                                           "medicationCodeableConcept": concept(RXNORM, "860975")}, RELEASED)
        self._member("request_methadone", {"resourceType": "MedicationRequest", "status": "active",
                                           "intent": "order", "subject": p, "authoredOn": ago(1),
                                           "medicationCodeableConcept": {"text": "Methadone 10 mg oral tablet"}},
                     WITHHELD, RELEASED)
        self._member("observation_lab", {"resourceType": "Observation", "status": "final", "subject": p,
                                         "code": concept(LOINC, "4548-4"), "effectiveDateTime": ago(1)}, RELEASED)
        self._member("observation_smoking", {"resourceType": "Observation", "status": "final", "subject": p,
                                             "code": concept(LOINC, "72166-2"), "effectiveDateTime": ago(1),
                                             "valueCodeableConcept": concept(SNOMED, "449868002")}, RELEASED)
        self._member("observation_10y", {"resourceType": "Observation", "status": "final", "subject": p,
                                         "code": concept(LOINC, "4548-4"), "effectiveDateTime": ago(9.9)}, WITHHELD)
        self._member("observation_part2_labelled", {"resourceType": "Observation", "status": "final", "subject": p,
                                                    "meta": {"security": PART2_LABELS},
                                                    "code": concept(LOINC, "19295-5"),
                                                    "effectiveDateTime": ago(1)}, WITHHELD, RELEASED)
        self._member("observation_in_part2_encounter", {"resourceType": "Observation", "status": "final",
                                                        "subject": p, "code": concept(LOINC, "8867-4"),
                                                        "encounter": self.ref("encounter_part2_program"),
                                                        "effectiveDateTime": ago(3)}, WITHHELD, RELEASED)
        self._member("procedure_2y", {"resourceType": "Procedure", "status": "completed", "subject": p,
                                      "code": concept(SNOMED, "80146002"), "performedDateTime": ago(2)}, RELEASED)
        self._member("procedure_sud_assessment", {"resourceType": "Procedure", "status": "completed", "subject": p,
                                                  "code": concept(HCPCS, "H0001"), "performedDateTime": ago(1)},
                     WITHHELD, RELEASED)
        self._member("procedure_6y", {"resourceType": "Procedure", "status": "completed", "subject": p,
                                      "code": concept(SNOMED, "80146002"), "performedDateTime": ago(6)}, WITHHELD)
        self._member("service_request", {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                                         "subject": p, "code": concept(SNOMED, "73761001"), "authoredOn": ago(1)},
                     RELEASED)
        self._member("questionnaire_response", {"resourceType": "QuestionnaireResponse", "status": "completed",
                                                "subject": p, "authored": ago(1) + "T08:00:00Z"}, RELEASED)
        self._member("specimen", {"resourceType": "Specimen", "subject": p, "type": concept(SNOMED, "119297000")},
                     RELEASED)

        # Provenance goes with the data it describes.
        self._provenance("provenance_lab", {"resourceType": "Provenance", "target": [self.ref("observation_lab")],
                                            "recorded": ago(1) + "T10:00:00Z",
                                            "agent": [{"who": self.ref("org_clinic")}]}, RELEASED, RELEASED)
        self._provenance("provenance_part2", {"resourceType": "Provenance",
                                              "target": [self.ref("document_part2_program")],
                                              "recorded": ago(1) + "T10:00:00Z",
                                              "agent": [{"who": self.ref("org_part2")}]}, WITHHELD, RELEASED)

    # --- loading ---------------------------------------------------------------------------------------------

    def transaction(self) -> dict:
        entries = []
        for item in [*self.references, *self.members, *self.provenances]:
            entries.append({"fullUrl": self.urns[item.key], "resource": item.resource,
                            "request": {"method": "POST", "url": item.resource["resourceType"]}})
        return {"resourceType": "Bundle", "type": "transaction", "entry": entries}

    def keys_in_order(self) -> list[str]:
        return [item.key for item in [*self.references, *self.members, *self.provenances]]


def resolve(value: object, ids: dict[str, str]) -> object:
    """Replace urn:uuid placeholders with the `Type/id` HAPI assigned."""
    if isinstance(value, dict):
        return {k: resolve(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, ids) for v in value]
    if isinstance(value, str) and value in ids:
        return ids[value]
    return value
