"""Liveness (the process answers) and readiness (HAPI answers too)."""
from __future__ import annotations

import aiohttp
from aiohttp import web

from sidecar.hapi.client import HapiClient
from sidecar.hapi.errors import HapiError

READY_TIMEOUT = aiohttp.ClientTimeout(total=3)


async def live(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def ready_handler(upstream: HapiClient):
    async def ready(request: web.Request) -> web.Response:
        try:
            async with upstream.request("GET", f"{upstream.base}/metadata", params={"_summary": "true"},
                                        headers={"Accept": "application/fhir+json"},
                                        timeout=READY_TIMEOUT) as resp:
                await resp.read()
                hapi_ok = resp.status == 200
        except HapiError:
            hapi_ok = False
        if hapi_ok:
            return web.json_response({"status": "ready", "checks": {"hapi": "up"}})
        return web.json_response({"status": "unavailable", "checks": {"hapi": "down"}}, status=503)

    return ready
