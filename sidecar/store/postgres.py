"""The store in a PostgreSQL database: every replica of the service, and the admin commands, share it.

Each process holds one connection (used from its store thread only), in autocommit outside transactions. Store
functions write `?` placeholders; they become psycopg's `%s` here. A named lock is a transaction-scoped advisory
lock, so concurrent writers of one critical section (the audit chain's head, migrations) take turns. A connection
lost (PostgreSQL restarted, a network cut) fails the statement in hand and is opened again for the next one.
"""
from __future__ import annotations

import zlib
from typing import Any, Sequence

import psycopg
from psycopg.rows import dict_row

from sidecar.store.db import Store, StoreUnavailable
from sidecar.store.schema import migrate

CONNECT_TIMEOUT_SECONDS = 10


def _placeholders(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresStore(Store):
    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.conn = self._connect()
        migrate(self)
        self.changed()

    def _connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(self.url, autocommit=True, row_factory=dict_row,
                                   connect_timeout=CONNECT_TIMEOUT_SECONDS, application_name="pdex-sidecar")
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"cannot reach the PostgreSQL store: {str(exc).strip()}") from None

    def _cursor(self) -> psycopg.Cursor:
        if self.conn.closed and not self._depth:
            self.conn = self._connect()
        return self.conn.cursor()

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[dict]:
        with self._cursor() as cursor:
            cursor.execute(_placeholders(sql) if args else sql, args or None)
            return cursor.fetchall() if cursor.description else []

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        with self._cursor() as cursor:
            cursor.execute(_placeholders(sql) if args else sql, args or None)
            return cursor.rowcount

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with self._cursor() as cursor:
                cursor.executemany(_placeholders(sql), rows)

    def _begin(self, lock: str | None) -> None:
        self.execute("BEGIN")
        if lock is not None:
            try:
                self.execute("SELECT pg_advisory_xact_lock(?)", [zlib.crc32(lock.encode())])
            except BaseException:
                self._end(commit=False)
                raise

    def _end(self, commit: bool) -> None:
        if self.conn.closed:
            return
        self.execute("COMMIT" if commit else "ROLLBACK")

    def _close(self) -> None:
        self.conn.close()
