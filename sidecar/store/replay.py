"""The replay cache of client-assertion `jti`s, kept until the assertion would have expired anyway."""
from __future__ import annotations

import time

from sidecar.store.db import Store


def remember_jti(store: Store, client_id: str, jti: str, expires_at: float) -> bool:
    """Record a `jti`; False when this client used it before (a replay). Atomic across processes."""
    return store.execute("INSERT INTO assertion_jti (client_id, jti, expires_at) VALUES (?, ?, ?) "
                         "ON CONFLICT (client_id, jti) DO NOTHING", [client_id, jti, expires_at]) == 1


def forget_expired(store: Store, grace_seconds: float) -> int:
    return store.execute("DELETE FROM assertion_jti WHERE expires_at < ?", [time.time() - grace_seconds])
