"""Client public keys: the JWKS registered inline, or fetched from the client's registered JWKS URL.

Fetched sets are cached as long as the client's `Cache-Control: max-age` allows (capped by a setting) and are
re-fetched when an assertion names a `kid` the cached set lacks, at most once a second per URL, so a client can
rotate keys by publishing a new set without anyone restarting the sidecar.
"""
from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

import aiohttp
import orjson

from sidecar.store.clients import Client, ClientError, public_keys_only

_MAX_AGE = re.compile(r"max-age=(\d+)")
REFETCH_INTERVAL = 1.0


class JwksUnavailable(Exception):
    """The client's JWKS URL could not be read or does not hold a usable JWKS."""


@dataclass
class _Entry:
    keys: list[dict]
    fetched_at: float
    expires_at: float


class JwksCache:
    def __init__(self, max_age: float, timeout: float = 5.0) -> None:
        self.max_age = max_age
        self.timeout = timeout
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def keys_for(self, client: Client, kid: str) -> list[dict]:
        if client.jwks is not None:
            return client.jwks["keys"]
        url = client.jwks_url
        assert url is not None
        lock = self._locks.setdefault(url, asyncio.Lock())
        async with lock:
            entry = self._entries.get(url)
            now = time.monotonic()
            usable = entry is not None and entry.expires_at > now
            knows_kid = usable and any(k.get("kid") == kid for k in entry.keys)
            recently = entry is not None and now - entry.fetched_at < REFETCH_INTERVAL
            if usable and (knows_kid or recently):
                return entry.keys
            entry = await self._fetch(url)
            self._entries[url] = entry
            return entry.keys

    async def _fetch(self, url: str) -> _Entry:
        assert self._session is not None, "start() first"
        try:
            async with self._session.get(url, headers={"Accept": "application/json"}) as resp:
                if resp.status != 200:
                    raise JwksUnavailable(f"the JWKS URL answered {resp.status}")
                body = await resp.content.read(1_000_000)
                cache_control = resp.headers.get("Cache-Control", "")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise JwksUnavailable(f"the JWKS URL could not be read ({type(exc).__name__})") from exc
        try:
            keys = public_keys_only(orjson.loads(body))["keys"]
        except (orjson.JSONDecodeError, ClientError) as exc:
            raise JwksUnavailable(f"the JWKS URL does not hold a usable JWKS ({exc})") from exc
        max_age = self.max_age
        if "no-store" in cache_control or "no-cache" in cache_control:
            max_age = 0.0
        elif m := _MAX_AGE.search(cache_control):
            max_age = min(max_age, float(m[1]))
        now = time.monotonic()
        # A zero lifetime still serves the assertion being checked; the next one fetches again.
        return _Entry(keys, now, now + max(max_age, REFETCH_INTERVAL))
