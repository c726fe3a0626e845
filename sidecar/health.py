"""Liveness (the process answers) and readiness (HAPI and the store answer too: a replica whose PostgreSQL is out
of reach leaves the load balancer's rotation)."""
from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import web

from sidecar.hapi.client import HapiClient
from sidecar.hapi.errors import HapiError
from sidecar.store.db import Store

READY_TIMEOUT = aiohttp.ClientTimeout(total=3)
STORE_TIMEOUT_SECONDS = 3.0

log = logging.getLogger("sidecar.health")


async def live(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _store_answers(store: Store) -> bool:
    try:
        await asyncio.wait_for(store.run(store.ping), STORE_TIMEOUT_SECONDS)
        return True
    except Exception:  # whatever the driver raises, the store is not answering
        log.warning("the store does not answer", exc_info=True)
        return False


def ready_handler(upstream: HapiClient, store: Store):
    async def ready(request: web.Request) -> web.Response:
        try:
            async with upstream.request("GET", f"{upstream.base}/metadata", params={"_summary": "true"},
                                        headers={"Accept": "application/fhir+json"},
                                        timeout=READY_TIMEOUT) as resp:
                await resp.read()
                hapi_ok = resp.status == 200
        except HapiError:
            hapi_ok = False
        store_ok = await _store_answers(store)
        checks = {"hapi": "up" if hapi_ok else "down", "store": "up" if store_ok else "down"}
        if hapi_ok and store_ok:
            return web.json_response({"status": "ready", "checks": checks})
        return web.json_response({"status": "unavailable", "checks": checks}, status=503)

    return ready
