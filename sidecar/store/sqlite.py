"""The store in one SQLite file: one server and the admin commands beside it (WAL lets them write while it runs)."""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Sequence

from sidecar.store.db import DATABASE_FILE, Store
from sidecar.store.schema import migrate


def _dict_row(cursor: sqlite3.Cursor, values: tuple) -> dict:
    return {column[0]: value for column, value in zip(cursor.description, values)}


class SqliteStore(Store):
    dialect = "sqlite"

    def __init__(self, data_dir: Path, file_name: str = DATABASE_FILE) -> None:
        super().__init__()
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / file_name
        self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        self.conn.row_factory = _dict_row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        migrate(self)
        self.changed()

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[dict]:
        return self.conn.execute(sql, args).fetchall()

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self.conn.execute(sql, args).rowcount

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)

    def _begin(self, lock: str | None) -> None:
        # IMMEDIATE takes the database's write lock at once: every writer is serialised, named lock or not.
        self.conn.execute("BEGIN IMMEDIATE")

    def _end(self, commit: bool) -> None:
        self.conn.execute("COMMIT" if commit else "ROLLBACK")

    def _close(self) -> None:
        self.conn.close()
