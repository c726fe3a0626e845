"""Asynchronous jobs (bulk exports and bulk member matches), their files, and the Member Match Groups they made.

A job belongs to the client that started it: only that client polls it, cancels it or downloads its files. Its
row is written before the kick-off is answered, so a restart finds it and resumes or fails it; its files are
listed only once all of them are written, so a client never sees a half-filtered result as complete.
"""
from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sidecar.store.db import Store

ACCEPTED, RUNNING, COMPLETE, FAILED, CANCELLED, EXPIRED = "accepted", "running", "complete", "failed", "cancelled", "expired"
LIVE_STATES = (ACCEPTED, RUNNING)
EXPORT, BULK_MATCH = "export", "bulk-member-match"


def new_id() -> str:
    return secrets.token_urlsafe(18)


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    client_id: str
    organization: str
    state: str
    request_url: str
    params: dict[str, Any]
    created_at: float
    upstream_poll: str | None
    progress: str | None
    transaction_time: str | None
    error_status: int | None
    error_text: str | None
    expires_at: float | None

    @classmethod
    def of(cls, row: dict) -> "Job":
        return cls(row["id"], row["kind"], row["client_id"], row["organization"], row["state"], row["request_url"],
                   json.loads(row["params"]), row["created_at"], row["upstream_poll"], row["progress"],
                   row["transaction_time"], row["error_status"], row["error_text"], row["expires_at"])


@dataclass(frozen=True)
class JobFile:
    id: str
    job_id: str
    section: str   # "output" or "error"
    type: str
    name: str
    count: int

    @classmethod
    def of(cls, row: dict) -> "JobFile":
        return cls(row["id"], row["job_id"], row["section"], row["type"], row["name"], row["count"])


def create_job(store: Store, kind: str, client_id: str, organization: str, request_url: str,
               params: dict[str, Any]) -> Job:
    now = time.time()
    row = {"id": new_id(), "kind": kind, "client_id": client_id, "organization": organization, "state": ACCEPTED,
           "request_url": request_url, "params": json.dumps(params), "created_at": now, "updated_at": now,
           "upstream_poll": None, "progress": None, "transaction_time": None, "error_status": None,
           "error_text": None, "expires_at": None}
    store.db["jobs"].insert(row)
    return Job.of(row)


def get_job(store: Store, job_id: str) -> Job | None:
    rows = list(store.db.query("SELECT * FROM jobs WHERE id = ?", [job_id]))
    return Job.of(rows[0]) if rows else None


def live_jobs(store: Store) -> list[Job]:
    return [Job.of(row) for row in store.db.query(
        f"SELECT * FROM jobs WHERE state IN ({','.join('?' * len(LIVE_STATES))}) ORDER BY created_at", LIVE_STATES)]


def completed_exports(store: Store, organizations: list[str]) -> list[dict]:
    """The completed exports of these organizations: who, what was asked, when it was made and finished."""
    if not organizations:
        return []
    marks = ",".join("?" * len(organizations))
    return [dict(r) for r in store.db.query(
        f"SELECT organization, request_url, params, created_at, updated_at FROM jobs WHERE kind = ? AND state = ? "
        f"AND organization IN ({marks})", [EXPORT, COMPLETE, *organizations])]


@dataclass(frozen=True)
class JobTally:
    kind: str
    state: str
    count: int
    oldest_created_at: float


def job_tallies(store: Store) -> list[JobTally]:
    """How many jobs there are of each kind in each state, and when the oldest of them was created."""
    return [JobTally(*row) for row in store.db.execute(
        "SELECT kind, state, COUNT(*), MIN(created_at) FROM jobs GROUP BY kind, state").fetchall()]


def update_job(store: Store, job_id: str, **fields: Any) -> None:
    fields["updated_at"] = time.time()
    assignments = ", ".join(f"{name} = ?" for name in fields)
    store.db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", [*fields.values(), job_id])


def set_state_if_live(store: Store, job_id: str, state: str, **fields: Any) -> bool:
    """Move a job that is still accepted or running (not cancelled meanwhile) to `state`; False if it was not."""
    fields = {"state": state, "updated_at": time.time(), **fields}
    assignments = ", ".join(f"{name} = ?" for name in fields)
    cursor = store.db.execute(
        f"UPDATE jobs SET {assignments} WHERE id = ? AND state IN ({','.join('?' * len(LIVE_STATES))})",
        [*fields.values(), job_id, *LIVE_STATES])
    return cursor.rowcount == 1


def complete_job(store: Store, job_id: str, files: list[JobFile], transaction_time: str, expires_at: float) -> bool:
    """List the job's files and mark it complete in one transaction (unless it was cancelled meanwhile)."""
    with store.transaction():
        state = store.db.execute("SELECT state FROM jobs WHERE id = ?", [job_id]).fetchone()
        if state is None or state[0] not in LIVE_STATES:
            return False
        store.db.execute("DELETE FROM job_files WHERE job_id = ?", [job_id])
        for f in files:
            store.db.execute("INSERT INTO job_files (id, job_id, section, type, name, count) VALUES (?, ?, ?, ?, ?, ?)",
                             [f.id, f.job_id, f.section, f.type, f.name, f.count])
        store.db.execute("UPDATE jobs SET state = ?, transaction_time = ?, expires_at = ?, updated_at = ?, "
                         "progress = NULL WHERE id = ?", [COMPLETE, transaction_time, expires_at, time.time(), job_id])
    return True


def job_files(store: Store, job_id: str) -> list[JobFile]:
    return [JobFile.of(r) for r in store.db.query("SELECT * FROM job_files WHERE job_id = ? ORDER BY rowid", [job_id])]


def get_file(store: Store, job_id: str, file_id: str) -> JobFile | None:
    rows = list(store.db.query("SELECT * FROM job_files WHERE job_id = ? AND id = ?", [job_id, file_id]))
    return JobFile.of(rows[0]) if rows else None


def expired_jobs(store: Store, now: float) -> list[Job]:
    return [Job.of(row) for row in store.db.query(
        "SELECT * FROM jobs WHERE state = ? AND expires_at IS NOT NULL AND expires_at < ?", [COMPLETE, now])]


# --- bulk member match: per-member results (so an interrupted job resumes where it stopped) ------------------------

def record_match_result(store: Store, job_id: str, index: int, outcome: str, patient_id: str | None) -> None:
    store.db.execute("INSERT OR REPLACE INTO bulk_match_results (job_id, idx, outcome, patient_id) VALUES (?, ?, ?, ?)",
                     [job_id, index, outcome, patient_id])


def match_results(store: Store, job_id: str) -> dict[int, tuple[str, str | None]]:
    return {r["idx"]: (r["outcome"], r["patient_id"]) for r in store.db.query(
        "SELECT idx, outcome, patient_id FROM bulk_match_results WHERE job_id = ?", [job_id])}


# --- Member Match Groups -------------------------------------------------------------------------------------------

def record_groups(store: Store, organization: str, job_id: str, groups: dict[str, str]) -> None:
    """`groups`: code (match, nomatch, consentconstraint) → HAPI Group id."""
    for code, group_id in groups.items():
        store.db.execute("INSERT OR REPLACE INTO member_groups (group_id, organization, job_id, code) VALUES (?, ?, ?, ?)",
                         [group_id, organization, job_id, code])


def groups_of(store: Store, organization: str) -> list[str]:
    return [r[0] for r in store.db.execute("SELECT group_id FROM member_groups WHERE organization = ? ORDER BY rowid",
                                           [organization])]


def group_owner(store: Store, group_id: str) -> str | None:
    row = store.db.execute("SELECT organization FROM member_groups WHERE group_id = ?", [group_id]).fetchone()
    return row[0] if row else None
