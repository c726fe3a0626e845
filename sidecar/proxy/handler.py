"""The streaming reverse proxy: resolve the route, forward to HAPI, stream the answer back rewritten."""
from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from sidecar.fhir.outcome import outcome_response
from sidecar.logs import request_id
from sidecar.proxy.rewrite import URL_HEADERS, UrlMap, is_text_content
from sidecar.proxy.routes import Refusal, resolve
from sidecar.proxy.upstream import NOT_FORWARDED_UPSTREAM, NOT_RETURNED, Upstream, classify_client_error

log = logging.getLogger("sidecar.proxy")

CHUNK = 64 * 1024


class ProxyHandler:
    def __init__(self, upstream: Upstream, url_map: UrlMap) -> None:
        self.upstream = upstream
        self.url_map = url_map

    async def handle(self, request: web.Request) -> web.StreamResponse:
        segments = [s for s in request.match_info.get("tail", "").split("/") if s]
        decision = resolve(request.method, segments, request.query)
        if isinstance(decision, Refusal):
            log.info("route refused", extra={"status": decision.status, "reason": decision.reason})
            headers = {"Allow": ", ".join(decision.allow)} if decision.allow else None
            return outcome_response(decision.status, decision.code, decision.reason, headers=headers)
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
