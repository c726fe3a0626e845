"""The server's live view of its state: registered clients, its signing keys, the public URLs of the replicas
sharing its store (whose tokens it accepts), and grants per organization.

Admin commands and other replicas change the store from outside; a watcher notices (the store's `state_version`,
read on the store's thread every `state_refresh_seconds`) and reloads, so disabling a client or rotating a key takes
effect within that interval without a restart.
"""
from __future__ import annotations

import asyncio
import logging
import time
from types import MappingProxyType
from typing import Mapping

from sidecar.auth.tokens import TokenService, load_signing_keys
from sidecar.disclosure.rules import policy_of
from sidecar.store.clients import Client, all_clients
from sidecar.store.db import Store
from sidecar.store.grants import granted_members
from sidecar.store.public_urls import public_urls
from sidecar.store.replay import forget_expired

log = logging.getLogger("sidecar.state")

_PURGE_EVERY = 60.0
# Grants end by the clock too (validity periods), so a cached answer is only trusted briefly.
_GRANT_TTL = 5.0


class Directory:
    def __init__(self, store: Store, tokens: TokenService, refresh_seconds: float) -> None:
        self.store = store
        self.tokens = tokens
        self.refresh_seconds = refresh_seconds
        self.clients: dict[str, Client] = {}
        self._grants: dict[str, tuple[float, Mapping[str, str]]] = {}
        self._task: asyncio.Task | None = None

    def _load(self) -> tuple[dict[str, Client], list, set[str]]:
        return {c.client_id: c for c in all_clients(self.store)}, load_signing_keys(self.store), public_urls(self.store)

    async def reload(self) -> None:
        clients, keys, urls = await self.store.run(self._load)
        self.clients = clients
        self.tokens.use_keys(keys)
        self.tokens.accept_public_urls(urls)
        self._grants = {}

    async def start(self) -> None:
        await self.reload()
        self._task = asyncio.create_task(self._watch(), name="state-watcher")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _watch(self) -> None:
        last_purge = time.monotonic()
        while True:
            await asyncio.sleep(self.refresh_seconds)
            try:
                if await self.store.run(self.store.changed):
                    await self.reload()
                if time.monotonic() - last_purge > _PURGE_EVERY:
                    last_purge = time.monotonic()
                    await self.store.run(forget_expired, self.store, self.tokens.clock_skew)
            except Exception:
                log.exception("state refresh failed; keeping the last known state")

    def forget_grants(self, organization: str) -> None:
        """This server changed the organization's grants itself (its own writes do not trip the watcher)."""
        self._grants.pop(organization, None)

    async def patients_for(self, organization: str) -> Mapping[str, str]:
        """The members granted to an organization now, each with its consent policy."""
        now = time.monotonic()
        cached = self._grants.get(organization)
        if cached is None or now - cached[0] > _GRANT_TTL:
            granted = await self.store.run(granted_members, self.store, organization)
            cached = (now, MappingProxyType({pid: policy_of(uri) for pid, uri in granted.items()}))
            self._grants[organization] = cached
        return cached[1]
