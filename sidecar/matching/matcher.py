"""One member's matching, as `$member-match`, `$bulk-member-match` and `match explain` run it: candidates from HAPI,
Coverages where they could change the decision, scores off the event loop, and the decision."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sidecar.config import Settings
from sidecar.matching.candidates import CandidateSource, raw_card_ids
from sidecar.matching.person import Person, person_of
from sidecar.matching.scoring import SSN_AGREES, Score, Scorer, Verdict, decide


@dataclass(frozen=True)
class Found:
    verdict: Verdict
    patients: dict[str, dict]          # the candidates, by Patient id
    coverages: dict[str, list[dict]]   # the Coverages fetched for them
    scores: dict[str, Score]


class Matcher:
    def __init__(self, settings: Settings, scorer: Scorer, candidates: CandidateSource) -> None:
        self.settings = settings
        self.scorer = scorer
        self.candidates = candidates

    async def match(self, person: Person, coverage: dict) -> Found:
        """The first blocks; the name searches only when those give no match."""
        blocks = await self.candidates.first_blocks(person, raw_card_ids(coverage))
        fetched = dict(blocks.holders_coverages)
        found = await self._verdict(person, blocks.patients, blocks.card_holders, fetched)
        if found.verdict.outcome != "match":
            patients = await self.candidates.name_block(person, blocks.patients)
            found = await self._verdict(person, patients, blocks.card_holders, fetched)
        return found

    async def _coverages(self, patient_ids: list[str], fetched: dict[str, list[dict]]) -> dict[str, list[dict]]:
        """The candidates' Coverages, fetched only for those not fetched yet in this match (`fetched`, kept)."""
        if missing := [pid for pid in patient_ids if pid not in fetched]:
            fetched.update(await self.candidates.coverages(missing))
        return {pid: fetched[pid] for pid in patient_ids}

    async def _verdict(self, person: Person, patients: dict[str, dict], card_holders: frozenset[str],
                       fetched: dict[str, list[dict]]) -> Found:
        """Score on the Patients alone, then fetch Coverages only for the candidates they could change the decision
        for, those within the margin of the threshold: with a card in the request, its agreement (subscriber ids,
        member numbers) could lift them there; without, an agreeing SSN counts only if it is not on a dependent's
        record (Coverage.relationship). When candidates are too close to call, theirs are fetched too: siblings
        under one subscription are told apart by which of them the first name agrees with exactly. `fetched`: the
        Coverages already fetched in this match (the card holders'), so none is fetched twice; a candidate's count
        only where they would have been fetched, so what was fetched early never changes a decision."""
        loop = asyncio.get_running_loop()
        coverages: dict[str, list[dict]] = {pid: [] for pid in patients}

        def score_all() -> dict[str, Score]:
            # The SSN search brings every Patient carrying the request's SSN, so a shared one is seen as shared.
            return self.scorer.score_candidates(person, {pid: person_of(patient, coverages[pid], True)
                                                         for pid, patient in patients.items()}, card_holders)

        card_weight = max(self.scorer.weights["member_id"][level] for level in ("agree", "subscriber"))
        floor = self.settings.match_threshold - self.settings.match_margin

        def coverages_matter(score: Score) -> bool:
            if person.card_ids:
                return score.total - score.contributions.get("member_id", ("", 0.0))[1] + card_weight >= floor
            return score.contributions.get("ssn", ("", 0.0))[0] in SSN_AGREES and score.total >= floor

        scores = await loop.run_in_executor(None, score_all)
        worth = sorted(pid for pid, score in scores.items() if coverages_matter(score))
        if worth:
            worth = sorted(set(worth) | card_holders)  # whose subscription the card is
            coverages.update(await self._coverages(worth, fetched))
            scores = await loop.run_in_executor(None, score_all)
        verdict = self._decide(scores)
        close = sorted(set(_too_close_to_call(verdict, scores, self.settings.match_margin)) - set(worth))
        if close:
            coverages.update(await self._coverages(close, fetched))
            scores = await loop.run_in_executor(None, score_all)
            verdict = self._decide(scores)
        return Found(verdict, patients, coverages, scores)

    def _decide(self, scores: dict[str, Score]) -> Verdict:
        return decide(list(scores.items()), self.settings.match_threshold, self.settings.match_margin,
                      self.settings.match_individual_minimum)


def _too_close_to_call(verdict: Verdict, scores: dict[str, Score], margin: float) -> list[str]:
    """The candidates within the margin of the best, when one of them has the first name exactly."""
    if verdict.outcome != "multiple-matches" or verdict.best is None:
        return []
    close = [pid for pid, score in scores.items() if score.total > verdict.best[1].total - margin]
    exact = any(scores[pid].contributions.get("given", ("",))[0] == "exact" for pid in close)
    return close if exact else []
