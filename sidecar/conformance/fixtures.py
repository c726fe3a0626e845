"""The fixture file `conformance seed` writes and `conformance run` reads: the test members as a partner payer
would describe them, what the server should answer for each, and the data each member's history holds."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

# What a member-match request should get.
MATCH, NOT_FOUND, MULTIPLE = "match", "not-found", "multiple-matches"
# What a partner should get of one resource under a consent policy.
RELEASED, WITHHELD, NON_FINANCIAL = "released", "withheld", "non-financial"
REGULAR, SENSITIVE = "regular", "sensitive"


class FixtureError(ValueError):
    """The fixture file is missing, not JSON, or lacks what the suite needs."""


@dataclass(frozen=True)
class Member:
    patient: dict             # MemberPatient as the requesting payer sends it
    coverage: dict            # CoverageToMatch
    expect: str               # MATCH, NOT_FOUND or MULTIPLE
    member_id: str | None = None   # `Patient/<id>` at the server, when the seed knows it


@dataclass(frozen=True)
class Datum:
    reference: str            # `Type/id` at the server
    expect: dict[str, str]    # consent policy (REGULAR, SENSITIVE) → RELEASED, WITHHELD or NON_FINANCIAL
    why: str                  # what makes it a test: "older than five years", "42 CFR Part 2"...


@dataclass(frozen=True)
class Fixtures:
    run: str
    payer_identifier: str     # system|value naming the server's payer in a Consent's source actor
    members: dict[str, Member]
    data: dict[str, dict[str, Datum]] = field(default_factory=dict)   # member key → datum key → Datum
    load: dict | None = None  # the transaction Bundle that stores the members (for servers seed cannot write to)

    def member(self, key: str) -> Member:
        if key not in self.members:
            raise FixtureError(f"the fixture file has no member {key!r} (made by an older seed?)")
        return self.members[key]

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2)

    @classmethod
    def from_dict(cls, raw: dict) -> "Fixtures":
        try:
            return cls(raw["run"], raw["payer_identifier"],
                       {k: Member(**m) for k, m in raw["members"].items()},
                       {k: {d: Datum(**v) for d, v in data.items()} for k, data in raw.get("data", {}).items()},
                       raw.get("load"))
        except (KeyError, TypeError, AttributeError) as exc:
            raise FixtureError(f"not a conformance fixture file: {exc!r}") from exc

    @classmethod
    def read(cls, path: Path) -> "Fixtures":
        try:
            return cls.from_dict(orjson.loads(path.read_bytes()))
        except (OSError, orjson.JSONDecodeError) as exc:
            raise FixtureError(f"cannot read fixture file {path}: {exc}") from exc
