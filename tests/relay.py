"""A relay in front of the real HAPI that can be told to fail: how tests make HAPI break in the middle of a job.

Every request is forwarded to HAPI unchanged until `fail_when` is set; from then on a request whose path matches
gets a 500 OperationOutcome, as a HAPI whose database or job broke would answer.
"""
from __future__ import annotations

import asyncio
import threading
from typing import Callable

import aiohttp
from aiohttp import web

from sidecar.devstack import free_port

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "content-encoding"}


class FailingRelay:
    def __init__(self, hapi_base: str) -> None:
        self.hapi_root = hapi_base.removesuffix("/fhir")
        self.port = free_port()
        self.fail_when: Callable[[str], bool] | None = None
        self.seen: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    def __enter__(self) -> "FailingRelay":
        self._thread.start()
        self._started.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _open_session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    async def _shutdown(self) -> None:
        await self._session.close()
        await self._runner.cleanup()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._session = self._loop.run_until_complete(self._open_session())
        self._started.set()
        self._loop.run_forever()

    async def _forward(self, request: web.Request) -> web.Response:
        self.seen.append(request.path)
        if self.fail_when is not None and self.fail_when(request.path):
            return web.json_response({"resourceType": "OperationOutcome", "issue": [
                {"severity": "error", "code": "exception", "diagnostics": "HHH000001: the database went away"}]},
                status=500, content_type="application/fhir+json")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with self._session.request(request.method, self.hapi_root + request.path_qs, headers=headers,
                                         data=await request.read(), allow_redirects=False) as upstream:
            body = await upstream.read()
            return web.Response(status=upstream.status, body=body, headers={
                k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP})
