"""Asynchronous jobs (bulk exports and bulk member matches), their files, and the Member Match Groups they made.

A job belongs to the client that started it: only that client polls it, cancels it or downloads its files. Its
row is written before the kick-off is answered, so a restart finds it and resumes or fails it; its files are
listed only once all of them are written, so a client never sees a half-filtered result as complete.

A live job is leased by the replica running it (`lease_owner` until `lease_until`), which renews the lease while
it works. A lease that runs out (its replica died) lets another replica claim the job and resume it; writes that
end a job are fenced by the lease, so a replica that lost its lease cannot complete or fail the job.
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


@dataclass(frozen=True)
class Lease:
    owner: str        # the replica holding it
    seconds: float    # how long a lease lasts unless renewed


def create_job(store: Store, kind: str, client_id: str, organization: str, request_url: str,
               params: dict[str, Any], lease: Lease) -> Job:
    """A new job, leased at once to the replica that accepted it."""
    now = time.time()
    row = {"id": new_id(), "kind": kind, "client_id": client_id, "organization": organization, "state": ACCEPTED,
           "request_url": request_url, "params": json.dumps(params), "created_at": now, "updated_at": now,
           "upstream_poll": None, "progress": None, "transaction_time": None, "error_status": None,
           "error_text": None, "expires_at": None, "lease_owner": lease.owner, "lease_until": now + lease.seconds}
    store.insert("jobs", row)
    return Job.of(row)


def get_job(store: Store, job_id: str) -> Job | None:
    row = store.one("SELECT * FROM jobs WHERE id = ?", [job_id])
    return Job.of(row) if row else None


_LIVE = f"state IN ({','.join('?' * len(LIVE_STATES))})"


def claim_jobs(store: Store, lease: Lease, now: float | None = None) -> list[Job]:
    """Lease to `lease.owner` every live job whose lease ran out (or that never had one), oldest first."""
    now = time.time() if now is None else now
    rows = store.query(
        f"UPDATE jobs SET lease_owner = ?, lease_until = ? WHERE {_LIVE} "
        "AND (lease_until IS NULL OR lease_until < ?) RETURNING *", [lease.owner, now + lease.seconds, *LIVE_STATES, now])
    return sorted((Job.of(row) for row in rows), key=lambda job: job.created_at)


def renew_leases(store: Store, lease: Lease, job_ids: list[str], now: float | None = None) -> set[str]:
    """Extend the leases this replica still holds on these live jobs; returns the ids it still holds."""
    if not job_ids:
        return set()
    now = time.time() if now is None else now
    rows = store.query(
        f"UPDATE jobs SET lease_until = ? WHERE lease_owner = ? AND {_LIVE} "
        f"AND id IN ({','.join('?' * len(job_ids))}) RETURNING id",
        [now + lease.seconds, lease.owner, *LIVE_STATES, *job_ids])
    return {row["id"] for row in rows}


def release_leases(store: Store, owner: str) -> None:
    """A replica stopping hands its live jobs back at once rather than when their leases run out."""
    store.execute(f"UPDATE jobs SET lease_until = NULL WHERE lease_owner = ? AND {_LIVE}", [owner, *LIVE_STATES])


def completed_exports(store: Store, organizations: list[str]) -> list[dict]:
    """The completed exports of these organizations: who, what was asked, when it was made and finished."""
    if not organizations:
        return []
    marks = ",".join("?" * len(organizations))
    return store.query(
        f"SELECT organization, request_url, params, created_at, updated_at FROM jobs WHERE kind = ? AND state = ? "
        f"AND organization IN ({marks})", [EXPORT, COMPLETE, *organizations])


def answered_jobs(store: Store) -> list[dict]:
    """Every job that ended with an answer (complete or failed): whose, which kind, when it came and ended."""
    return store.query("SELECT organization, kind, created_at, updated_at, state FROM jobs WHERE state IN (?, ?) "
                       "ORDER BY created_at", [COMPLETE, FAILED])


@dataclass(frozen=True)
class JobTally:
    kind: str
    state: str
    count: int
    oldest_created_at: float


def job_tallies(store: Store) -> list[JobTally]:
    """How many jobs there are of each kind in each state, and when the oldest of them was created."""
    return [JobTally(row["kind"], row["state"], row["count"], row["oldest"]) for row in store.query(
        "SELECT kind, state, COUNT(*) AS count, MIN(created_at) AS oldest FROM jobs GROUP BY kind, state")]


def update_job(store: Store, job_id: str, **fields: Any) -> None:
    fields["updated_at"] = time.time()
    assignments = ", ".join(f"{name} = ?" for name in fields)
    store.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", [*fields.values(), job_id])


def set_state_if_live(store: Store, job_id: str, owner: str, state: str, **fields: Any) -> bool:
    """Move a job that is still accepted or running (not cancelled meanwhile) and still leased to `owner` to
    `state`; False if it was not."""
    fields = {"state": state, "updated_at": time.time(), **fields}
    assignments = ", ".join(f"{name} = ?" for name in fields)
    return store.execute(f"UPDATE jobs SET {assignments} WHERE id = ? AND lease_owner = ? AND {_LIVE}",
                         [*fields.values(), job_id, owner, *LIVE_STATES]) == 1


def complete_job(store: Store, job_id: str, owner: str, files: list[JobFile], transaction_time: str,
                 expires_at: float) -> bool:
    """List the job's files and mark it complete in one transaction, unless it was cancelled meanwhile or its lease
    passed to another replica."""
    with store.transaction():
        if not set_state_if_live(store, job_id, owner, COMPLETE, transaction_time=transaction_time,
                                 expires_at=expires_at, progress=None):
            return False
        store.execute("DELETE FROM job_files WHERE job_id = ?", [job_id])
        store.execute_many("INSERT INTO job_files (id, job_id, section, type, name, count, position) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)",
                           [(f.id, f.job_id, f.section, f.type, f.name, f.count, position)
                            for position, f in enumerate(files)])
    return True


def job_files(store: Store, job_id: str) -> list[JobFile]:
    return [JobFile.of(r) for r in store.query("SELECT * FROM job_files WHERE job_id = ? ORDER BY position", [job_id])]


def get_file(store: Store, job_id: str, file_id: str) -> JobFile | None:
    row = store.one("SELECT * FROM job_files WHERE job_id = ? AND id = ?", [job_id, file_id])
    return JobFile.of(row) if row else None


def expired_jobs(store: Store, now: float) -> list[Job]:
    return [Job.of(row) for row in store.query(
        "SELECT * FROM jobs WHERE state = ? AND expires_at IS NOT NULL AND expires_at < ?", [COMPLETE, now])]


# --- bulk member match: per-member results (so an interrupted job resumes where it stopped) ------------------------

def record_match_result(store: Store, job_id: str, index: int, outcome: str, patient_id: str | None) -> None:
    store.insert("bulk_match_results", {"job_id": job_id, "idx": index, "outcome": outcome, "patient_id": patient_id},
                 conflict="(job_id, idx) DO UPDATE SET outcome = excluded.outcome, patient_id = excluded.patient_id")


def match_results(store: Store, job_id: str) -> dict[int, tuple[str, str | None]]:
    return {r["idx"]: (r["outcome"], r["patient_id"]) for r in store.query(
        "SELECT idx, outcome, patient_id FROM bulk_match_results WHERE job_id = ?", [job_id])}


# --- Member Match Groups -------------------------------------------------------------------------------------------

def record_groups(store: Store, organization: str, job_id: str, groups: dict[str, str]) -> None:
    """`groups`: code (match, nomatch, consentconstraint) → HAPI Group id."""
    now = time.time()
    for code, group_id in groups.items():
        store.insert("member_groups", {"group_id": group_id, "organization": organization, "job_id": job_id,
                                       "code": code, "recorded_at": now},
                     conflict="(group_id) DO UPDATE SET organization = excluded.organization, "
                              "job_id = excluded.job_id, code = excluded.code")


def groups_of(store: Store, organization: str) -> list[str]:
    return [r["group_id"] for r in store.query(
        "SELECT group_id FROM member_groups WHERE organization = ? ORDER BY recorded_at, group_id", [organization])]


def group_owner(store: Store, group_id: str) -> str | None:
    return store.scalar("SELECT organization FROM member_groups WHERE group_id = ?", [group_id])
