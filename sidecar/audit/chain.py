"""Append-only audit records, each chained to the previous one by SHA-256.

A record's hash covers its own fields and the previous record's hash, so altering or removing any record (other
than the very last) breaks the chain at that point, and `verify` names where. The server queues records and a
single writer appends them in small batches on the store's thread. Each batch reads the chain head and appends
after it inside a transaction holding the store's `audit` lock (SQLite's write lock; a PostgreSQL advisory lock),
so the replicas and admin commands sharing a store append to one chain, one batch at a time, with no gap in `seq`.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterator

import orjson

from sidecar.store.db import Store

log = logging.getLogger("sidecar.audit")

GENESIS = "0" * 64
_FIELDS = ("at", "event", "client_id", "organization", "request", "decision", "reason", "detail")


@dataclass
class AuditRecord:
    event: str  # token, request, admin
    decision: str  # allowed, refused, or an admin action's outcome
    client_id: str | None = None
    organization: str | None = None
    request: str | None = None
    reason: str | None = None
    detail: dict | None = None
    at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="microseconds"))

    def row(self) -> dict:
        # Field by field: dataclasses.asdict deep-copies `detail` first, which cost most of a record's append.
        return {"at": self.at, "event": self.event, "client_id": self.client_id, "organization": self.organization,
                "request": self.request, "decision": self.decision, "reason": self.reason,
                "detail": orjson.dumps(self.detail, option=orjson.OPT_SORT_KEYS).decode() if self.detail else None}


def record_hash(prev_hash: str, row: dict) -> str:
    canonical = orjson.dumps({name: row.get(name) for name in _FIELDS}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(prev_hash.encode() + canonical).hexdigest()


def append(store: Store, records: list[AuditRecord]) -> None:
    """Append records to the chain (synchronous; the server calls it on the store's thread)."""
    if not records:
        return
    with store.transaction(lock="audit"):
        head = store.one("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        seq, prev = (head["seq"], head["hash"]) if head else (0, GENESIS)
        rows = []
        for record in records:
            row = record.row()
            row["prev_hash"] = prev
            row["hash"] = prev = record_hash(prev, row)
            seq += 1
            rows.append((seq, *(row[name] for name in _FIELDS), row["prev_hash"], row["hash"]))
        store.execute_many(f"INSERT INTO audit (seq, {', '.join(_FIELDS)}, prev_hash, hash) "
                           f"VALUES ({', '.join('?' * (len(_FIELDS) + 3))})", rows)


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    records: int
    problem: str | None = None


def _records(store: Store, page: int = 5000) -> Iterator[dict]:
    """The chain in order, a page at a time (a year of audit does not fit in memory at once)."""
    after = None
    while True:
        rows = store.query(f"SELECT seq, prev_hash, hash, {', '.join(_FIELDS)} FROM audit "
                           f"{'WHERE seq > ? ' if after is not None else ''}ORDER BY seq LIMIT {page}",
                           [after] if after is not None else [])
        yield from rows
        if len(rows) < page:
            return
        after = rows[-1]["seq"]


def verify(store: Store) -> VerifyResult:
    prev = GENESIS
    expected_seq = None
    count = 0
    for row in _records(store):
        seq = row["seq"]
        if expected_seq is not None and seq != expected_seq:
            return VerifyResult(False, count, f"record {expected_seq} is missing")
        if row["prev_hash"] != prev:
            return VerifyResult(False, count, f"record {seq} does not follow the record before it")
        if record_hash(prev, row) != row["hash"]:
            return VerifyResult(False, count, f"record {seq} was altered")
        prev = row["hash"]
        expected_seq = seq + 1
        count += 1
    return VerifyResult(True, count)


class AuditLog:
    """The server's audit writer: `record()` never waits on disk; a background task appends in batches."""

    def __init__(self, store: Store, flush_interval: float = 0.1, batch_size: int = 500) -> None:
        self.store = store
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self._queue: asyncio.Queue[AuditRecord] = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._pending: list[AuditRecord] = []

    def record(self, record: AuditRecord) -> None:
        self._queue.put_nowait(record)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def _run(self) -> None:
        while True:
            self._pending.append(await self._queue.get())
            await asyncio.sleep(self.flush_interval)
            await self.flush()

    async def flush(self) -> None:
        """Write everything queued so far (also at shutdown, and by tests)."""
        while self._pending or not self._queue.empty():
            while not self._queue.empty() and len(self._pending) < self.batch_size:
                self._pending.append(self._queue.get_nowait())
            batch, self._pending = self._pending, []
            try:
                await self._append(batch)
            except Exception:
                # A failed write must not take requests down; the records go to the log so they are not lost.
                log.exception("audit append failed", extra={"records": [r.row() for r in batch]})

    async def _append(self, batch: list[AuditRecord]) -> None:
        """One retry: a store connection found broken fails its first statement and is opened again for the next."""
        try:
            await self.store.run(append, self.store, batch)
        except Exception:
            log.warning("audit append failed; retrying once", exc_info=True)
            await self.store.run(append, self.store, batch)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.flush()
