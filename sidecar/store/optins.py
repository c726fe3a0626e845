"""Members' opt-ins made on the member page (`sidecar.members`): which previous plan, which policy, when, and
whether withdrawn. The Consent and prior Coverage themselves live in HAPI; this is what the clocks are read from
(opt-in and coverage start) and what `pull --schedule` looks at for new requests."""
from __future__ import annotations

import time
from dataclasses import dataclass

from sidecar.store.db import Store


@dataclass(frozen=True)
class OptIn:
    id: int
    member: str
    partner: str | None          # a registered partner's name; None for a plan that is not one ("other")
    other_plan: str | None       # the member's words for that plan, for member services
    policy: str                  # "regular" or "sensitive"
    consent: str | None          # Consent/{id} in HAPI
    coverage: str | None         # Coverage/{id} of the prior coverage in HAPI
    coverage_start: str | None   # start of our coverage (YYYY-MM-DD), the other clock of the one-week rule
    prior_end: str | None        # end of the coverage there (YYYY-MM-DD); None: concurrent, pulled quarterly
    opted_in_at: float
    withdrawn_at: float | None

    @classmethod
    def of(cls, row: dict) -> "OptIn":
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


def record_optin(store: Store, member: str, partner: str | None, other_plan: str | None, policy: str,
                 consent: str | None, coverage: str | None, coverage_start: str | None,
                 prior_end: str | None = None, at: float | None = None) -> OptIn:
    row = {"member": member, "partner": partner, "other_plan": other_plan, "policy": policy, "consent": consent,
           "coverage": coverage, "coverage_start": coverage_start, "prior_end": prior_end,
           "opted_in_at": time.time() if at is None else at, "withdrawn_at": None}
    row["id"] = store.scalar(f"INSERT INTO member_optins ({', '.join(row)}) VALUES ({', '.join('?' * len(row))}) "
                             "RETURNING id", list(row.values()))
    return OptIn.of(row)


def optins_of(store: Store, member: str) -> list[OptIn]:
    return [OptIn.of(r) for r in store.query("SELECT * FROM member_optins WHERE member = ? ORDER BY id", [member])]


def all_optins(store: Store) -> list[OptIn]:
    """Every opt-in, in the order they were made."""
    return [OptIn.of(r) for r in store.query("SELECT * FROM member_optins ORDER BY opted_in_at, id")]


def withdraw(store: Store, member: str, optin_id: int, at: float | None = None) -> OptIn | None:
    """End one of the member's live opt-ins; None when it is not theirs or already withdrawn."""
    row = store.one("UPDATE member_optins SET withdrawn_at = ? WHERE id = ? AND member = ? AND withdrawn_at IS NULL "
                    "RETURNING *", [time.time() if at is None else at, optin_id, member])
    return OptIn.of(row) if row else None


def pending_members(store: Store, partner: str) -> list[str]:
    """Members who opted in for this partner and were never sent to it: what `pull --schedule` requests."""
    return [row["member"] for row in store.query(
        "SELECT DISTINCT o.member FROM member_optins o LEFT JOIN exchanges e "
        "ON e.partner = o.partner AND e.member = o.member "
        "WHERE o.partner = ? AND o.withdrawn_at IS NULL AND e.member IS NULL ORDER BY o.member", [partner])]
