"""Named secrets the service keeps across restarts and shares between processes on one store (page-link keys)."""
from __future__ import annotations

from typing import Callable

from sidecar.store.db import Store


def shared_secret(store: Store, name: str, make: Callable[[], str]) -> str:
    """The secret called `name`, made with `make` by whichever process asks first."""
    store.execute("INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", [name, make()])
    return store.scalar("SELECT value FROM secrets WHERE name = ?", [name])
