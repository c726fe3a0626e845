"""The store's schema, as numbered migrations the product applies itself at every open.

`schema_version` holds the last migration applied. A store made before migrations were numbered (a SQLite file
with the tables of migration 1 and no `schema_version`) is taken as it is: migration 1 only creates what is
missing. Migrations run inside one write transaction under the `schema` lock, so replicas starting together on an
empty PostgreSQL database apply them once. Column types are written once and named per dialect (`{real}`…).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sidecar.store.db import Store

_TYPES = {
    "sqlite": {"serial": "INTEGER PRIMARY KEY", "real": "REAL", "int": "INTEGER"},
    "postgresql": {"serial": "BIGSERIAL PRIMARY KEY", "real": "DOUBLE PRECISION", "int": "BIGINT"},
}

_TABLES_V1 = [
    """CREATE TABLE IF NOT EXISTS clients (
        client_id TEXT PRIMARY KEY, organization TEXT NOT NULL, scopes TEXT NOT NULL, jwks TEXT, jwks_url TEXT,
        unrestricted {int} NOT NULL DEFAULT 0, enabled {int} NOT NULL DEFAULT 1,
        tokens_valid_after {real} NOT NULL DEFAULT 0, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS assertion_jti (
        client_id TEXT NOT NULL, jti TEXT NOT NULL, expires_at {real} NOT NULL, PRIMARY KEY (client_id, jti))""",
    """CREATE TABLE IF NOT EXISTS signing_keys (
        kid TEXT PRIMARY KEY, private_pem TEXT NOT NULL, created_at {real} NOT NULL, retired_at {real})""",
    "CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS grants (
        id {serial}, organization TEXT NOT NULL, patient_id TEXT NOT NULL, consent TEXT, policy TEXT NOT NULL,
        valid_from {real} NOT NULL, valid_until {real}, revoked_at {real})""",
    "CREATE INDEX IF NOT EXISTS grants_by_organization ON grants (organization, patient_id)",
    "CREATE INDEX IF NOT EXISTS grants_by_patient ON grants (patient_id)",
    """CREATE TABLE IF NOT EXISTS match_attempts (
        client_id TEXT NOT NULL, at {real} NOT NULL, demographics_key TEXT NOT NULL, card_key TEXT NOT NULL,
        outcome TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS match_attempts_by_client ON match_attempts (client_id, at)",
    """CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY, kind TEXT NOT NULL, client_id TEXT NOT NULL, organization TEXT NOT NULL,
        state TEXT NOT NULL, request_url TEXT NOT NULL, params TEXT NOT NULL, created_at {real} NOT NULL,
        updated_at {real} NOT NULL, upstream_poll TEXT, progress TEXT, transaction_time TEXT, error_status {int},
        error_text TEXT, expires_at {real})""",
    "CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state)",
    """CREATE TABLE IF NOT EXISTS job_files (
        id TEXT PRIMARY KEY, job_id TEXT NOT NULL, section TEXT NOT NULL, type TEXT NOT NULL, name TEXT NOT NULL,
        count {int} NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS job_files_by_job ON job_files (job_id)",
    """CREATE TABLE IF NOT EXISTS bulk_match_results (
        job_id TEXT NOT NULL, idx {int} NOT NULL, outcome TEXT NOT NULL, patient_id TEXT, PRIMARY KEY (job_id, idx))""",
    """CREATE TABLE IF NOT EXISTS member_groups (
        group_id TEXT PRIMARY KEY, organization TEXT NOT NULL, job_id TEXT NOT NULL, code TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS member_groups_by_organization ON member_groups (organization)",
    """CREATE TABLE IF NOT EXISTS partners (
        name TEXT PRIMARY KEY, fhir_base TEXT NOT NULL, client_id TEXT NOT NULL, private_jwks_file TEXT NOT NULL,
        identifiers TEXT NOT NULL, scopes TEXT NOT NULL, created_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS exchanges (
        partner TEXT NOT NULL, member TEXT NOT NULL, state TEXT NOT NULL, partner_patient TEXT, export_scope TEXT,
        detail TEXT, attempts {int} NOT NULL DEFAULT 0, next_attempt {real}, ingested {int} NOT NULL DEFAULT 0,
        updated_at {real} NOT NULL, PRIMARY KEY (partner, member))""",
    """CREATE TABLE IF NOT EXISTS pull_exports (
        partner TEXT NOT NULL, export_scope TEXT NOT NULL, transaction_time TEXT NOT NULL,
        PRIMARY KEY (partner, export_scope))""",
    """CREATE TABLE IF NOT EXISTS ingested (
        partner TEXT NOT NULL, source TEXT NOT NULL, local TEXT NOT NULL, member TEXT, digest TEXT NOT NULL,
        at {real} NOT NULL, PRIMARY KEY (partner, source))""",
    """CREATE TABLE IF NOT EXISTS member_optins (
        id {serial}, member TEXT NOT NULL, partner TEXT, other_plan TEXT, policy TEXT NOT NULL, consent TEXT,
        coverage TEXT, coverage_start TEXT, prior_end TEXT, opted_in_at {real} NOT NULL, withdrawn_at {real})""",
    "CREATE INDEX IF NOT EXISTS member_optins_by_member ON member_optins (member)",
    """CREATE TABLE IF NOT EXISTS exchange_times (
        partner TEXT NOT NULL, member TEXT NOT NULL, first_requested_at {real}, first_received_at {real},
        last_pulled_at {real}, PRIMARY KEY (partner, member))""",
    """CREATE TABLE IF NOT EXISTS audit (
        seq {int} PRIMARY KEY, at TEXT NOT NULL, event TEXT NOT NULL, client_id TEXT, organization TEXT, request TEXT,
        decision TEXT NOT NULL, reason TEXT, detail TEXT, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)""",
]

# The state a server caches: a change to any of these tables bumps `state_version` (see Store.changed).
WATCHED = ("clients", "signing_keys", "grants")


def _watch(tables: tuple[str, ...], dialect: str) -> list[str]:
    """Triggers bumping `state_version` on any change to these tables (once per statement where the dialect can)."""
    if dialect == "sqlite":
        return [f"CREATE TRIGGER {table}_{event.lower()} AFTER {event} ON {table} "
                f"BEGIN UPDATE state_version SET version = version + 1; END"
                for table in tables for event in ("INSERT", "UPDATE", "DELETE")]
    return [f"CREATE TRIGGER {table}_changed AFTER INSERT OR UPDATE OR DELETE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION bump_state_version()" for table in tables]


_REPLICAS_V2_COMMON = [
    # A job is run by the replica holding its lease, renewed while it runs; an expired lease is taken over.
    "ALTER TABLE jobs ADD COLUMN lease_owner TEXT",
    "ALTER TABLE jobs ADD COLUMN lease_until {real}",
    # Orders that were SQLite's rowid, which PostgreSQL has not.
    "ALTER TABLE job_files ADD COLUMN position {int} NOT NULL DEFAULT 0",
    "ALTER TABLE member_groups ADD COLUMN recorded_at {real} NOT NULL DEFAULT 0",
    "CREATE TABLE state_version (version {int} NOT NULL)",
    "INSERT INTO state_version (version) VALUES (0)",
]

_REPLICAS_V2 = {
    "sqlite": [
        *_REPLICAS_V2_COMMON,
        "UPDATE job_files SET position = rowid",
        "UPDATE member_groups SET recorded_at = rowid",
        *_watch(WATCHED, "sqlite"),
    ],
    "postgresql": [
        *_REPLICAS_V2_COMMON,
        """CREATE FUNCTION bump_state_version() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN UPDATE state_version SET version = version + 1; RETURN NULL; END $$""",
        *_watch(WATCHED, "postgresql"),
    ],
}

# The public URLs the service's replicas are reached at: a token any of them issued is valid at all.
_PUBLIC_URLS = "CREATE TABLE public_urls (url TEXT PRIMARY KEY, announced_at {real} NOT NULL)"

MIGRATIONS: list[dict[str, list[str]]] = [
    {"sqlite": _TABLES_V1, "postgresql": _TABLES_V1},
    _REPLICAS_V2,
    {dialect: [_PUBLIC_URLS, *_watch(("public_urls",), dialect)] for dialect in ("sqlite", "postgresql")},
]


def migrate(store: "Store") -> int:
    """Apply the migrations this store lacks; returns its schema version."""
    types = _TYPES[store.dialect]
    with store.transaction(lock="schema"):
        store.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = store.scalar("SELECT MAX(version) FROM schema_version") or 0
        for version, statements in enumerate(MIGRATIONS, start=1):
            if version <= current:
                continue
            for statement in statements[store.dialect]:
                store.execute(statement.format(**types) if "{" in statement else statement)
            store.execute("INSERT INTO schema_version (version) VALUES (?)", [version])
    return len(MIGRATIONS)
