"""Candidate retrieval: a few indexed HAPI searches per request, so rosters of millions need no copy of their own.

The blocks, run together:
- the birth date as sent, a day either side, and with day and month swapped (`Patient?birthdate=…`, one search
  each: HAPI's date parameters take no OR lists);
- the family name tokens with the first given name (`Patient?family=…&given=…`; HAPI's string search ignores
  case and accents), for birth dates mistyped beyond those variants;
- the card: `Coverage?identifier=` and `Patient?identifier=` with the numbers as sent and normalised (R4 has no
  search parameter on `Coverage.subscriberId`; the subscriber id still counts in the score).
Each block is capped; candidates' Coverages then come in one `Coverage?beneficiary=` search. Because candidates
come from HAPI at request time, a member added or changed in HAPI is matchable at once: there is no index to
keep in step (the choice asked for in issue 5; HAPI's own search indexes on birthdate, family and identifier do
the blocking).
"""
from __future__ import annotations

import asyncio
from datetime import date, timedelta

from sidecar.matching.person import Person, member_id
from sidecar.proxy.upstream import Upstream

BLOCK_SIZE = 200


def birth_date_variants(birth_date: date) -> list[str]:
    variants = {birth_date, birth_date - timedelta(days=1), birth_date + timedelta(days=1)}
    try:
        variants.add(date(birth_date.year, birth_date.day, birth_date.month))
    except ValueError:
        pass
    return sorted(d.isoformat() for d in variants)


def card_values(request: Person, raw_ids: list[str]) -> list[str]:
    values = {v for v in raw_ids if v} | set(request.member_ids)
    return sorted(values)


class CandidateSource:
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream

    async def candidates(self, request: Person, raw_card_ids: list[str]) -> tuple[dict[str, dict], dict[str, list[dict]]]:
        """Candidate Patients by id, and each one's Coverages (as beneficiary)."""
        searches = []
        if request.birth_date:  # HAPI's date parameters take no OR lists: one search per variant
            searches += [("Patient", {"birthdate": variant}) for variant in birth_date_variants(request.birth_date)]
        if request.family_tokens and request.given:
            searches.append(("Patient", {"family": ",".join(sorted(request.family_tokens)), "given": request.given}))
        cards = card_values(request, raw_card_ids)
        if cards:
            searches.append(("Patient", {"identifier": ",".join(cards)}))
            searches.append(("Coverage", {"identifier": ",".join(cards)}))
        results = await asyncio.gather(*(self.upstream.search(t, {**p, "_count": str(BLOCK_SIZE)})
                                         for t, p in searches))
        patients: dict[str, dict] = {}
        beneficiaries: set[str] = set()
        for (resource_type, _), found in zip(searches, results):
            for resource in found:
                if resource_type == "Patient":
                    patients[resource["id"]] = resource
                else:
                    ref = (resource.get("beneficiary") or {}).get("reference", "")
                    if ref.startswith("Patient/"):
                        beneficiaries.add(ref.split("/")[1])
        missing = sorted(beneficiaries - patients.keys())
        if missing:
            for patient in await self.upstream.by_ids("Patient", missing):
                patients[patient["id"]] = patient
        coverages: dict[str, list[dict]] = {pid: [] for pid in patients}
        if patients:
            for coverage in await self.upstream.search("Coverage", {
                    "beneficiary": ",".join(f"Patient/{pid}" for pid in sorted(patients)),
                    "_count": str(BLOCK_SIZE * 4)}):
                ref = (coverage.get("beneficiary") or {}).get("reference", "")
                if ref.startswith("Patient/") and ref[8:] in coverages:
                    coverages[ref[8:]].append(coverage)
        return patients, coverages


def raw_card_ids(coverage: dict) -> list[str]:
    values = [coverage.get("subscriberId")] + [i.get("value") for i in coverage.get("identifier") or ()
                                               if isinstance(i, dict)]
    out = []
    for value in values:
        if isinstance(value, str) and value.strip():
            out.append(value.strip())
            if member_id(value) and member_id(value) != value:
                out.append(member_id(value))
    return out
