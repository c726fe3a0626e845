"""The public URLs the service is reached at, one per replica that announced it (usually all share one).

Access tokens name the URL of the replica that issued them (`iss`, `aud`); a replica accepts the URLs of every
replica sharing its store, so a token from one replica is valid at all even where each is reached at its own
address, and a token naming any other URL is still refused.
"""
from __future__ import annotations

import time

from sidecar.store.db import Store


def announce(store: Store, public_url: str) -> None:
    store.insert("public_urls", {"url": public_url, "announced_at": time.time()},
                 conflict="(url) DO UPDATE SET announced_at = excluded.announced_at")


def public_urls(store: Store) -> set[str]:
    return {row["url"] for row in store.query("SELECT url FROM public_urls")}
