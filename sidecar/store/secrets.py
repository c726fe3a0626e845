"""Named secrets the service keeps across restarts and shares between processes on one store (page-link keys)."""
from __future__ import annotations

from typing import Callable

from sidecar.store.db import Store


def shared_secret(store: Store, name: str, make: Callable[[], str]) -> str:
    """The secret called `name`, made with `make` by whichever process asks first."""
    with store.transaction() as conn:
        conn.execute("INSERT OR IGNORE INTO secrets (name, value) VALUES (?, ?)", [name, make()])
        return conn.execute("SELECT value FROM secrets WHERE name = ?", [name]).fetchone()[0]
