"""Household false matches: what FEBRL4 cannot show, since none of its people share a home.

One family under one subscription at one address: subscriber, spouse, a son named after his father, twin girls with
consecutive SSNs, their twin brother, a younger daughter; each has a member number of their own (the subscriber id
with a person code). Each member is requested as another payer would send them, with and without SSN and gender,
with no card, with the subscriber id, or with the subscriber's own member number (the new payer copied the wrong
card), while this payer covers every other member, or only one of them; once with everyone's own SSN, once with
every dependent carrying the subscriber's. Any match is false: the person
asked for is not covered here. Scores with the product's scorer (SSN sharing among the candidates included) and
decision at the default settings (no server). Prints the false matches by (requested, matched, roster) and their total.

    .venv/bin/python bench/household_matches.py
"""
from __future__ import annotations

from collections import Counter
from typing import Iterator

from sidecar.config import Settings
from sidecar.matching.person import SSN_SYSTEM, Person, person_of
from sidecar.matching.scoring import Scorer, decide, load_nicknames, load_weights

HOME = {"line": ["12 Oak Street"], "city": "Springfield", "postalCode": "62704"}
CARD = "XK1234567"
CARDS = {  # what the request's CoverageToMatch carries
    "no card": None,
    "the subscriber id": {"subscriberId": CARD},
    "the subscriber's member number": {"identifier": [{"value": f"{CARD}-01"}]},
}
SUBSCRIBER_SSN = "123456789"
RELATIONSHIP_SYSTEM = "http://terminology.hl7.org/CodeSystem/subscriber-relationship"
FAMILY = {  # given, birth date, gender, own SSN, relationship to the subscriber
    "father": ("John", "1970-03-04", "male", SUBSCRIBER_SSN, "self"),
    "mother": ("Mary", "1972-07-09", "female", "987654321", "spouse"),
    "junior": ("John", "1998-01-02", "male", "321654987", "child"),
    "twin-emma": ("Emma", "2005-05-05", "female", "555001234", "child"),
    "twin-olivia": ("Olivia", "2005-05-05", "female", "555001235", "child"),
    "twin-liam": ("Liam", "2005-05-05", "male", "555001236", "child"),
    "daughter": ("Sophia", "2008-11-12", "female", "444556666", "child"),
}


def patient(member: str, ssn: str | None, gender: bool) -> dict:
    given, birth_date, sex, _, _ = FAMILY[member]
    resource = {"resourceType": "Patient", "name": [{"family": "Smith", "given": [given]}], "birthDate": birth_date,
                "address": [HOME]}
    if gender:
        resource["gender"] = sex
    if ssn:
        resource["identifier"] = [{"system": SSN_SYSTEM, "value": ssn}]
    return resource


def coverage(number: int, relationship: str) -> dict:
    """A member's Coverage at this payer: the subscription's id, their own member number, how they are covered."""
    return {"subscriberId": CARD, "identifier": [{"value": f"{CARD}-{number:02d}"}],
            "relationship": {"coding": [{"system": RELATIONSHIP_SYSTEM, "code": relationship}]}}


def roster(dependents_carry_subscriber_ssn: bool) -> dict[str, Person]:
    return {member: person_of(patient(member, SUBSCRIBER_SSN if dependents_carry_subscriber_ssn else own, True),
                              [coverage(n, relationship)], True)
            for n, (member, (_, _, _, own, relationship)) in enumerate(FAMILY.items(), start=1)}


def requests(member: str) -> Iterator[tuple[str, Person]]:
    """(what card the request carries, the request)."""
    own = FAMILY[member][3]
    for ssn in {own, SUBSCRIBER_SSN, None}:
        for gender in (True, False):
            for card, coverage in CARDS.items():
                yield card, person_of(patient(member, ssn, gender), [coverage] if coverage else [], False)


def false_matches(scorer: Scorer, settings: Settings) -> Counter[tuple[str, str, str]]:
    """(requested, matched, what the roster holds and the request's card) -> how many of the requests matched
    someone."""
    bars = (settings.match_threshold, settings.match_margin, settings.match_individual_minimum)
    false: Counter[tuple[str, str, str]] = Counter()
    for carried in (False, True):
        covered = roster(carried)
        for member in FAMILY:
            others = [name for name in covered if name != member]
            for card, request in requests(member):
                for subset in [others] + [[name] for name in others]:
                    candidates = {name: covered[name] for name in subset}
                    holders = frozenset(name for name, person in candidates.items()  # as `Coverage?identifier=`
                                        if request.card_ids & person.member_ids)
                    scores = scorer.score_candidates(request, candidates, holders)
                    verdict = decide(list(scores.items()), *bars)
                    if verdict.outcome == "match" and verdict.best:
                        where = ("dependents carry the subscriber's SSN" if carried else "own SSNs") + \
                            ("; rest of family covered" if len(subset) > 1 else "; only this one covered") + \
                            f"; request with {card}"
                        false[(member, verdict.best[0], where)] += 1
    return false


def main() -> None:
    false = false_matches(Scorer(load_weights(None), load_nicknames()), Settings())
    for (member, matched, where), count in sorted(false.items()):
        print(f"{member:>12} -> {matched:<12} {count:>3}  ({where})")
    attempts = 2 * sum(len(list(requests(member))) * len(FAMILY) for member in FAMILY)
    print(f"false matches: {sum(false.values())} of {attempts} requests for a member this payer does not cover")


if __name__ == "__main__":
    main()
