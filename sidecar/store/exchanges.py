"""Each member's exchange with each partner: where it stands, what was ingested, and where run-off resumes.

States (see README "Pulling from other payers"):
- `matched`: the partner matched the member; data comes from `export_scope` (a Group, or Patient-level).
- `ingested`: the partner's data for the member is in our HAPI (`ingested` counts resources written so far).
- `no-match`: retried after `next_attempt`, or sooner when the member's data here changes (reconciliation).
- `needs-identifiers`: the partner found several people; retried when the member's data here changes.
- `consent-refused`: the partner cannot honour the consent; retried when the member's data here changes.
- `missing-data`: no prior coverage or consent naming the partner here; manual review.
- `rejected`: the partner called the request malformed; manual review.
- `ingest-failed`: the partner's data for the member could not be written; retried at the next pull.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from sidecar.store.db import Store

MATCHED, INGESTED = "matched", "ingested"
NO_MATCH, NEEDS_IDENTIFIERS, CONSENT_REFUSED = "no-match", "needs-identifiers", "consent-refused"
MISSING_DATA, REJECTED, INGEST_FAILED = "missing-data", "rejected", "ingest-failed"
HAS_DATA = (MATCHED, INGESTED, INGEST_FAILED)


@dataclass(frozen=True)
class Exchange:
    partner: str
    member: str
    state: str
    partner_patient: str | None
    export_scope: str | None
    detail: str | None
    attempts: int
    next_attempt: float | None
    ingested: int
    updated_at: float

    @classmethod
    def of(cls, row: dict) -> "Exchange":
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


def exchanges(store: Store, partner: str | None = None) -> list[Exchange]:
    where, args = ("partner = ?", [partner]) if partner else (None, [])
    return [Exchange.of(row) for row in store.db["exchanges"].rows_where(where, args, order_by="partner, member")]


def exchanges_of(store: Store, partner: str) -> dict[str, Exchange]:
    return {e.member: e for e in exchanges(store, partner)}


def exchange_state(store: Store, partner: str, member: str) -> str | None:
    """One member's state with one partner (None: never sent)."""
    row = store.db.execute("SELECT state FROM exchanges WHERE partner = ? AND member = ?", [partner, member]).fetchone()
    return row[0] if row else None


def record_outcome(store: Store, partner: str, member: str, state: str, *, detail: str | None = None,
                   partner_patient: str | None = None, export_scope: str | None = None,
                   next_attempt: float | None = None) -> None:
    """A match attempt's outcome; a member already holding data keeps what was ingested."""
    now = time.time()
    previous = list(store.db["exchanges"].rows_where("partner = ? AND member = ?", [partner, member]))
    attempts = (previous[0]["attempts"] if previous else 0) + 1
    ingested = previous[0]["ingested"] if previous else 0
    store.db["exchanges"].upsert({"partner": partner, "member": member, "state": state, "detail": detail,
                                  "partner_patient": partner_patient, "export_scope": export_scope,
                                  "attempts": attempts, "next_attempt": next_attempt, "ingested": ingested,
                                  "updated_at": now}, pk=("partner", "member"))
    if state != MISSING_DATA:  # a member never sent has no request time
        store.db.execute("INSERT INTO exchange_times (partner, member, first_requested_at) VALUES (?, ?, ?) "
                         "ON CONFLICT (partner, member) DO UPDATE SET first_requested_at = "
                         "COALESCE(first_requested_at, excluded.first_requested_at)", [partner, member, now])


def record_ingest(store: Store, partner: str, member: str | None, written: int, detail: str | None,
                  rows: list[dict]) -> None:
    """One member's ingest committed at HAPI (or, with no member, the resources of no member): the resources it
    wrote and the member's state, in one SQLite transaction."""
    with store.transaction():
        if rows:
            store.db["ingested"].upsert_all(rows, pk=("partner", "source"))
        if member is not None:
            store.db.execute("UPDATE exchanges SET state = ?, ingested = ingested + ?, detail = ?, updated_at = ? "
                             "WHERE partner = ? AND member = ?",
                             [INGESTED, written, detail, time.time(), partner, member])
            store.db.execute("UPDATE exchange_times SET first_received_at = COALESCE(first_received_at, ?) "
                             "WHERE partner = ? AND member = ?", [time.time(), partner, member])


def record_pulled(store: Store, partner: str, members: list[str], at: float | None = None) -> None:
    """These members' data was brought up to date from the partner (an export fully ingested): the clock of
    concurrent coverage's quarterly pulls."""
    now = time.time() if at is None else at
    store.db.conn.executemany("UPDATE exchange_times SET last_pulled_at = ? WHERE partner = ? AND member = ?",
                              [(now, partner, member) for member in members])


def record_ingest_failure(store: Store, partner: str, member: str, detail: str) -> None:
    store.db.execute("UPDATE exchanges SET state = ?, detail = ?, updated_at = ? WHERE partner = ? AND member = ?",
                     [INGEST_FAILED, detail[:500], time.time(), partner, member])


def ingested_digests(store: Store, partner: str) -> dict[str, str]:
    """Source reference (`Type/id` at the partner) → digest of what was ingested from it."""
    return {row["source"]: row["digest"] for row in store.db.query(
        "SELECT source, digest FROM ingested WHERE partner = ?", [partner])}


def last_transaction_time(store: Store, partner: str, export_scope: str) -> str | None:
    rows = list(store.db["pull_exports"].rows_where("partner = ? AND export_scope = ?", [partner, export_scope]))
    return rows[0]["transaction_time"] if rows else None


def record_transaction_time(store: Store, partner: str, export_scope: str, transaction_time: str) -> None:
    store.db["pull_exports"].upsert({"partner": partner, "export_scope": export_scope,
                                     "transaction_time": transaction_time}, pk=("partner", "export_scope"))


@dataclass(frozen=True)
class ExchangeTally:
    partner: str
    state: str
    members: int
    ingested: int


def exchange_tallies(store: Store) -> list[ExchangeTally]:
    """How many members stand in each state with each partner, and the resources ingested for them."""
    return [ExchangeTally(*row) for row in store.db.execute(
        "SELECT partner, state, COUNT(*), SUM(ingested) FROM exchanges GROUP BY partner, state").fetchall()]
