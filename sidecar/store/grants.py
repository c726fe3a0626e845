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


def granted_patients(store: Store, organization: str, at: float | None = None) -> frozenset[str]:
    now = time.time() if at is None else at
    rows = store.db.execute(
        "SELECT DISTINCT patient_id FROM grants WHERE organization = ? AND revoked_at IS NULL "
        "AND valid_from <= ? AND (valid_until IS NULL OR valid_until > ?)", [organization, now, now])
    return frozenset(row[0] for row in rows)
