"""Brute-force protection for `$member-match` (HRex SHALL): a client that keeps the demographics and varies the
card, or whose attempts mostly fail, is answered 429 for a while.

Attempts live in the store (`match_attempts`), so every replica and every restart sees the same history.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from sidecar.store.db import Store


@dataclass(frozen=True)
class ThrottleSettings:
    window_seconds: float = 3600.0
    card_variants: int = 3        # distinct card numbers with the same demographics before refusing
    failure_floor: int = 20       # attempts in the window before the failure rate counts
    failure_rate: float = 0.9


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def refusal(store: Store, settings: ThrottleSettings, client_id: str, demographics: str, card: str,
            now: float | None = None) -> str | None:
    """Why this attempt is throttled, or None. Runs on the store's thread."""
    since = (time.time() if now is None else now) - settings.window_seconds
    demographics_key, card_key = _key(demographics), _key(card)
    cards = {row["card_key"] for row in store.query(
        "SELECT DISTINCT card_key FROM match_attempts WHERE client_id = ? AND demographics_key = ? AND at > ?",
        [client_id, demographics_key, since])}
    if card_key not in cards and len(cards) >= settings.card_variants:
        return f"{len(cards)} different card numbers were already tried with these demographics"
    tally = store.one("SELECT COUNT(*) AS attempts, COUNT(CASE WHEN outcome <> 'match' THEN 1 END) AS failures "
                      "FROM match_attempts WHERE client_id = ? AND at > ?", [client_id, since]) or {}
    attempts, failures = tally["attempts"], tally["failures"]
    if attempts >= settings.failure_floor and failures / attempts >= settings.failure_rate:
        return f"{failures} of this client's last {attempts} match attempts failed"
    return None


def record(store: Store, client_id: str, demographics: str, card: str, outcome: str, now: float | None = None) -> None:
    store.insert("match_attempts", {"client_id": client_id, "at": time.time() if now is None else now,
                                    "demographics_key": _key(demographics), "card_key": _key(card), "outcome": outcome})
