"""The reverse proxy: resolve the route, check the caller's scopes, forward to HAPI, send the answer back.

A caller that may read everything (an operator's unrestricted client with `*` read and search scopes) gets HAPI's
answer streamed through with URLs rewritten. Everyone else goes through `GuardedReader`, which narrows searches to
the caller's members and checks each resource before it leaves.
"""
from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from sidecar.access.caller import CALLER_KEY, Caller
from sidecar.auth.middleware import forbidden, note_refusal
from sidecar.fhir.outcome import outcome_response
from sidecar.logs import request_id
from sidecar.proxy.guarded import GuardedReader
from sidecar.proxy.rewrite import URL_HEADERS, UrlMap, is_text_content
from sidecar.proxy.routes import Refusal, Route, resolve
from sidecar.proxy.upstream import NOT_FORWARDED_UPSTREAM, NOT_RETURNED, Upstream, classify_client_error

log = logging.getLogger("sidecar.proxy")

CHUNK = 64 * 1024


def scope_refusal(caller: Caller, route: Route) -> str | None:
    """Why the caller's token does not cover this route, or None when it does."""
    if route.interaction == "capabilities":
        return None
    if route.interaction == "page":
        return None if caller.scopes.allows_any_type("s") else "the access token grants no search scope"
    resource_type = route.resource_type or ""
    if not caller.may_use_type(resource_type):
        return f"{resource_type} is not available to partner clients"
    permission = "r" if route.interaction == "read" else "s"
    if not caller.scopes.allows(resource_type, permission):
        verb = "read" if permission == "r" else "search"
        return f"the access token's scopes do not allow {verb} of {resource_type}"
    return None


class ProxyHandler:
    def __init__(self, upstream: Upstream, url_map: UrlMap, guarded: GuardedReader) -> None:
        self.upstream = upstream
        self.url_map = url_map
        self.guarded = guarded

    async def handle(self, request: web.Request) -> web.StreamResponse:
        segments = [s for s in request.match_info.get("tail", "").split("/") if s]
        decision = resolve(request.method, segments, request.query)
        if isinstance(decision, Refusal):
            log.info("route refused", extra={"status": decision.status, "reason": decision.reason})
            note_refusal(request, decision.reason)
            headers = {"Allow": ", ".join(decision.allow)} if decision.allow else None
            return outcome_response(decision.status, decision.code, decision.reason, headers=headers)
        caller = request[CALLER_KEY]
        refusal = scope_refusal(caller, decision)
        if refusal:
            return forbidden(request, refusal)
        if caller.needs_body_check and decision.interaction != "capabilities":
            return await self.guarded.answer(request, caller, decision)
        return await self.forward(request, decision.upstream_path)

    async def forward(self, request: web.Request, path: str) -> web.StreamResponse:
        url = URL(self.upstream.base + path + ("?" + request.query_string if request.query_string else ""),
                  encoded=True)
        headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in NOT_FORWARDED_UPSTREAM)
        headers.update(self.upstream.forwarded_headers(request, request_id.get() or "-"))
        body = request.content.iter_chunked(CHUNK) if request.body_exists else None
        try:
            upstream_resp = await self.upstream.session.request(
                request.method, url, headers=headers, data=body, allow_redirects=False)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            error = classify_client_error(exc)
            log.warning("upstream request failed", extra={"error": repr(exc), "status": error.status})
            return error.response()
        async with upstream_resp:
            return await self._relay(request, upstream_resp)

    async def _relay(self, request: web.Request, upstream_resp: aiohttp.ClientResponse) -> web.StreamResponse:
        content_type = upstream_resp.headers.get("Content-Type", "")
        rewrite = is_text_content(content_type)
        response = web.StreamResponse(status=upstream_resp.status, reason=upstream_resp.reason)
        for key, value in upstream_resp.headers.items():
            lower = key.lower()
            if lower in NOT_RETURNED:
                continue
            response.headers.add(key, self.url_map.text(value) if lower in URL_HEADERS else value)
        try:
            first = await upstream_resp.content.read(CHUNK)
            complete = upstream_resp.content.at_eof()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            error = classify_client_error(exc)
            log.warning("upstream body failed before any byte was sent",
                        extra={"error": repr(exc), "status": error.status})
            return error.response()
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
