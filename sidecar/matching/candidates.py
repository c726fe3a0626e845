"""Candidate retrieval: a few indexed HAPI searches per request, so rosters of millions need no copy of their own.

First, together:
- the birth date as sent or a day either side (one range search), and with day and month swapped;
- the card: `Coverage?identifier=` and `Patient?identifier=` with the numbers as sent and normalised (R4 has no
  search parameter on `Coverage.subscriberId`; the subscriber id still counts in the score);
- the SSN (not a last four alone) as a us-ssn `Patient.identifier`.
Then, only if those give no confident match, four string searches together (HAPI's string search ignores case and
accents, matches names that start with the value, and is much slower), for birth dates mistyped beyond the variants:
the family name tokens with the first given name (`Patient?family=…&given=…`); the same names typed in each other's
place (`family=<given>&given=<family>`); for a surname typo the first two miss, the first three letters of each
family token with the first given name's initial; and the first given name at the request's postal code
(`address-postalcode=…&given=…`), for a family name changed with no birth date to find them by. Each block is
capped. The Patients the card searches found are the card's holders at this payer: to any other candidate, the card
is someone else's (see `scoring.py`). Coverages (for the subscriber id) are fetched only for the candidates a card
agreement could still carry over the threshold (see `matcher.py`). Because candidates come from HAPI at request
time, a member added or changed in HAPI is matchable at once: there is no index to keep in step (the choice asked
for in issue 5; HAPI's own search indexes on birthdate, family and identifier do the blocking).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, timedelta

from sidecar.matching.person import SSN_SYSTEM, Person, member_id
from sidecar.hapi.client import HapiClient

BLOCK_SIZE = 200
# Letters of a family name the typo search keeps: a typo after them is still found.
PREFIX_LETTERS = 3


def birth_date_searches(birth_date: date) -> list[list[tuple[str, str]]]:
    """The birth date a day either side (one range search), and with day and month swapped when that is another
    date. HAPI's date parameters take no OR lists, so the swap is a search of its own."""
    searches = [[("birthdate", f"ge{(birth_date - timedelta(days=1)).isoformat()}"),
                 ("birthdate", f"le{(birth_date + timedelta(days=1)).isoformat()}")]]
    try:
        swapped = date(birth_date.year, birth_date.day, birth_date.month)
    except ValueError:
        return searches
    if abs((swapped - birth_date).days) > 1:
        searches.append([("birthdate", swapped.isoformat())])
    return searches


def ssn_values(ssn: str | None) -> list[str]:
    """An SSN as digits, and in its printed 3-2-4 form when it has nine (rosters store either); a last four alone
    is not worth a search."""
    if not ssn or len(ssn) <= 4:
        return []
    values = [ssn]
    if len(ssn) == 9:
        values.append(f"{ssn[:3]}-{ssn[3:5]}-{ssn[5:]}")
    return [f"{SSN_SYSTEM}|{value}" for value in values]


def card_values(request: Person, raw_ids: list[str]) -> list[str]:
    values = {v for v in raw_ids if v} | set(request.card_ids)
    return sorted(values)


@dataclass(frozen=True)
class FirstBlocks:
    patients: dict[str, dict]
    card_holders: frozenset[str]                # the Patients the card searches found
    holders_coverages: dict[str, list[dict]]    # their Coverages, as `CandidateSource.coverages` gives them


class CandidateSource:
    def __init__(self, upstream: HapiClient) -> None:
        self.upstream = upstream

    async def _search_all(self, searches: list[tuple[str, list[tuple[str, str]]]]) -> list[list[dict]]:
        return list(await asyncio.gather(*(self.upstream.search(t, [*p, ("_count", str(BLOCK_SIZE))])
                                           for t, p in searches)))

    async def _gather(self, searches: list[tuple[str, list[tuple[str, str]]]], patients: dict[str, dict],
                      results: list[list[dict]] | None = None) -> list[set[str]]:
        """Adds what the searches find (or found: `results`) to `patients`; the Patient ids each search found (a
        Coverage's beneficiary)."""
        if results is None:
            results = await self._search_all(searches)
        found_by = [_found_ids(resource_type, found, patients) for (resource_type, _), found in zip(searches, results)]
        missing = sorted(set().union(*found_by) - patients.keys())
        if missing:
            for patient in await self.upstream.by_ids("Patient", missing):
                patients[patient["id"]] = patient
        return found_by

    async def coverages(self, patient_ids: list[str]) -> dict[str, list[dict]]:
        """Each candidate's Coverages (as beneficiary), in one search."""
        coverages: dict[str, list[dict]] = {pid: [] for pid in patient_ids}
        if patient_ids:
            for coverage in await self.upstream.search("Coverage", [
                    ("beneficiary", ",".join(f"Patient/{pid}" for pid in patient_ids)),
                    ("_count", str(BLOCK_SIZE * 4))]):
                ref = (coverage.get("beneficiary") or {}).get("reference", "")
                if ref.startswith("Patient/") and ref[8:] in coverages:
                    coverages[ref[8:]].append(coverage)
        return coverages

    async def first_blocks(self, request: Person, raw_card_ids: list[str]) -> FirstBlocks:
        """Birth-date variants, the card and the SSN: cheap, indexed, and enough for almost every request. Also the
        ids of the Patients carrying the card here, and their Coverages: the card searches answer first, so those
        are fetched while the birth-date searches still run, and a card agreement rarely costs a round trip of its
        own (`Matcher` uses them only where it would have fetched them)."""
        cards = card_values(request, raw_card_ids)
        card_searches = [("Patient", [("identifier", ",".join(cards))]),
                         ("Coverage", [("identifier", ",".join(cards))])] if cards else []
        searches: list[tuple[str, list[tuple[str, str]]]] = []
        if request.birth_date:
            searches += [("Patient", params) for params in birth_date_searches(request.birth_date)]
        if ssns := ssn_values(request.ssn):
            searches.append(("Patient", [("identifier", ",".join(ssns))]))

        async def card_block() -> tuple[list[list[dict]], frozenset[str], dict[str, list[dict]]]:
            found = await self._search_all(card_searches)
            holders = frozenset().union(*(_found_ids(t, results, {}) for (t, _), results in zip(card_searches, found)))
            return found, holders, await self.coverages(sorted(holders))

        (card_results, holders, holders_coverages), other_results = await asyncio.gather(card_block(),
                                                                                         self._search_all(searches))
        patients: dict[str, dict] = {}
        await self._gather(card_searches + searches, patients, card_results + other_results)
        return FirstBlocks(patients, holders, holders_coverages)

    async def name_block(self, request: Person, known: dict[str, dict]) -> dict[str, dict]:
        """The name searches (`name_searches`): for birth dates mistyped beyond the variants. HAPI's string search
        is the slow one, so they run only when the first blocks found no confident match."""
        patients = dict(known)
        await self._gather([("Patient", params) for params in name_searches(request)], patients)
        return patients


def name_searches(request: Person) -> list[list[tuple[str, str]]]:
    """Family-name tokens with the first given name; the two typed in each other's place; family-name prefixes with
    the given name's initial (a surname typo past the first letters); and the first given name where the request
    lives (postal code), for a family name changed or mistyped beyond its first letters and a birth date the first
    blocks miss. Each still needs a name to agree: a candidate found by the address alone would be a household's."""
    tokens = sorted(request.family_tokens)
    searches = []
    if tokens and request.given:
        prefixes = sorted({token[:PREFIX_LETTERS] for token in tokens})
        searches += [[("family", ",".join(tokens)), ("given", request.given)],
                     [("family", request.given), ("given", ",".join(tokens))]]
        if prefixes != tokens:
            searches.append([("family", ",".join(prefixes)), ("given", request.given[0])])
    if request.postal and len(request.given) > 1:
        searches.append([("address-postalcode", request.postal), ("given", request.given)])
    return searches


def _found_ids(resource_type: str, found: list[dict], patients: dict[str, dict]) -> set[str]:
    """The Patient ids a search found (a Coverage's beneficiary); found Patients are added to `patients`."""
    ids: set[str] = set()
    for resource in found:
        if resource_type == "Patient":
            patients[resource["id"]] = resource
            ids.add(resource["id"])
        else:
            ref = (resource.get("beneficiary") or {}).get("reference", "")
            if ref.startswith("Patient/"):
                ids.add(ref.split("/")[1])
    return ids


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
