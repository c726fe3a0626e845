"""Grants: which members an organization's clients may see, each backed by the member's consent.

A grant is created by a successful member match (its consent and policy recorded with it) and ends when its
validity ends or the member revokes. Lookups answer "which patients, now" for one organization.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from sidecar.store.db import Store


@dataclass(frozen=True)
class Grant:
    organization: str
    patient_id: str
    policy: str
    consent: str | None
    valid_from: float
    valid_until: float | None


def add_grant(store: Store, grant: Grant) -> None:
    add_grants(store, [grant])


def add_grants(store: Store, grants: list[Grant]) -> None:
    """Many grants in one round of statements (a bulk match's thousands)."""
    store.execute_many("INSERT INTO grants (organization, patient_id, consent, policy, valid_from, valid_until) "
                       "VALUES (?, ?, ?, ?, ?, ?)", [(g.organization, g.patient_id, g.consent, g.policy, g.valid_from,
                                                      g.valid_until) for g in grants])


def granted_members(store: Store, organization: str, at: float | None = None) -> dict[str, str]:
    """Patient id → consent policy URI of each member granted now; when a member has several valid grants, the
    most recent consent decides (a member who narrowed to `#regular` is not widened by an older `#sensitive`)."""
    now = time.time() if at is None else at
    rows = store.query(
        "SELECT patient_id, policy FROM grants WHERE organization = ? AND revoked_at IS NULL "
        "AND valid_from <= ? AND (valid_until IS NULL OR valid_until > ?) ORDER BY valid_from, id",
        [organization, now, now])
    return {row["patient_id"]: row["policy"] for row in rows}


def grants_of_member(store: Store, patient_id: str) -> list[dict]:
    """Every grant of one member's, live or ended, oldest first."""
    return store.query("SELECT organization, policy, consent, valid_from, valid_until, revoked_at FROM grants "
                       "WHERE patient_id = ? ORDER BY valid_from, id", [patient_id])


def revoke_grants(store: Store, patient_id: str, organization: str | None = None, at: float | None = None) -> list[dict]:
    """A member's opt-out: end every live grant of theirs (to one organization, or to all). Returns what ended."""
    now = time.time() if at is None else at
    where, args = "patient_id = ? AND revoked_at IS NULL", [patient_id]
    if organization is not None:
        where, args = where + " AND organization = ?", args + [organization]
    return store.query(f"UPDATE grants SET revoked_at = ? WHERE {where} RETURNING organization, consent",
                       [now, *args])
