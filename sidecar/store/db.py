"""One SQLite database in the data dir, opened by the server and by the admin commands alike.

The server touches it only from one dedicated thread (`Store.run`), so the event loop never blocks on disk and
the connection is never shared between threads at the same time. WAL mode lets the admin commands write while
the server runs; `changed()` tells the server that another process (an admin command, another replica) wrote.
"""
from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, TypeVar

import sqlite_utils

T = TypeVar("T")

DATABASE_FILE = "sidecar.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY,
    organization TEXT NOT NULL,
    scopes TEXT NOT NULL,
    jwks TEXT,
    jwks_url TEXT,
    unrestricted INTEGER NOT NULL DEFAULT 0,
    enabled INTEGER NOT NULL DEFAULT 1,
    tokens_valid_after REAL NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS assertion_jti (
    client_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE TABLE IF NOT EXISTS signing_keys (
    kid TEXT PRIMARY KEY,
    private_pem TEXT NOT NULL,
    created_at REAL NOT NULL,
    retired_at REAL
);
CREATE TABLE IF NOT EXISTS secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS grants (
    id INTEGER PRIMARY KEY,
    organization TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    consent TEXT,
    policy TEXT NOT NULL,
    valid_from REAL NOT NULL,
    valid_until REAL,
    revoked_at REAL
);
CREATE INDEX IF NOT EXISTS grants_by_organization ON grants (organization, patient_id);
CREATE INDEX IF NOT EXISTS grants_by_patient ON grants (patient_id);
CREATE TABLE IF NOT EXISTS match_attempts (
    client_id TEXT NOT NULL,
    at REAL NOT NULL,
    demographics_key TEXT NOT NULL,
    card_key TEXT NOT NULL,
    outcome TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS match_attempts_by_client ON match_attempts (client_id, at);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    client_id TEXT NOT NULL,
    organization TEXT NOT NULL,
    state TEXT NOT NULL,
    request_url TEXT NOT NULL,
    params TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    upstream_poll TEXT,
    progress TEXT,
    transaction_time TEXT,
    error_status INTEGER,
    error_text TEXT,
    expires_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state);
CREATE TABLE IF NOT EXISTS job_files (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    section TEXT NOT NULL,
    type TEXT NOT NULL,
    name TEXT NOT NULL,
    count INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS job_files_by_job ON job_files (job_id);
CREATE TABLE IF NOT EXISTS bulk_match_results (
    job_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    patient_id TEXT,
    PRIMARY KEY (job_id, idx)
);
CREATE TABLE IF NOT EXISTS member_groups (
    group_id TEXT PRIMARY KEY,
    organization TEXT NOT NULL,
    job_id TEXT NOT NULL,
    code TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS member_groups_by_organization ON member_groups (organization);
CREATE TABLE IF NOT EXISTS partners (
    name TEXT PRIMARY KEY,
    fhir_base TEXT NOT NULL,
    client_id TEXT NOT NULL,
    private_jwks_file TEXT NOT NULL,
    identifiers TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS exchanges (
    partner TEXT NOT NULL,
    member TEXT NOT NULL,
    state TEXT NOT NULL,
    partner_patient TEXT,
    export_scope TEXT,
    detail TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL,
    ingested INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    PRIMARY KEY (partner, member)
);
CREATE TABLE IF NOT EXISTS pull_exports (
    partner TEXT NOT NULL,
    export_scope TEXT NOT NULL,
    transaction_time TEXT NOT NULL,
    PRIMARY KEY (partner, export_scope)
);
CREATE TABLE IF NOT EXISTS ingested (
    partner TEXT NOT NULL,
    source TEXT NOT NULL,
    local TEXT NOT NULL,
    member TEXT,
    digest TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (partner, source)
);
CREATE TABLE IF NOT EXISTS member_optins (
    id INTEGER PRIMARY KEY,
    member TEXT NOT NULL,
    partner TEXT,
    other_plan TEXT,
    policy TEXT NOT NULL,
    consent TEXT,
    coverage TEXT,
    coverage_start TEXT,
    prior_end TEXT,
    opted_in_at REAL NOT NULL,
    withdrawn_at REAL
);
CREATE INDEX IF NOT EXISTS member_optins_by_member ON member_optins (member);
CREATE TABLE IF NOT EXISTS exchange_times (
    partner TEXT NOT NULL,
    member TEXT NOT NULL,
    first_requested_at REAL,
    first_received_at REAL,
    last_pulled_at REAL,
    PRIMARY KEY (partner, member)
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    event TEXT NOT NULL,
    client_id TEXT,
    organization TEXT,
    request TEXT,
    decision TEXT NOT NULL,
    reason TEXT,
    detail TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
"""


class Store:
    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / DATABASE_FILE
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        self.db = sqlite_utils.Database(conn)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.conn.executescript(_SCHEMA)
        self._executor: ThreadPoolExecutor | None = None
        self._data_version = self._read_data_version()

    async def run(self, fn: Callable[..., T], *args) -> T:
        """Run a store function on the store's own thread."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _read_data_version(self) -> int:
        return self.db.execute("PRAGMA data_version").fetchone()[0]

    def changed(self) -> bool:
        """True once after another connection committed (this connection's own writes do not count)."""
        version = self._read_data_version()
        if version == self._data_version:
            return False
        self._data_version = version
        return True

    def transaction(self):
        """`with store.transaction():` an immediate write transaction (other writers wait for it)."""
        return _Immediate(self.db.conn)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self.db.close()


class _Immediate:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
