"""The reverse proxy: resolve the route, check the caller's scopes, forward to HAPI, send the answer back.

A caller that may read everything (an operator's unrestricted client with `*` read and search scopes) gets HAPI's
answer streamed through with URLs rewritten (HAPI's server errors become a 502 without HAPI's text). Everyone else
goes through the gate's `PartnerReader`: allow-listed queries narrowed to the caller's members, every resource
checked before it leaves, and the sidecar's own paging.
"""
from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from sidecar.gate.caller import CALLER_KEY, Caller
from sidecar.gate.table import PROXY_ROUTE_KEY
from sidecar.fhir.outcome import outcome_response
from sidecar.logs import request_id
from sidecar.gate.query import QueryRefused
from sidecar.gate.reader import PartnerReader
from sidecar.fhir.body import form_pairs
from sidecar.proxy.rewrite import URL_HEADERS, UrlMap, is_text_content
from sidecar.proxy.routes import Route
from sidecar.hapi.client import HapiClient
from sidecar.proxy.headers import NOT_FORWARDED_UPSTREAM, NOT_RETURNED

log = logging.getLogger("sidecar.proxy")

CHUNK = 64 * 1024


_PAGING_NUMBERS = ("_count", "_offset", "_getpagesoffset")


def check_operator_paging(pairs) -> None:
    """The paging numbers HAPI fails on (a negative `_offset` is its 500) are refused before they reach it."""
    for name, value in pairs:
        if name in _PAGING_NUMBERS and (not value.isdigit() or len(value) > 9):
            raise QueryRefused(name, f"{name} must be a whole number")


class ProxyHandler:
    def __init__(self, upstream: HapiClient, url_map: UrlMap, reader: PartnerReader) -> None:
        self.upstream = upstream
        self.url_map = url_map
        self.reader = reader

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """A request the route table resolved and authorized (`authorize` put its route on the request)."""
        decision = request[PROXY_ROUTE_KEY]
        caller = request[CALLER_KEY]
        if caller.needs_body_check and decision.interaction != "capabilities":
            return await self._gated(request, caller, decision)
        check_operator_paging(request.query.items())
        return await self.forward(request, decision.upstream_path)

    async def _gated(self, request: web.Request, caller: Caller, route: Route) -> web.Response:
        resource_type, resource_id = route.resource_type or "", route.resource_id or ""
        if route.interaction == "read" and resource_type == "Binary":
            return await self.reader.binary(request, caller, resource_id)
        if route.interaction == "read":
            return await self.reader.read(request, caller, resource_type, resource_id)
        if route.interaction == "everything":
            return await self.reader.everything(request, caller, resource_id)
        if route.interaction == "page":
            return await self.reader.page(request, caller)
        pairs = list(request.query.items())
        if request.method == "POST":
            pairs += await form_pairs(request)
        return await self.reader.search(request, caller, resource_type, pairs)

    async def forward(self, request: web.Request, path: str) -> web.StreamResponse:
        url = URL(self.upstream.base + path + ("?" + request.query_string if request.query_string else ""),
                  encoded=True)
        headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in NOT_FORWARDED_UPSTREAM)
        headers.update(self.upstream.forwarded_headers(request, request_id.get() or "-"))
        body = request.content.iter_chunked(CHUNK) if request.body_exists else None
        async with self.upstream.request(request.method, url, headers=headers, data=body,
                                         allow_redirects=False) as upstream_resp:
            return await self._relay(request, upstream_resp)

    async def _relay(self, request: web.Request, upstream_resp: aiohttp.ClientResponse) -> web.StreamResponse:
        if upstream_resp.status >= 500:
            # HAPI's server errors describe its insides (exception classes, SQL); the client learns only that it failed.
            log.warning("upstream server error", extra={"status": upstream_resp.status,
                                                         "body": (await upstream_resp.content.read(500)).decode(
                                                             "utf-8", "replace")})
            return outcome_response(502, "exception", "the FHIR server failed to answer this request")
        content_type = upstream_resp.headers.get("Content-Type", "")
        rewrite = is_text_content(content_type)
        response = web.StreamResponse(status=upstream_resp.status, reason=upstream_resp.reason)
        for key, value in upstream_resp.headers.items():
            lower = key.lower()
            if lower in NOT_RETURNED:
                continue
            response.headers.add(key, self.url_map.text(value) if lower in URL_HEADERS else value)
        # Trouble before any byte is sent leaves as HAPI trouble, answered at the error boundary.
        first = await upstream_resp.content.read(CHUNK)
        complete = upstream_resp.content.at_eof()
        if complete:
            # The whole body arrived in one read (most FHIR answers): one write with a Content-Length.
            body = self.url_map.bytes(first) if rewrite else first
            return web.Response(status=response.status, reason=response.reason, body=body, headers=response.headers)
        length = upstream_resp.headers.get("Content-Length")
        if not rewrite and length is not None:
            response.content_length = int(length)
        stream = self.url_map.stream() if rewrite else None
        await response.prepare(request)
        try:
            chunk = first
            while chunk:
                await response.write(stream.feed(chunk) if stream else chunk)
                chunk = await upstream_resp.content.read(CHUNK)
            if stream:
                await response.write(stream.flush())
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            # Headers are gone already: the only honest signal left is to cut the connection short.
            log.warning("upstream body failed mid-stream; aborting response", extra={"error": repr(exc)})
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
        return response
