"""Fellegi–Sunter scoring: each field's agreement level adds its weight (a log2 likelihood ratio), and a match is
declared only when the best candidate clears the threshold, beats the runner-up by the margin, and the evidence
that tells one member of a household from another (first name, birth date, gender, SSN, the member's own number)
is worth the individual minimum on its own.

The default weights (`DEFAULT_WEIGHTS`, overridable field by field from a JSON file) are roughly the log2
likelihood ratios of agreement levels measured on FEBRL4, bent to the product's stance where household data breaks
the independence that Fellegi–Sunter assumes:
- street, city and postal code are one field, since they agree together for everyone at one address; a city
  alone (another postal code, or none to compare) says little: a US city holds many namesakes born near a date;
- a different first name weighs heavily against (twins, siblings), and so does a different birth date;
- a card number or a shared SSN (dependents often carry the subscriber's) never carries a match alone, and an SSN
  that several of the payer's Patients carry, or that is on a dependent's record, is no individual evidence at all;
- a member number this payer gave one person (a Patient identifier or `Coverage.identifier` that is not also the
  subscription's id) is individual evidence where neither the first name nor the birth date disagrees (otherwise
  it is a relative's card: a twin's agrees on everything else, a Jr's on the name); a subscriber id is the
  household's, on every dependent's card;
- when the first name disagrees and the birth date disagrees or is missing, no number (SSN, member number) makes
  up the individual evidence: names and birth dates are what the new payer knows of its own member, while numbers
  are copied from cards and papers, often the subscriber's (a child sent with the subscriber's SSN and no birth
  date is not the subscriber);
- with no first name to compare, only numbers (SSN, member number) count as individual evidence (birth date and
  gender are a twin's too), and so with no birth date to compare (first name and gender are a Jr's, named after
  his father at the same address, too); with neither a first name nor a birth date (both required by HRex's
  MemberPatient), nothing does: an SSN, a family name and an address are what anyone holding a household's
  papers can send;
- an SSN one off in its last digit, under a first name that is not exactly the candidate's and the candidate's
  birth date or none, says the request is the candidate's twin (twins were often given consecutive numbers), who
  is then no candidate at all (`Score.twin_number`): a twin this payer does not cover, named nearly (Anna for
  Ana), would otherwise be matched to her sister as a typo of her name;
- generational suffixes that differ (Jr against Sr, II against III) say another generation of one family, whatever
  else agrees; so does a suffix on one side only between people born a decade or more apart (John Smith Jr, asked
  for with his father's SSN, against his father recorded without one); one that agrees adds nothing (a father and
  son may both be recorded without one);
- a changed surname costs little, so strong other evidence carries it, and a name typed in the other name's place
  (given for family, family for given, or both) agrees there;
- a card this payer knows as someone else's (another Patient carries it, this candidate does not) is evidence
  against (`member_id=other_subscription`), not neutral: the request names a subscription this candidate is not on;
- agreement on a name many of this payer's members carry weighs less than on a rare one (term frequency, from
  `NameFrequencies`): the adjustment only ever lowers a weight, the same for every candidate agreeing on that name;
- between siblings under one subscription, the one whose first name agrees exactly outranks those whose first
  name only nearly agrees (twins Ana and Anna): the request names the other one (`decide`); and someone with a
  twin here (born the same day, same family name) is never matched on a first name that only nearly agrees.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from rapidfuzz.distance import JaroWinkler

from sidecar.config import ConfigError
from sidecar.matching.name_frequency import NameFrequencies
from sidecar.matching.person import Person, fold

NICKNAMES_FILE = Path(__file__).parent / "data" / "nicknames.json"

DEFAULT_WEIGHTS: dict[str, dict[str, float]] = {
    "birth_date": {"exact": 12.0, "one_day": 5.0, "transposed": 5.0, "one_digit": 4.0, "disagree": -6.0},
    "family": {"exact": 8.0, "token": 7.0, "close": 6.0, "swapped": 6.0, "similar": 3.0, "disagree": -3.0},
    "given": {"exact": 8.0, "nickname": 6.0, "close": 6.0, "middle": 5.0, "swapped": 6.0, "initial": 3.0,
              "similar": 3.0, "disagree": -8.0},
    "gender": {"agree": 1.0, "disagree": -5.0},
    "ssn": {"agree": 16.0, "one_digit": 10.0, "last_four": 8.0, "disagree": -6.0},
    "address": {"street": 9.0, "locality": 5.0, "city": 2.0, "disagree": -2.0},
    "phone": {"agree": 8.0, "disagree": -1.0},
    "member_id": {"agree": 10.0, "subscriber": 10.0, "disagree": -2.0, "other_subscription": -12.0},
    "suffix": {"agree": 0.0, "disagree": -12.0},
}
# What tells one person from another in the same household. Family name, address, phone and the subscriber id are
# shared by spouses, children and twins, so however much they add, a match also needs these to agree on their own.
DEMOGRAPHIC_FIELDS = ("birth_date", "given", "gender", "suffix")


def load_nicknames(path: Path = NICKNAMES_FILE) -> dict[str, frozenset[str]]:
    groups = json.loads(path.read_text())["groups"]
    names: dict[str, set[str]] = {}
    for group in groups:
        folded = {fold(name) for name in group}
        for name in folded:
            names.setdefault(name, set()).update(folded)
    return {name: frozenset(group) for name, group in names.items()}


def load_weights(path: Path | None) -> dict[str, dict[str, float]]:
    """The default weights, with any field's levels replaced from a JSON file shaped like DEFAULT_WEIGHTS."""
    weights = {field: dict(levels) for field, levels in DEFAULT_WEIGHTS.items()}
    if path is None:
        return weights
    try:
        document = json.loads(path.read_text())
        for field, levels in document.items():
            if field not in weights or not isinstance(levels, dict) or set(levels) - set(weights[field]):
                raise ConfigError(f"match_weights_file {path}: unknown field or level in {field!r}")
            weights[field].update({level: float(value) for level, value in levels.items()})
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise ConfigError(f"match_weights_file {path}: {exc}") from exc
    return weights


@dataclass(frozen=True)
class Score:
    total: float
    individual: float
    contributions: dict[str, tuple[str, float]]
    """field → (agreement level, weight added)"""
    subscriptions: frozenset[str] = frozenset()
    """the candidate's subscriber ids at this payer (who its siblings are)"""
    twin_key: tuple | None = None
    """birth date and family-name tokens: candidates sharing them, under other first names, may be twins"""
    twin_number: bool = False
    """the request carries an SSN one after or before this candidate's, under another first name: their twin's"""


def _generations_apart(a: date, b: date) -> bool:
    """Born a decade or more apart: another generation, whatever digits the dates share."""
    return abs(a.year - b.year) >= 10


def _suffix_level(request: Person, candidate: Person) -> str | None:
    if request.generation and candidate.generation:
        return "agree" if request.generation == candidate.generation else "disagree"
    if (request.generation or candidate.generation) and request.birth_date and candidate.birth_date \
            and _generations_apart(request.birth_date, candidate.birth_date):
        return "disagree"  # one of them is the Jr (or Sr, II…) of a family naming across generations
    return None


def _birth_date_level(a: date, b: date) -> str:
    if a == b:
        return "exact"
    if abs((a - b).days) == 1:
        return "one_day"
    if a.year == b.year and a.month == b.day and a.day == b.month:
        return "transposed"
    if _generations_apart(a, b):
        return "disagree"  # 1960 and 1980 differ in one digit, but that is another generation
    return "one_digit" if _one_typo(a.strftime("%Y%m%d"), b.strftime("%Y%m%d")) else "disagree"


def _family_level(a: Person, b: Person) -> str:
    if set(a.family) & set(b.family):
        return "exact"
    if a.family_tokens & b.family_tokens:
        return "token"  # hyphenated or compound surnames, in either order, or one part of them
    best = max((JaroWinkler.similarity(x, y) for x in a.family for y in b.family), default=0.0)
    return "close" if best >= 0.92 else "similar" if best >= 0.85 else "disagree"


def _address_level(a: Person, b: Person) -> str | None:
    """Street, city and postal code are one piece of evidence (where someone lives), not three: counted apart
    they would triple what a household shares. `locality`: the postal code agrees; `city`: only the city does."""
    postal = a.postal == b.postal if a.postal and b.postal else None
    city = JaroWinkler.similarity(a.city, b.city) >= 0.92 if a.city and b.city else None
    if postal is None and city is None and not (a.address and b.address):
        return None
    street = bool(a.address and b.address) and JaroWinkler.similarity(a.address, b.address) >= 0.9
    if street and (postal or city or (postal is None and city is None)):
        return "street"
    return "locality" if postal else "city" if city else "disagree"


def _one_typo(a: str, b: str) -> bool:
    """One digit mistyped, or two neighbours swapped."""
    if len(a) != len(b):
        return False
    differ = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
    return len(differ) == 1 or (len(differ) == 2 and differ[1] == differ[0] + 1
                                and a[differ[0]] == b[differ[1]] and a[differ[1]] == b[differ[0]])


def _ssn_level(a: str, b: str) -> str:
    if a == b:
        return "agree"
    if min(len(a), len(b)) == 4:
        return "last_four" if a[-4:] == b[-4:] else "disagree"
    return "one_digit" if _one_typo(a, b) else "disagree"


_NAMES_DIFFER = ("similar", "disagree")
# Given-name levels that say "the same first name".
GIVEN_AGREES = frozenset({"exact", "nickname", "close", "middle", "swapped"})


def shared_ssns(people: Iterable[Person]) -> frozenset[str]:
    """SSNs that more than one of these Patients carries: a household's, where dependents carry the subscriber's."""
    counts = Counter(person.ssn for person in people if person.ssn and len(person.ssn) > 4)
    return frozenset(ssn for ssn, carriers in counts.items() if carriers > 1)


SSN_AGREES = frozenset({"agree", "one_digit", "last_four"})


def _ssn_tells_nobody_apart(levels: dict[str, str], candidate: Person, shared: frozenset[str]) -> bool:
    """An SSN that agrees (or nearly) yet cannot tell this person from another in the household: one several of the
    payer's Patients carry, or one on a dependent's record, which may be the subscriber's even when the subscriber
    is not covered here. It still adds to the total; it cannot make up the individual evidence. (A twin's
    consecutive number is `_twin_number`'s: that candidate is set aside altogether.)"""
    return levels.get("ssn") in SSN_AGREES and (candidate.ssn in shared or candidate.dependent)


def _twin_number(levels: dict[str, str], request: Person, candidate: Person) -> bool:
    """The request's SSN differs from the candidate's in its last digit only, its first name is not exactly the
    candidate's, and its birth date is the candidate's or missing: a twin's consecutive number and name."""
    return levels.get("ssn") == "one_digit" and levels.get("given") != "exact" \
        and levels.get("birth_date", "exact") == "exact" and (request.ssn or "")[:-1] == (candidate.ssn or "")[:-1]


def _names_alike(names: Iterable[str], others: Iterable[str]) -> bool:
    """One of `names` is one of `others` as typed, or nearly (a typo, a space put in or left out)."""
    squeezed = [n.replace(" ", "") for n in others if len(n) > 2]
    return any(JaroWinkler.similarity(name.replace(" ", ""), other) >= 0.92
               for name in names if len(name) > 2 for other in squeezed)


def _given_forms(person: Person) -> tuple[str, ...]:
    """The first given name, and all of them run together (`thred gold` was one name with a space typed in)."""
    return person.given, person.given + "".join(person.middle)


def _family_forms(person: Person) -> tuple[str, ...]:
    return (*person.family, *person.family_tokens)


def _card_level(request: Person, candidate: Person, someone_elses: bool) -> str:
    """`agree`: the request's member number is this person's own (one this payer issued to them alone);
    `subscriber`: some other card number agrees, the subscription's, which a spouse's or child's card shows too. A
    member number that is also the subscription's id (a subscriber's, often) cannot tell the subscriber from a
    dependent whose new payer copied it from the card, so it agrees only as the subscription's.
    `other_subscription`: none agrees, and this payer knows the request's card as another Patient's
    (`someone_elses`)."""
    if request.member_ids & (candidate.member_ids - candidate.subscriber_ids):
        return "agree"
    if request.card_ids & candidate.card_ids:
        return "subscriber"
    return "other_subscription" if someone_elses else "disagree"


def _individual_fields(levels: dict[str, str], request: Person, candidate: Person,
                       shared: frozenset[str]) -> list[str]:
    """The fields whose weights make up the individual evidence."""
    # Without a first name to compare, birth date and gender are what twins share; without a birth date, first name
    # and gender are what a Jr shares with his father: only numbers tell them apart.
    fields = list(DEMOGRAPHIC_FIELDS) if "given" in levels and "birth_date" in levels else ["suffix"]
    if "birth_date" not in levels and "given" not in levels:
        # Neither a first name nor a birth date (both required by HRex's MemberPatient): an SSN with a family name
        # and an address is what a thief of a household's papers holds, not who this person is.
        return fields
    if levels.get("given") == "disagree" and levels.get("birth_date", "disagree") == "disagree":
        # Someone else, whatever numbers were copied onto their record; with no birth date to compare either, an
        # agreeing SSN is as likely a dependent's copy of the subscriber's as this person's own.
        return fields
    if not _ssn_tells_nobody_apart(levels, candidate, shared):
        fields.append("ssn")
    if levels.get("member_id") == "agree" and "disagree" not in (levels.get("given"), levels.get("birth_date")):
        fields.append("member_id")  # otherwise a relative's card: a twin's agrees on all the rest, a Jr's on the name
    return fields


# Name levels that say the name is the one asked for, so weigh less when many members carry it.
_NAME_AGREES = {"given": GIVEN_AGREES - {"swapped"}, "family": frozenset({"exact", "token", "close"})}
# A term-frequency adjustment never takes an agreeing name below this much of its weight.
TF_FLOOR = 0.5


def frequency_adjustment(weight: float, share: float | None) -> float:
    """How much less an agreement weighs (≤ 0) on a name carried by `share` of the roster: the default weight is
    log2(m/u) for an average name, so for a name whose u is `share` it is weight + log2(2^-weight / share)."""
    if not share or weight <= 0:
        return 0.0
    return max(-weight * TF_FLOOR, min(0.0, -weight - math.log2(share)))


class Scorer:
    def __init__(self, weights: dict[str, dict[str, float]], nicknames: dict[str, frozenset[str]],
                 frequencies: NameFrequencies | None = None) -> None:
        self.weights = weights
        self.nicknames = nicknames
        self.frequencies = frequencies

    def _given_level(self, a: Person, b: Person) -> str:
        if a.given == b.given:
            return "exact"
        if b.given in self.nicknames.get(a.given, ()):
            return "nickname"
        similarity = JaroWinkler.similarity(a.given, b.given)
        if similarity >= 0.92:
            return "close"
        if a.given in b.middle or b.given in a.middle:
            return "middle"  # goes by the middle name
        if len(a.given) == 1 or len(b.given) == 1:
            return "initial" if a.given[:1] == b.given[:1] else "disagree"
        return "similar" if similarity >= 0.85 else "disagree"

    def score_candidates(self, request: Person, candidates: Mapping[str, Person],
                         card_holders: frozenset[str] = frozenset()) -> dict[str, Score]:
        """Each candidate's score, an SSN that several of them carry counting as a household's (`shared_ssns`).
        `card_holders`: the candidates this payer's search on the request's card found (who carries it here). To a
        candidate on none of their subscriptions, the card is someone else's."""
        shared = shared_ssns(candidates.values())
        holders = card_holders & candidates.keys()
        subscriptions = frozenset().union(*(candidates[key].subscriber_ids for key in holders))
        return {key: self.score(request, candidate, shared,
                                bool(holders - {key}) and not candidate.subscriber_ids & subscriptions)
                for key, candidate in candidates.items()}

    def score(self, request: Person, candidate: Person, shared: frozenset[str] = frozenset(),
              card_is_someone_elses: bool = False) -> Score:
        """`shared`: SSNs several of this payer's Patients carry (`score_candidates` works them out);
        `card_is_someone_elses`: another of this payer's Patients carries the request's card."""
        levels: dict[str, str] = {}
        if request.birth_date and candidate.birth_date:
            levels["birth_date"] = _birth_date_level(request.birth_date, candidate.birth_date)
        if request.family and candidate.family:
            levels["family"] = _family_level(request, candidate)
        if request.given and candidate.given:
            levels["given"] = self._given_level(request, candidate)
            # A name typed in the other name's place (one or both) agrees there; the other is still compared.
            if levels.get("family") in _NAMES_DIFFER and \
                    _names_alike(_given_forms(request), _family_forms(candidate)):
                levels["family"] = "swapped"
            if levels["given"] in _NAMES_DIFFER and request.family and \
                    _names_alike(_family_forms(request), _given_forms(candidate)):
                levels["given"] = "swapped"
        if suffix := _suffix_level(request, candidate):
            levels["suffix"] = suffix
        if request.gender and candidate.gender:
            levels["gender"] = "agree" if request.gender == candidate.gender else "disagree"
        if request.phones and candidate.phones:
            levels["phone"] = "agree" if request.phones & candidate.phones else "disagree"
        if address := _address_level(request, candidate):
            levels["address"] = address
        if request.ssn and candidate.ssn:
            levels["ssn"] = _ssn_level(request.ssn, candidate.ssn)
        if request.card_ids and candidate.card_ids:
            levels["member_id"] = _card_level(request, candidate, card_is_someone_elses)
        contributions = {field: (level, self.weights[field][level] + self._name_adjustment(field, level, request))
                         for field, level in levels.items()}
        total = sum(weight for _, weight in contributions.values())
        individual = sum(contributions[f][1] for f in _individual_fields(levels, request, candidate, shared)
                         if f in contributions)
        twin_key = (candidate.birth_date, candidate.family_tokens) if candidate.birth_date else None
        return Score(total, individual, contributions, candidate.subscriber_ids, twin_key,
                     _twin_number(levels, request, candidate))

    def _name_adjustment(self, field: str, level: str, request: Person) -> float:
        """The term-frequency adjustment of an agreeing name, from the request's name (so every candidate agreeing
        on it gets the same one)."""
        if self.frequencies is None or level not in _NAME_AGREES.get(field, ()):
            return 0.0
        if field == "given":
            share = self.frequencies.given_share(request.given)
        else:
            share = max((self.frequencies.family_share(name) or 0.0 for name in request.family), default=0.0)
        return frequency_adjustment(self.weights[field][level], share)


@dataclass(frozen=True)
class Verdict:
    outcome: str                 # "match", "not-found" or "multiple-matches"
    best: tuple[str, Score] | None
    runner_up: tuple[str, Score] | None


# First-name levels that say "nearly the name asked for".
_GIVEN_NEAR = frozenset({"nickname", "close", "middle", "initial", "similar"})


def _given(score: Score) -> str:
    return score.contributions.get("given", ("",))[0]


def outranked_siblings(scored: list[tuple[str, Score]]) -> list[tuple[str, Score]]:
    """The candidates left once each sibling whose first name only nearly agrees is set aside for one under the same
    subscription whose first name agrees exactly: twins Ana and Anna, a request naming Anna is not about Ana."""
    named = frozenset().union(*(score.subscriptions for _, score in scored if _given(score) == "exact"))
    if not named:
        return scored
    return [(key, score) for key, score in scored if not (_given(score) in _GIVEN_NEAR and score.subscriptions & named)]


def twin_named_nearly(best: Score, scored: list[tuple[str, Score]]) -> bool:
    """The best's first name agrees only nearly, and this payer has someone born the same day under the same family
    name (a twin): a twin is matched on her own first name, never on one near it."""
    if best.twin_key is None or best.contributions.get("given", ("exact",))[0] == "exact":
        return False
    born, family = best.twin_key
    return any(other is not best and other.twin_key is not None and other.twin_key[0] == born
               and other.twin_key[1] & family for _, other in scored)


def decide(scored: list[tuple[str, Score]], threshold: float, margin: float, individual_minimum: float) -> Verdict:
    """`scored`: (patient id, score) per candidate."""
    rivals = [(key, score) for key, score in outranked_siblings(scored) if not score.twin_number]
    ranked = sorted(rivals, key=lambda item: item[1].total, reverse=True)
    best = ranked[0] if ranked else None
    runner_up = ranked[1] if len(ranked) > 1 else None
    if best is None or best[1].total < threshold or best[1].individual < individual_minimum:
        return Verdict("not-found", best, runner_up)
    if runner_up is not None and best[1].total - runner_up[1].total < margin or twin_named_nearly(best[1], scored):
        return Verdict("multiple-matches", best, runner_up)
    return Verdict("match", best, runner_up)
