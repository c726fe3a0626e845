"""Disclosure filter throughput on one core, as a ratio to plain parse + serialize of the same NDJSON lines.

Generates (seeded, so every run sees the same bytes) an in-memory NDJSON member record set of a payer, ~50 MB by
default, across 200 members: CARIN-like claims (the big lines), PDex prior authorizations, encounters, conditions,
observations, medication requests and dispenses, procedures, documents, immunizations, coverage and the patients.
Service dates spread over the ten years before `NOW`, so about half falls outside the five-year look-back; a few
percent of lines carry a security label or a SUD code (ICD-10-CM F10-F19, RxNorm buprenorphine), about 1% of the
encounters are listed as sensitive references, and 20% of the members have a `#sensitive` consent policy.

Two loops over the same lines, single thread, interleaved rounds (the order flips every round), best round kept:
  - baseline: `orjson.dumps(orjson.loads(line))`;
  - filter:   `orjson.loads(line)`, `DisclosureRules.decide(resource, ctx, line)`, `orjson.dumps` of what leaves.
Prints each loop's resources/s and input MB/s, the ratio filter / baseline (target >= 0.5), and what the filter
decided per rule. `--profile` instead runs the filter loop once under cProfile and prints the top 20 functions by
cumulative time.

    .venv/bin/python bench/disclosure.py [--mb 50] [--rounds 3] [--seed 1] [--profile]
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Callable

import orjson

from sidecar.disclosure.rules import REGULAR, SENSITIVE, DisclosureContext, DisclosureRules
from sidecar.disclosure.sensitivity import Reason, SensitiveData

NOW = datetime(2025, 6, 1, 15, 30, tzinfo=timezone.utc)
MB = 1_000_000
TARGET = 0.5
PATIENTS = 200
SENSITIVE_MEMBER_SHARE = 0.2
SENSITIVE_ENCOUNTER_SHARE = 0.01
SUD_SHARE = 0.03
LABEL_SHARE = 0.03
OFFSET = timezone(timedelta(hours=-5))

ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CPT = "http://www.ama-assn.org/go/cpt"
HCPCS = "https://bluebutton.cms.gov/resources/codesystem/hcpcs"
CVX = "http://hl7.org/fhir/sid/cvx"
C4BB = "http://hl7.org/fhir/us/carin-bb/StructureDefinition/"
C4BB_CS = "http://hl7.org/fhir/us/carin-bb/CodeSystem/"
PDEX = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/"
TERMINOLOGY = "http://terminology.hl7.org/CodeSystem/"
US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"

DIAGNOSES = [("E11.9", "Type 2 diabetes mellitus without complications"), ("I10", "Essential (primary) hypertension"),
             ("J06.9", "Acute upper respiratory infection, unspecified"), ("M54.50", "Low back pain, unspecified"),
             ("E78.5", "Hyperlipidemia, unspecified"),
             ("K21.9", "Gastro-esophageal reflux disease without esophagitis"),
             ("Z00.00", "Encounter for general adult medical examination without abnormal findings"),
             ("J45.909", "Unspecified asthma, uncomplicated"), ("N39.0", "Urinary tract infection, site not specified"),
             ("R51.9", "Headache, unspecified"), ("M17.11", "Unilateral primary osteoarthritis, right knee"),
             ("E66.9", "Obesity, unspecified"), ("Z23", "Encounter for immunization")]
SUD_DIAGNOSES = [("F11.20", "Opioid dependence, uncomplicated"), ("F10.20", "Alcohol dependence, uncomplicated"),
                 ("F12.10", "Cannabis abuse, uncomplicated"), ("F14.20", "Cocaine dependence, uncomplicated")]
LABS = [("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 4.0, 11.0),
        ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 60.0, 250.0),
        ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 120.0, 300.0),
        ("8480-6", "Systolic blood pressure", "mm[Hg]", 95.0, 180.0),
        ("8462-4", "Diastolic blood pressure", "mm[Hg]", 55.0, 110.0),
        ("29463-7", "Body weight", "kg", 45.0, 140.0), ("8867-4", "Heart rate", "/min", 50.0, 120.0),
        ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 9.0, 17.0)]
DRUGS = [("197361", "amlodipine 5 MG Oral Tablet"), ("860975", "24 HR metformin hydrochloride 500 MG Extended Release "
         "Oral Tablet"), ("314076", "lisinopril 10 MG Oral Tablet"), ("617312", "atorvastatin 10 MG Oral Tablet"),
         ("308136", "amoxicillin 500 MG Oral Capsule"), ("310965", "ibuprofen 200 MG Oral Tablet"),
         ("198211", "simvastatin 40 MG Oral Tablet"), ("966247", "levothyroxine sodium 0.05 MG Oral Tablet")]
SUD_DRUG = ("1010604", "buprenorphine 8 MG / naloxone 2 MG Sublingual Tablet")
SERVICES = [(CPT, "99213", "Office or other outpatient visit, established patient, 20 minutes"),
            (CPT, "99214", "Office or other outpatient visit, established patient, 30 minutes"),
            (CPT, "80053", "Comprehensive metabolic panel"), (CPT, "85025", "Complete blood count with differential"),
            (CPT, "71046", "Radiologic examination, chest; 2 views"), (CPT, "36415", "Routine venipuncture"),
            (CPT, "93000", "Electrocardiogram, routine with at least 12 leads"),
            (HCPCS, "G0439", "Annual wellness visit, subsequent"), (HCPCS, "J1885", "Injection, ketorolac, 15 mg"),
            (HCPCS, "A4253", "Blood glucose test or reagent strips, per 50 strips")]
VACCINES = [("140", "Influenza, seasonal, injectable, preservative free"), ("208", "COVID-19, mRNA, LNP-S, PF, 30 mcg"),
            ("115", "Tdap"), ("33", "pneumococcal polysaccharide PPV23"), ("121", "zoster live")]
DOCUMENTS = [("34133-9", "Summary of episode note"), ("11506-3", "Progress note"), ("18842-5", "Discharge summary")]
ADJUDICATIONS = [("submitted", 1.0), ("eligible", 0.8), ("paidtoprovider", 0.6)]
CLAIM_KINDS = [("Professional-NonClinician", "professional"), ("Outpatient-Institutional", "institutional"),
               ("Inpatient-Institutional", "institutional"), ("Pharmacy", "pharmacy")]


def coding(system: str, code: str, display: str | None = None) -> dict:
    return {"system": system, "code": code, "display": display} if display else {"system": system, "code": code}


def concept(system: str, code: str, display: str | None = None, text: str | None = None) -> dict:
    out: dict = {"coding": [coding(system, code, display)]}
    if text:
        out["text"] = text
    return out


def ref(resource_type: str, resource_id: str) -> dict:
    return {"reference": f"{resource_type}/{resource_id}"}


def money(value: float) -> dict:
    return {"value": round(value, 2), "currency": "USD"}


def network_status() -> dict:
    """A CARIN adjudication that carries no money: it stays in the non-financial view."""
    return {"category": concept(C4BB_CS + "C4BBAdjudicationDiscriminator", "benefitpaymentstatus"),
            "reason": concept(C4BB_CS + "C4BBPayerAdjudicationStatus", "innetwork")}


def day(moment: datetime) -> str:
    return moment.date().isoformat()


def instant(moment: datetime) -> str:
    return moment.astimezone(OFFSET).isoformat(timespec="seconds")


class RecordSet:
    """Lines of one synthetic payer member record set, and which of its encounters count as sensitive."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.patients = [f"p{i}" for i in range(PATIENTS)]
        self.encounters: dict[str, list[str]] = {p: [] for p in self.patients}
        self.sensitive_refs: dict[str, Reason] = {}
        self.serial = 0
        self.kinds: list[tuple[Callable[[str], dict], int]] = [
            (self.claim, 24), (self.prior_authorization, 4), (self.encounter, 14), (self.condition, 10),
            (self.observation, 20), (self.medication_request, 6), (self.medication_dispense, 6), (self.procedure, 8),
            (self.document, 4), (self.immunization, 3), (self.coverage, 1)]

    def lines(self, size: int) -> list[bytes]:
        lines = [orjson.dumps(self.patient(p)) for p in self.patients]
        total = sum(len(line) + 1 for line in lines)
        makers, weights = zip(*self.kinds)
        while total < size:
            maker = self.rng.choices(makers, weights)[0]
            line = orjson.dumps(maker(self.rng.choice(self.patients)))
            lines.append(line)
            total += len(line) + 1
        return lines

    def next_id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}-{self.serial}"

    def when(self) -> datetime:
        return NOW - timedelta(seconds=self.rng.uniform(0, 10 * 365.25 * 86400))

    def chance(self, share: float) -> bool:
        return self.rng.random() < share

    def meta(self, *profiles: str) -> dict:
        out: dict = {"versionId": "1", "lastUpdated": instant(self.when()), "profile": list(profiles)}
        if self.chance(LABEL_SHARE):
            out["security"] = [coding(TERMINOLOGY + "v3-ActCode", "42CFRPart2")]
        return out

    def diagnosis(self) -> tuple[str, str]:
        return self.rng.choice(SUD_DIAGNOSES if self.chance(SUD_SHARE) else DIAGNOSES)

    def drug(self) -> tuple[str, str]:
        return SUD_DRUG if self.chance(SUD_SHARE) else self.rng.choice(DRUGS)

    def encounter_of(self, patient: str) -> dict | None:
        known = self.encounters[patient]
        return ref("Encounter", self.rng.choice(known)) if known else None

    def with_encounter(self, resource: dict, patient: str, element: str = "encounter") -> dict:
        encounter = self.encounter_of(patient)
        if encounter is not None:
            resource[element] = encounter
        return resource

    def patient(self, patient: str) -> dict:
        return {"resourceType": "Patient", "id": patient, "meta": self.meta(US_CORE + "us-core-patient"),
                "identifier": [{"system": "https://payer.example.org/member-id", "value": f"M{patient.upper()}01"}],
                "name": [{"family": f"Member{patient}", "given": ["Alex", "J"]}], "gender": "unknown",
                "birthDate": f"19{self.rng.randint(40, 99)}-0{self.rng.randint(1, 9)}-1{self.rng.randint(0, 9)}",
                "address": [{"line": ["1 Main St"], "city": "Springfield", "state": "IL", "postalCode": "62701"}]}

    def adjudication(self, category: str, amount: float) -> dict:
        return {"category": concept(C4BB_CS + "C4BBAdjudication", category), "amount": money(amount)}

    def claim_item(self, sequence: int, served: datetime, patient: str) -> dict:
        system, code, display = self.rng.choice(SERVICES)
        charge = self.rng.uniform(40, 900)
        item = {"sequence": sequence, "careTeamSequence": [1], "diagnosisSequence": [1],
                "productOrService": concept(system, code, display), "servicedDate": day(served),
                "locationCodeableConcept": concept("https://www.cms.gov/Medicare/Coding/place-of-service-codes",
                                                   "11", "Office"),
                "quantity": {"value": self.rng.randint(1, 3)}, "net": money(charge),
                "adjudication": [self.adjudication(c, charge * share) for c, share in ADJUDICATIONS]
                + [network_status()]}
        return self.with_encounter(item, patient)

    def claim(self, patient: str) -> dict:
        fragment, kind = self.rng.choice(CLAIM_KINDS)
        start = self.when()
        end = min(start + timedelta(days=self.rng.randint(0, 5)), NOW)
        items = [self.claim_item(i + 1, start, patient) for i in range(self.rng.randint(1, 3))]
        codes = [self.diagnosis() for _ in range(self.rng.randint(1, 3))]
        billed = sum(item["net"]["value"] for item in items)
        return {
            "resourceType": "ExplanationOfBenefit", "id": self.next_id("eob"),
            "meta": self.meta(C4BB + f"C4BB-ExplanationOfBenefit-{fragment}"),
            "identifier": [{"type": concept(C4BB_CS + "C4BBIdentifierType", "uc"),
                            "system": "https://payer.example.org/claim-id", "value": f"CLM{self.serial:09d}"}],
            "status": "active", "type": concept(TERMINOLOGY + "claim-type", kind), "use": "claim",
            "patient": ref("Patient", patient), "billablePeriod": {"start": day(start), "end": day(end)},
            "created": instant(end), "insurer": ref("Organization", "payer1"),
            "provider": ref("Organization", f"org{self.rng.randint(1, 40)}"),
            "payee": {"type": concept(TERMINOLOGY + "payeetype", "provider"),
                      "party": ref("Organization", f"org{self.rng.randint(1, 40)}")},
            "outcome": "complete",
            "careTeam": [{"sequence": 1, "provider": ref("Practitioner", f"pr{self.rng.randint(1, 300)}"),
                          "role": concept(C4BB_CS + "C4BBClaimCareTeamRole", "rendering")}],
            "supportingInfo": [{"sequence": 1, "category": concept(C4BB_CS + "C4BBSupportingInfoType",
                                                                    "clmrecvddate"), "timingDate": day(end)}],
            "diagnosis": [{"sequence": i + 1, "diagnosisCodeableConcept": concept(ICD10, code, display),
                           "type": [concept(TERMINOLOGY + "ex-diagnosistype", "principal" if i == 0 else "secondary")]}
                          for i, (code, display) in enumerate(codes)],
            "insurance": [{"focal": True, "coverage": ref("Coverage", f"cov-{patient}")}],
            "item": items,
            "total": [{"category": concept(C4BB_CS + "C4BBAdjudication", c), "amount": money(billed * share)}
                      for c, share in (("submitted", 1.0), ("eligible", 0.8), ("paidtoprovider", 0.6),
                                       ("memberliability", 0.2))],
            "payment": {"type": concept(TERMINOLOGY + "ex-paymenttype", "complete"), "date": day(end),
                        "amount": money(billed * 0.6)},
        }

    def prior_authorization(self, patient: str) -> dict:
        decided = self.when()
        kind = self.rng.choice(["professional", "institutional", "pharmacy"])
        system, code, display = self.rng.choice(SERVICES)
        when_adjudicated = {"url": PDEX + "base-ext-when-adjudicated", "valueDateTime": instant(decided)}
        return {
            "resourceType": "ExplanationOfBenefit", "id": self.next_id("pa"),
            "meta": self.meta(PDEX + "pdex-priorauthorization"), "status": "active",
            "type": concept(TERMINOLOGY + "claim-type", kind), "use": "preauthorization",
            "patient": ref("Patient", patient), "created": instant(decided - timedelta(days=2)),
            "insurer": ref("Organization", "payer1"), "provider": ref("Organization", f"org{self.rng.randint(1, 40)}"),
            "outcome": self.rng.choice(["complete", "complete", "complete", "partial"]),
            "preAuthRef": [f"PA{self.serial:08d}"],
            "insurance": [{"focal": True, "coverage": ref("Coverage", f"cov-{patient}")}],
            "adjudication": [{**network_status(), "extension": [when_adjudicated]}],
            "item": [{"sequence": 1, "productOrService": concept(system, code, display),
                      "quantity": {"value": self.rng.randint(1, 12)},
                      "adjudication": [{"category": concept(TERMINOLOGY + "adjudication", "submitted"),
                                        "reason": concept("https://codesystem.x12.org/external/306", "A1"),
                                        "extension": [when_adjudicated]}]}],
        }

    def encounter(self, patient: str) -> dict:
        encounter_id = self.next_id("enc")
        self.encounters[patient].append(encounter_id)
        if self.chance(SENSITIVE_ENCOUNTER_SHARE):
            self.sensitive_refs[f"Encounter/{encounter_id}"] = Reason("sensitive-code:sud", "diagnosis", "F11.20")
        start = self.when()
        code, display = self.diagnosis()
        return {"resourceType": "Encounter", "id": encounter_id, "meta": self.meta(US_CORE + "us-core-encounter"),
                "status": "finished", "class": coding(TERMINOLOGY + "v3-ActCode", "AMB", "ambulatory"),
                "type": [concept(CPT, "99213", "Office or other outpatient visit")],
                "subject": ref("Patient", patient),
                "participant": [{"individual": ref("Practitioner", f"pr{self.rng.randint(1, 300)}")}],
                "period": {"start": instant(start), "end": instant(start + timedelta(minutes=40))},
                "reasonCode": [concept(ICD10, code, display)],
                "serviceProvider": ref("Organization", f"org{self.rng.randint(1, 40)}")}

    def condition(self, patient: str) -> dict:
        code, display = self.diagnosis()
        onset = self.when()
        return self.with_encounter({
            "resourceType": "Condition", "id": self.next_id("cond"), "meta": self.meta(US_CORE + "us-core-condition"),
            "clinicalStatus": concept(TERMINOLOGY + "condition-clinical", "active"),
            "verificationStatus": concept(TERMINOLOGY + "condition-ver-status", "confirmed"),
            "category": [concept(TERMINOLOGY + "condition-category", "encounter-diagnosis")],
            "code": concept(ICD10, code, display, display), "subject": ref("Patient", patient),
            "onsetDateTime": instant(onset), "recordedDate": day(onset)}, patient)

    def observation(self, patient: str) -> dict:
        code, display, unit, low, high = self.rng.choice(LABS)
        taken = self.when()
        return self.with_encounter({
            "resourceType": "Observation", "id": self.next_id("obs"),
            "meta": self.meta(US_CORE + "us-core-observation-lab"), "status": "final",
            "category": [concept(TERMINOLOGY + "observation-category", "laboratory")],
            "code": concept(LOINC, code, display), "subject": ref("Patient", patient),
            "effectiveDateTime": instant(taken), "issued": (taken + timedelta(hours=6)).isoformat(),
            "valueQuantity": {"value": round(self.rng.uniform(low, high), 1), "unit": unit,
                              "system": "http://unitsofmeasure.org", "code": unit},
            "referenceRange": [{"low": {"value": low, "unit": unit}, "high": {"value": high, "unit": unit}}]},
            patient)

    def dosage(self) -> list[dict]:
        return [{"sequence": 1, "text": "Take 1 tablet by mouth daily",
                 "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                 "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}]}]

    def medication_request(self, patient: str) -> dict:
        code, display = self.drug()
        return self.with_encounter({
            "resourceType": "MedicationRequest", "id": self.next_id("mr"),
            "meta": self.meta(US_CORE + "us-core-medicationrequest"), "status": "active", "intent": "order",
            "medicationCodeableConcept": concept(RXNORM, code, display), "subject": ref("Patient", patient),
            "authoredOn": instant(self.when()), "requester": ref("Practitioner", f"pr{self.rng.randint(1, 300)}"),
            "dosageInstruction": self.dosage()}, patient)

    def medication_dispense(self, patient: str) -> dict:
        code, display = self.drug()
        handed = self.when()
        return {"resourceType": "MedicationDispense", "id": self.next_id("md"),
                "meta": self.meta(US_CORE + "us-core-medicationdispense"), "status": "completed",
                "medicationCodeableConcept": concept(RXNORM, code, display), "subject": ref("Patient", patient),
                "authorizingPrescription": [ref("MedicationRequest", f"mr-{self.rng.randint(1, self.serial + 1)}")],
                "quantity": {"value": 30, "unit": "tablet"}, "daysSupply": {"value": 30, "unit": "day"},
                "whenPrepared": instant(handed - timedelta(hours=2)), "whenHandedOver": instant(handed),
                "dosageInstruction": self.dosage()}

    def procedure(self, patient: str) -> dict:
        system, code, display = self.rng.choice(SERVICES)
        performed = self.when()
        return self.with_encounter({
            "resourceType": "Procedure", "id": self.next_id("proc"), "meta": self.meta(US_CORE + "us-core-procedure"),
            "status": "completed", "code": concept(system, code, display), "subject": ref("Patient", patient),
            "performedPeriod": {"start": instant(performed), "end": instant(performed + timedelta(minutes=30))},
            "performer": [{"actor": ref("Practitioner", f"pr{self.rng.randint(1, 300)}")}]}, patient)

    def document(self, patient: str) -> dict:
        code, display = self.rng.choice(DOCUMENTS)
        written = self.when()
        context: dict = {"period": {"start": instant(written - timedelta(hours=1)), "end": instant(written)}}
        encounter = self.encounter_of(patient)
        if encounter is not None:
            context["encounter"] = [encounter]
        return {"resourceType": "DocumentReference", "id": self.next_id("doc"),
                "meta": self.meta(US_CORE + "us-core-documentreference"), "status": "current",
                "type": concept(LOINC, code, display),
                "category": [concept("http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
                                     "clinical-note", "Clinical Note")],
                "subject": ref("Patient", patient), "date": instant(written),
                "author": [ref("Practitioner", f"pr{self.rng.randint(1, 300)}")],
                "custodian": ref("Organization", f"org{self.rng.randint(1, 40)}"),
                "content": [{"attachment": {"contentType": "text/plain", "title": display,
                                            "url": f"Binary/bin-{self.serial}"},
                             "format": coding("http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode",
                                              "urn:ihe:iti:xds:2017:mimeTypeSufficient")}],
                "context": context}

    def immunization(self, patient: str) -> dict:
        code, display = self.rng.choice(VACCINES)
        return {"resourceType": "Immunization", "id": self.next_id("imm"),
                "meta": self.meta(US_CORE + "us-core-immunization"), "status": "completed",
                "vaccineCode": concept(CVX, code, display), "patient": ref("Patient", patient),
                "occurrenceDateTime": instant(self.when()), "primarySource": True,
                "lotNumber": f"L{self.rng.randint(1000, 9999)}"}

    def coverage(self, patient: str) -> dict:
        start = self.when()
        return {"resourceType": "Coverage", "id": self.next_id("cov"), "meta": self.meta(C4BB + "C4BB-Coverage"),
                "status": "active", "type": concept("urn:oid:2.16.840.1.113883.3.221.5", "5", "MEDICAID"),
                "subscriberId": f"M{patient.upper()}", "beneficiary": ref("Patient", patient),
                "relationship": concept(TERMINOLOGY + "subscriber-relationship", "self"),
                "period": {"start": day(start)}, "payor": [ref("Organization", "payer1")],
                "class": [{"type": concept(TERMINOLOGY + "coverage-class", "group"), "value": "G100",
                           "name": "Standard plan"}]}


def members(seed: int) -> dict[str, str]:
    rng = random.Random(seed)
    return {f"p{i}": SENSITIVE if rng.random() < SENSITIVE_MEMBER_SHARE else REGULAR for i in range(PATIENTS)}


def baseline(lines: list[bytes]) -> list[bytes]:
    return [orjson.dumps(orjson.loads(line)) for line in lines]


def filtered(lines: list[bytes], rules: DisclosureRules, ctx: DisclosureContext) -> list[bytes]:
    out = []
    for line in lines:
        decision = rules.decide(orjson.loads(line), ctx, line)
        if decision.resource is not None:
            out.append(orjson.dumps(decision.resource))
    return out


def best_times(loops: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Each loop once per round, the order reversed every other round; per loop, its fastest round in seconds."""
    best = {name: float("inf") for name in loops}
    for round_ in range(rounds):
        for name in (list(loops) if round_ % 2 == 0 else list(reversed(loops))):
            started = time.perf_counter()
            loops[name]()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def tally(lines: list[bytes], rules: DisclosureRules, ctx: DisclosureContext) -> tuple[Counter[str], Counter[str]]:
    """Outcome counts (released, transformed, withheld) and counts per rule."""
    outcomes: Counter[str] = Counter()
    by_rule: Counter[str] = Counter()
    for line in lines:
        decision = rules.decide(orjson.loads(line), ctx, line)
        rule = decision.reason.rule if decision.reason is not None else "released"
        outcome = "withheld" if decision.resource is None else "released" if decision.reason is None else "transformed"
        outcomes[outcome] += 1
        by_rule[rule] += 1
    return outcomes, by_rule


def report(lines: list[bytes], size: int, times: dict[str, float], outcomes: Counter[str],
           by_rule: Counter[str]) -> None:
    for name, seconds in times.items():
        print(f"{name:<9} {len(lines) / seconds:>11,.0f} resources/s {size / MB / seconds:>8.1f} MB/s "
              f"({seconds:.2f} s best round)")
    ratio = times["baseline"] / times["filter"]
    print(f"ratio filter/baseline: {ratio:.3f}")
    print(f"released {outcomes['released']:,}, transformed {outcomes['transformed']:,}, "
          f"withheld {outcomes['withheld']:,}")
    for rule, count in by_rule.most_common():
        print(f"  {rule:<32} {count:>8,}")
    print(f"target >= {TARGET}: {'met' if ratio >= TARGET else 'missed'}")


def profile(lines: list[bytes], rules: DisclosureRules, ctx: DisclosureContext) -> None:
    profiler = cProfile.Profile()
    profiler.runcall(filtered, lines, rules, ctx)
    pstats.Stats(profiler).sort_stats(pstats.SortKey.CUMULATIVE).print_stats(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=50, help="NDJSON input size in MB (10^6 bytes)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per loop; the best one counts")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated record set")
    parser.add_argument("--profile", action="store_true", help="profile one filter pass instead of timing")
    args = parser.parse_args()

    records = RecordSet(args.seed)
    lines = records.lines(int(args.mb * MB))
    size = sum(len(line) + 1 for line in lines)
    rules = DisclosureRules(SensitiveData.load(), timezone.utc)
    ctx = rules.context(NOW, members(args.seed), records.sensitive_refs)
    print(f"input: {size / MB:.1f} MB, {len(lines):,} lines, {PATIENTS} members, "
          f"{len(records.sensitive_refs)} sensitive encounters, now {NOW.isoformat()}")
    if args.profile:
        profile(lines, rules, ctx)
        return
    times = best_times({"baseline": lambda: baseline(lines), "filter": lambda: filtered(lines, rules, ctx)},
                       args.rounds)
    report(lines, size, times, *tally(lines, rules, ctx))


if __name__ == "__main__":
    main()
