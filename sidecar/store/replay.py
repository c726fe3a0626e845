"""The replay cache of client-assertion `jti`s, kept until the assertion would have expired anyway."""
from __future__ import annotations

import sqlite3
import time

from sidecar.store.db import Store


def remember_jti(store: Store, client_id: str, jti: str, expires_at: float) -> bool:
    """Record a `jti`; False when this client used it before (a replay). Atomic across processes."""
    try:
        store.db.execute("INSERT INTO assertion_jti (client_id, jti, expires_at) VALUES (?, ?, ?)",
                         [client_id, jti, expires_at])
    except sqlite3.IntegrityError:
        return False
    return True


def forget_expired(store: Store, grace_seconds: float) -> int:
    cursor = store.db.execute("DELETE FROM assertion_jti WHERE expires_at < ?", [time.time() - grace_seconds])
    return cursor.rowcount
