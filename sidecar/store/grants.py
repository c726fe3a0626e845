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
    store.db["grants"].insert({"organization": grant.organization, "patient_id": grant.patient_id,
                               "consent": grant.consent, "policy": grant.policy, "valid_from": grant.valid_from,
                               "valid_until": grant.valid_until, "revoked_at": None})


def granted_members(store: Store, organization: str, at: float | None = None) -> dict[str, str]:
    """Patient id → consent policy URI of each member granted now; when a member has several valid grants, the
    most recent consent decides (a member who narrowed to `#regular` is not widened by an older `#sensitive`)."""
    now = time.time() if at is None else at
    rows = store.db.execute(
        "SELECT patient_id, policy FROM grants WHERE organization = ? AND revoked_at IS NULL "
        "AND valid_from <= ? AND (valid_until IS NULL OR valid_until > ?) ORDER BY valid_from, rowid",
        [organization, now, now])
    return dict(rows)


def grants_of_member(store: Store, patient_id: str) -> list[dict]:
    """Every grant of one member's, live or ended, oldest first."""
    return [dict(r) for r in store.db.query(
        "SELECT organization, policy, consent, valid_from, valid_until, revoked_at FROM grants "
        "WHERE patient_id = ? ORDER BY valid_from", [patient_id])]


def revoke_grants(store: Store, patient_id: str, organization: str | None = None, at: float | None = None) -> list[dict]:
    """A member's opt-out: end every live grant of theirs (to one organization, or to all). Returns what ended."""
    now = time.time() if at is None else at
    where, args = "patient_id = ? AND revoked_at IS NULL", [patient_id]
    if organization is not None:
        where, args = where + " AND organization = ?", args + [organization]
    with store.transaction():
        ended = [dict(row) for row in store.db.query(f"SELECT organization, consent FROM grants WHERE {where}", args)]
        store.db.execute(f"UPDATE grants SET revoked_at = ? WHERE {where}", [now, *args])
    return ended
