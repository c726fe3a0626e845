"""`conformance seed`: the suite's test members, stored in the server's FHIR store (or only described, for a store
the seed cannot write to), each run with its own identifiers so runs never collide.

Every resource has an id of its own making (`pdexconf-<run>-<key>`, written with PUT) so the fixture file can name
it whether the seed or the payer's own tooling loads the transaction.
"""
from __future__ import annotations

import random
import string
import uuid
from datetime import date, datetime, timedelta, timezone

import aiohttp

from sidecar.conformance.fixtures import (MATCH, MULTIPLE, NON_FINANCIAL, NOT_FOUND, REGULAR, RELEASED, SENSITIVE,
                                          WITHHELD, Datum, Fixtures, Member)

MEMBER_SYSTEM = "urn:pdex-conformance:member"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
ADJUDICATION = "http://terminology.hl7.org/CodeSystem/adjudication"
WHEN_ADJUDICATED = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/base-ext-when-adjudicated"
LOINC = "http://loinc.org"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"


class SeedFailed(RuntimeError):
    """The server did not store the members."""


class _Builder:
    def __init__(self, run: str, payer_identifier: str, today: date) -> None:
        self.run = run
        self.payer_identifier = payer_identifier
        self.today = today
        self.rng = random.Random(run)
        self.entries: list[dict] = []
        self.members: dict[str, Member] = {}
        self.data: dict[str, dict[str, Datum]] = {}

    def name(self) -> str:
        return "".join(self.rng.choice(string.ascii_lowercase) for _ in range(8)).capitalize()

    def born(self, low: int = 1950, high: int = 2000) -> str:
        return (date(low, 1, 1) + timedelta(days=self.rng.randint(0, (high - low) * 365))).isoformat()

    def ago(self, days: int) -> str:
        return (self.today - timedelta(days=days)).isoformat()

    def id(self, key: str) -> str:
        return f"pdexconf-{self.run}-{key}".replace("_", "-")

    def put(self, resource: dict) -> str:
        reference = f"{resource['resourceType']}/{resource['id']}"
        self.entries.append({"fullUrl": reference, "resource": resource,
                             "request": {"method": "PUT", "url": reference}})
        return reference

    def person(self, key: str, given: str, family: str, born: str, gender: str, card: str,
               relationship: str = "self") -> str:
        """A member stored at this payer: a Patient and its Coverage."""
        patient = self.put({"resourceType": "Patient", "id": self.id(key),
                            "identifier": [{"type": {"coding": [{"system": V2_0203, "code": "MB"}]},
                                            "system": MEMBER_SYSTEM, "value": f"{self.run}-{key}"}],
                            "name": [{"family": family, "given": [given]}], "gender": gender, "birthDate": born,
                            "address": [{"line": ["12 Conformance Way"], "city": "Springfield",
                                         "postalCode": "01101"}]})
        self.put({"resourceType": "Coverage", "id": self.id(f"{key}-coverage"), "status": "active",
                  "subscriberId": card, "beneficiary": {"reference": patient},
                  "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                                         "subscriber-relationship", "code": relationship}]},
                  "payor": [{"display": "Payer under test"}]})
        return patient

    def request(self, given: str, family: str, born: str, gender: str, card: str | None) -> tuple[dict, dict]:
        """MemberPatient and CoverageToMatch as the new payer sends them (HRex: local ids, the old card)."""
        system, _, value = self.payer_identifier.partition("|")
        coverage = {"resourceType": "Coverage", "id": "1", "status": "active",
                    "beneficiary": {"reference": "Patient/1"},
                    "payor": [{"identifier": {"system": system, "value": value}}]}
        if card:
            coverage["subscriberId"] = card
        return ({"resourceType": "Patient", "id": "1", "name": [{"family": family, "given": [given]}],
                 "gender": gender, "birthDate": born}, coverage)

    def member(self, key: str, *, card: str | None = None, expect: str = MATCH, stored: bool = True,
               relationship: str = "self", born: str | None = None, family: str | None = None,
               gender: str | None = None) -> tuple[str, str, str, str]:
        given, family = self.name(), family or self.name()
        born, gender = born or self.born(), gender or self.rng.choice(["male", "female"])
        card = card or f"{self.run}-{key}"
        member_id = self.person(key, given, family, born, gender, card, relationship) if stored else None
        patient, coverage = self.request(given, family, born, gender, card)
        self.members[key] = Member(patient, coverage, expect, member_id)
        return given, family, born, gender

    def history(self, key: str) -> None:
        """A member whose history tests the disclosure rules: recent and old, sensitive, a claim, a prior auth."""
        self.member(key)
        patient = {"reference": f"Patient/{self.id(key)}"}
        coverage = {"reference": f"Coverage/{self.id(key + '-coverage')}"}
        data: dict[str, Datum] = {}

        def datum(name: str, resource: dict, regular: str, sensitive: str, why: str) -> None:
            reference = self.put({**resource, "id": self.id(f"{key}-{name}")})
            data[name] = Datum(reference, {REGULAR: regular, SENSITIVE: sensitive}, why)

        weight = {"resourceType": "Observation", "status": "final", "subject": patient,
                  "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                            "code": "vital-signs"}]}],
                  "code": {"coding": [{"system": LOINC, "code": "29463-7", "display": "Body weight"}]},
                  "valueQuantity": {"value": 72, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}
        datum("recent", {**weight, "effectiveDateTime": self.ago(30)}, RELEASED, RELEASED, "a month old")
        datum("old", {**weight, "effectiveDateTime": self.ago(9 * 365)}, WITHHELD, WITHHELD,
              "nine years old: outside the five-year window")
        datum("sud", {"resourceType": "Condition", "subject": patient,
                      "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                                               "condition-clinical", "code": "active"}]},
                      "code": {"coding": [{"system": ICD10, "code": "F10.20",
                                           "display": "Alcohol dependence, uncomplicated"}]},
                      "onsetDateTime": self.ago(60), "recordedDate": self.ago(60)},
              WITHHELD, RELEASED, "substance use disorder (42 CFR Part 2): sensitive")
        money = {"value": 125.5, "currency": "USD"}
        common = {"resourceType": "ExplanationOfBenefit", "status": "active", "patient": patient,
                  "type": {"coding": [{"system": CLAIM_TYPE, "code": "professional"}]},
                  "insurer": {"display": "Payer under test"}, "provider": {"display": "Springfield Clinic"},
                  "insurance": [{"focal": True, "coverage": coverage}]}
        served = self.ago(365)
        datum("claim", {**common, "use": "claim", "outcome": "complete", "created": served,
                        "billablePeriod": {"start": served, "end": served},
                        "item": [{"sequence": 1, "servicedDate": served, "net": money,
                                  "productOrService": {"coding": [{"system": "http://www.ama-assn.org/go/cpt",
                                                                   "code": "99213"}]},
                                  "adjudication": [{"category": {"coding": [{"system": ADJUDICATION,
                                                                             "code": "submitted"}]},
                                                    "amount": money}]}],
                        "total": [{"category": {"coding": [{"system": ADJUDICATION, "code": "submitted"}]},
                                   "amount": money}],
                        "payment": {"amount": money, "date": served}},
              NON_FINANCIAL, NON_FINANCIAL, "a claim: leaves without amounts (CARIN BB non-financial)")
        datum("prior_auth", {**common, "use": "preauthorization", "outcome": "queued", "created": self.ago(30),
                             "adjudication": [{"category": {"coding": [{"system": ADJUDICATION, "code": "submitted"}]},
                                               "extension": [{"url": WHEN_ADJUDICATED,
                                                              "valueDateTime": self.ago(30) + "T10:00:00Z"}]}],
                             "item": [{"sequence": 1, "productOrService": {"coding": [
                                 {"system": "http://www.ama-assn.org/go/cpt", "code": "97110"}]}}]},
              RELEASED, RELEASED, "a pending prior authorization")
        self.data[key] = data


def build(payer_identifier: str, run: str | None = None, today: date | None = None) -> Fixtures:
    """The members, their data and the transaction that stores them."""
    run = run or uuid.uuid4().hex[:10]
    b = _Builder(run, payer_identifier, today or datetime.now(timezone.utc).date())
    b.member("plain")
    # Twins: one card, one surname, one birth date and address; only the first name tells them apart.
    family, born = b.name(), b.born(2005, 2015)
    for twin in ("twin_a", "twin_b"):
        b.member(twin, card=f"{run}-twins", relationship="child", family=family, born=born, gender="female")
    b.member("nobody", expect=NOT_FOUND, stored=False)
    # Two members this payer cannot tell apart without a card: same name, birth date and gender.
    given, family, born, gender = b.member("ambiguous", expect=MULTIPLE, stored=False)
    for n in (1, 2):
        b.person(f"ambiguous_{n}", given, family, born, gender, f"{run}-ambiguous-{n}")
    b.history("history_regular")
    b.history("history_sensitive")
    b.member("bulk_match")
    b.member("bulk_constrained")
    b.member("bulk_nobody", expect=NOT_FOUND, stored=False)
    b.put({"resourceType": "Observation", "id": b.id("bulk_match-weight"), "status": "final",
           "subject": {"reference": f"Patient/{b.id('bulk_match')}"},
           "code": {"coding": [{"system": LOINC, "code": "29463-7", "display": "Body weight"}]},
           "effectiveDateTime": b.ago(10), "valueQuantity": {"value": 80, "unit": "kg"}})
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": b.entries}
    return Fixtures(run, payer_identifier, b.members, b.data, bundle)


async def store(upstream: str, fixtures: Fixtures) -> None:
    """Writes the members straight into the FHIR store (one transaction), as a payer's own load would."""
    async with aiohttp.ClientSession() as http:
        async with http.post(upstream.rstrip("/"), json=fixtures.load,
                             headers={"Content-Type": "application/fhir+json",
                                      "Accept": "application/fhir+json"}) as resp:
            if resp.status != 200:
                raise SeedFailed(f"{upstream} refused the members' transaction ({resp.status}): "
                                 f"{(await resp.text())[:500]}")
