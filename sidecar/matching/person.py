"""A person as the matcher compares them: names folded, dates parsed, identifiers normalised.

Built the same way from a request (MemberPatient + CoverageToMatch) and from a candidate at this payer (Patient +
the Coverages it is the beneficiary of), so every comparison is like with like.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv", "v", "2nd", "3rd", "junior", "senior"})
# Each generational suffix in one spelling.
GENERATIONS = {"junior": "jr", "senior": "sr", "2nd": "ii", "3rd": "iii"}
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"
_NOT_LETTERS = re.compile(r"[^a-z ]+")
_NOT_DIGITS = re.compile(r"\D+")
_NOT_ALNUM = re.compile(r"[^0-9A-Za-z]+")
GENDERS = {"m": "male", "male": "male", "f": "female", "female": "female"}


def fold(text: object) -> str:
    """Lower case, diacritics and punctuation gone, spaces collapsed: `Zoë  O'Brien-Núñez` → `zoe obrien nunez`."""
    if not isinstance(text, str):
        return ""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    plain = plain.replace("'", "").replace("-", " ")
    return " ".join(_NOT_LETTERS.sub(" ", plain).split())


def member_id(value: object) -> str:
    """Card numbers as typed: spaces, dashes and leading zeros do not count (`00-123 45` → `12345`)."""
    return _NOT_ALNUM.sub("", value).upper().lstrip("0") if isinstance(value, str) else ""


def parse_birth_date(value: object) -> date | None:
    if not isinstance(value, str) or len(value) != 10:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class Person:
    given: str                      # first given name, folded
    middle: tuple[str, ...]         # further given names and initials
    family: tuple[str, ...]         # each family name, folded, suffixes removed
    birth_date: date | None
    gender: str | None              # "male" / "female"; anything else is unknown
    postal: str | None
    phones: frozenset[str]
    address: str | None             # first line of the first address, folded
    city: str | None
    ssn: str | None                 # digits as sent: nine, or only the last four
    member_ids: frozenset[str]      # the person's own member numbers (Coverage.identifier; at this payer also
                                    # the Patient's identifiers)
    subscriber_ids: frozenset[str]  # Coverage.subscriberId: the subscription's, on every dependent's card too
    dependent: bool                 # at this payer: covered as someone's spouse, child… (Coverage.relationship)
    generation: str | None = None   # the generational suffix (jr, sr, ii, iii…), wherever in the name it was typed

    @property
    def card_ids(self) -> frozenset[str]:
        return self.member_ids | self.subscriber_ids

    @property
    def family_tokens(self) -> frozenset[str]:
        return frozenset(token for name in self.family for token in name.split())

    @property
    def demographics_key(self) -> str:
        """Who a request is about, without its card data (for spotting card numbers tried one after another)."""
        return "|".join([self.given, " ".join(self.family), self.birth_date.isoformat() if self.birth_date else ""])


def names_of(patient: dict) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    names = [n for n in patient.get("name") or () if isinstance(n, dict)]
    names.sort(key=lambda n: {"official": 0, "usual": 1}.get(n.get("use"), 2))
    given: list[str] = []
    family: list[str] = []
    for name in names:
        words = [w for g in name.get("given") or () for w in fold(g).split() if w not in SUFFIXES]
        if words and not given:
            given = words
        surname = " ".join(w for w in fold(name.get("family")).split() if w not in SUFFIXES)
        if surname and surname not in family:
            family.append(surname)
    return (given[0] if given else ""), tuple(given[1:]), tuple(family)


def generation_of(patient: dict) -> str | None:
    """The first generational suffix in the Patient's names: `suffix`, or typed into the given or family name."""
    for name in patient.get("name") or ():
        if not isinstance(name, dict):
            continue
        parts = [*(name.get("suffix") or ()), *(name.get("given") or ()), name.get("family")]
        for word in (w for part in parts for w in fold(part).split()):
            if word in SUFFIXES:
                return GENERATIONS.get(word, word)
    return None


def _ssn(identifiers: list) -> str | None:
    for identifier in identifiers:
        codes = {c.get("code") for c in (identifier.get("type") or {}).get("coding") or () if isinstance(c, dict)}
        if identifier.get("system") == SSN_SYSTEM or "SS" in codes:
            digits = _NOT_DIGITS.sub("", identifier.get("value") or "")
            if len(digits) >= 4:
                return digits
    return None


def _member_numbers(coverages: list[dict]) -> set[str]:
    return {member_id(i.get("value")) for coverage in coverages for i in coverage.get("identifier") or ()
            if isinstance(i, dict) and member_id(i.get("value"))}


def _dependent(coverages: list[dict]) -> bool:
    """Covered under someone else's subscription: a Coverage whose relationship is coded other than `self`."""
    for coverage in coverages:
        relationship = coverage.get("relationship")
        codings = relationship.get("coding") or () if isinstance(relationship, dict) else ()
        if {c.get("code") for c in codings if isinstance(c, dict) and isinstance(c.get("code"), str)} - {"self"}:
            return True
    return False


def _subscriber_ids(coverages: list[dict]) -> frozenset[str]:
    return frozenset(member_id(c.get("subscriberId")) for c in coverages if member_id(c.get("subscriberId")))


def person_of(patient: dict, coverages: list[dict], patient_ids_are_card_ids: bool) -> Person:
    """`patient_ids_are_card_ids`: at this payer a Patient's own identifiers are its member ids; in a request they
    are the new payer's, so only the CoverageToMatch is card data."""
    given, middle, family = names_of(patient)
    identifiers = [i for i in patient.get("identifier") or () if isinstance(i, dict)]
    ssn = _ssn(identifiers)
    ids = _member_numbers(coverages)
    if patient_ids_are_card_ids:
        ids |= {member_id(i.get("value")) for i in identifiers if member_id(i.get("value"))
                and _NOT_DIGITS.sub("", i.get("value") or "") != ssn}
    addresses = [a for a in patient.get("address") or () if isinstance(a, dict)]
    first = addresses[0] if addresses else {}
    postal = _NOT_DIGITS.sub("", first.get("postalCode") or "")[:5] or None
    lines = first.get("line") or []
    phones = frozenset(_NOT_DIGITS.sub("", t.get("value") or "")[-10:] for t in patient.get("telecom") or ()
                       if isinstance(t, dict) and t.get("system") == "phone" and len(_NOT_DIGITS.sub("", t.get("value") or "")) >= 10)
    return Person(given, middle, family, parse_birth_date(patient.get("birthDate")),
                  GENDERS.get(str(patient.get("gender", "")).lower()), postal, phones,
                  fold(lines[0]) if lines else None, fold(first.get("city")) or None, ssn, frozenset(ids),
                  _subscriber_ids(coverages), patient_ids_are_card_ids and _dependent(coverages),
                  generation_of(patient))
