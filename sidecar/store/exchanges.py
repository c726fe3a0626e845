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
    where, args = ("WHERE partner = ?", [partner]) if partner else ("", [])
    return [Exchange.of(row) for row in store.query(f"SELECT * FROM exchanges {where} ORDER BY partner, member", args)]


def exchanges_of(store: Store, partner: str) -> dict[str, Exchange]:
    return {e.member: e for e in exchanges(store, partner)}


def exchange_state(store: Store, partner: str, member: str) -> str | None:
    """One member's state with one partner (None: never sent)."""
    return store.scalar("SELECT state FROM exchanges WHERE partner = ? AND member = ?", [partner, member])


def record_outcome(store: Store, partner: str, member: str, state: str, *, detail: str | None = None,
                   partner_patient: str | None = None, export_scope: str | None = None,
                   next_attempt: float | None = None) -> None:
    """A match attempt's outcome; a member already holding data keeps what was ingested."""
    now = time.time()
    store.insert("exchanges", {"partner": partner, "member": member, "state": state, "detail": detail,
                               "partner_patient": partner_patient, "export_scope": export_scope, "attempts": 1,
                               "next_attempt": next_attempt, "ingested": 0, "updated_at": now},
                 conflict="(partner, member) DO UPDATE SET state = excluded.state, detail = excluded.detail, "
                          "partner_patient = excluded.partner_patient, export_scope = excluded.export_scope, "
                          "attempts = exchanges.attempts + 1, next_attempt = excluded.next_attempt, "
                          "updated_at = excluded.updated_at")
    if state != MISSING_DATA:  # a member never sent has no request time
        store.execute("INSERT INTO exchange_times (partner, member, first_requested_at) VALUES (?, ?, ?) "
                         "ON CONFLICT (partner, member) DO UPDATE SET first_requested_at = "
                         "COALESCE(exchange_times.first_requested_at, excluded.first_requested_at)", [partner, member, now])


def record_ingest(store: Store, partner: str, member: str | None, written: int, detail: str | None,
                  rows: list[dict]) -> None:
    """One member's ingest committed at HAPI (or, with no member, the resources of no member): the resources it
    wrote and the member's state, in one transaction."""
    with store.transaction():
        store.execute_many(
            "INSERT INTO ingested (partner, source, local, member, digest, at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (partner, source) DO UPDATE SET local = excluded.local, member = excluded.member, "
            "digest = excluded.digest, at = excluded.at",
            [(r["partner"], r["source"], r["local"], r["member"], r["digest"], r["at"]) for r in rows])
        if member is not None:
            store.execute("UPDATE exchanges SET state = ?, ingested = ingested + ?, detail = ?, updated_at = ? "
                             "WHERE partner = ? AND member = ?",
                             [INGESTED, written, detail, time.time(), partner, member])
            store.execute("UPDATE exchange_times SET first_received_at = COALESCE(first_received_at, ?) "
                             "WHERE partner = ? AND member = ?", [time.time(), partner, member])


def record_pulled(store: Store, partner: str, members: list[str], at: float | None = None) -> None:
    """These members' data was brought up to date from the partner (an export fully ingested): the clock of
    concurrent coverage's quarterly pulls."""
    now = time.time() if at is None else at
    store.execute_many("UPDATE exchange_times SET last_pulled_at = ? WHERE partner = ? AND member = ?",
                              [(now, partner, member) for member in members])


def record_ingest_failure(store: Store, partner: str, member: str, detail: str) -> None:
    store.execute("UPDATE exchanges SET state = ?, detail = ?, updated_at = ? WHERE partner = ? AND member = ?",
                     [INGEST_FAILED, detail[:500], time.time(), partner, member])


def ingested_digests(store: Store, partner: str) -> dict[str, str]:
    """Source reference (`Type/id` at the partner) → digest of what was ingested from it."""
    return {row["source"]: row["digest"] for row in store.query(
        "SELECT source, digest FROM ingested WHERE partner = ?", [partner])}


def last_transaction_time(store: Store, partner: str, export_scope: str) -> str | None:
    return store.scalar("SELECT transaction_time FROM pull_exports WHERE partner = ? AND export_scope = ?",
                        [partner, export_scope])


def record_transaction_time(store: Store, partner: str, export_scope: str, transaction_time: str) -> None:
    store.insert("pull_exports", {"partner": partner, "export_scope": export_scope, "transaction_time": transaction_time},
                 conflict="(partner, export_scope) DO UPDATE SET transaction_time = excluded.transaction_time")


def exchange_times(store: Store) -> dict[tuple[str, str], dict]:
    """(partner, member) → when the member was first requested from the partner, first received, last pulled."""
    return {(r["partner"], r["member"]): r for r in store.query("SELECT * FROM exchange_times")}


@dataclass(frozen=True)
class ExchangeTally:
    partner: str
    state: str
    members: int
    ingested: int


def exchange_tallies(store: Store) -> list[ExchangeTally]:
    """How many members stand in each state with each partner, and the resources ingested for them."""
    return [ExchangeTally(row["partner"], row["state"], row["members"], row["ingested"]) for row in store.query(
        "SELECT partner, state, COUNT(*) AS members, CAST(SUM(ingested) AS BIGINT) AS ingested FROM exchanges "
        "GROUP BY partner, state")]
