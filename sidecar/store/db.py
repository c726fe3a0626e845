"""The sidecar's state: one SQLite file (one server) or one PostgreSQL database (any number of replicas).

Every `pdex-sidecar serve` and every admin command opened on the same store URL works on the same state. Store
functions (the other modules of this package) are written once, in the SQL both dialects share: `?` placeholders,
`INSERT … ON CONFLICT`, `RETURNING`. A server touches its store only from one dedicated thread (`Store.run`), so the
event loop never blocks on the database and the connection is never used by two threads at once.

`changed()` tells a server that the state it caches (clients, signing keys, grants) was changed by anyone: a
trigger-maintained counter (`state_version`) is compared with the last one seen, so admin commands and other
replicas are noticed within `state_refresh_seconds` whatever the dialect.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

T = TypeVar("T")

DATABASE_FILE = "sidecar.db"


class StoreUnavailable(RuntimeError):
    """The store cannot be opened (PostgreSQL down or refusing); the message names the server, never a password."""


class Store:
    """The operations store functions use; `SqliteStore` and `PostgresStore` carry them out."""

    dialect: str

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._depth = 0
        self._state_version: int | None = None

    # --- what each dialect provides --------------------------------------------------------------------------------
    def query(self, sql: str, args: Sequence[Any] = ()) -> list[dict]:
        """Every row of a SELECT (or of a statement with RETURNING), as dicts."""
        raise NotImplementedError

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """A statement; returns how many rows it changed."""
        raise NotImplementedError

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        raise NotImplementedError

    def _begin(self, lock: str | None) -> None:
        raise NotImplementedError

    def _end(self, commit: bool) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    # --- shared ------------------------------------------------------------------------------------------------------
    def one(self, sql: str, args: Sequence[Any] = ()) -> dict | None:
        rows = self.query(sql, args)
        return rows[0] if rows else None

    def insert(self, table: str, row: dict[str, Any], conflict: str = "") -> int:
        """Insert `row` (column → value); `conflict` is an `ON CONFLICT` clause's rest, e.g. `(id) DO NOTHING`.
        Returns the rows inserted (0 when the conflict clause did nothing)."""
        sql = f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})"
        return self.execute(f"{sql} ON CONFLICT {conflict}" if conflict else sql, list(row.values()))

    def scalar(self, sql: str, args: Sequence[Any] = ()) -> Any:
        row = self.one(sql, args)
        return next(iter(row.values())) if row else None

    @contextmanager
    def transaction(self, lock: str | None = None) -> Iterator["Store"]:
        """`with store.transaction():` one write transaction; an inner one joins the outer. `lock` names a
        critical section that concurrent writers on other connections enter one at a time (the audit chain's head)."""
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self._begin(lock)
        self._depth = 1
        try:
            yield self
        except BaseException:
            self._depth = 0
            self._end(commit=False)
            raise
        self._depth = 0
        self._end(commit=True)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a store function on the store's own thread."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def ping(self) -> None:
        """Raises unless the database answers."""
        self.scalar("SELECT 1")

    def changed(self) -> bool:
        """True once after clients, signing keys or grants changed, by this process or any other."""
        version = self.scalar("SELECT version FROM state_version")
        if version == self._state_version:
            return False
        self._state_version = version
        return True

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._close()


def open_store(url: str, data_dir: Path) -> Store:
    """The store `url` names (`postgresql://…`, `sqlite:///PATH`); unset, the SQLite file in `data_dir`."""
    url = url.strip()
    if url.startswith(("postgresql://", "postgres://")):
        from sidecar.store.postgres import PostgresStore
        return PostgresStore(url)
    from sidecar.store.sqlite import SqliteStore
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        return SqliteStore(path.parent, path.name)
    return SqliteStore(data_dir)
