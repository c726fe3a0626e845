"""Reads and searches for callers whose answers must be checked resource by resource.

Partner searches are narrowed at HAPI to the caller's members (the type's patient search parameter, sent as a
form-encoded `_search` so that thousands of members fit), and every resource in every answer is checked again
before it leaves: by member and scope (`Caller.may_see`), then by the disclosure filter (`sidecar.disclosure`). What the caller may not see is answered exactly as what does not exist, so nothing can be
learned from the difference. Answers are JSON; they are parsed here, so they are not streamed.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Mapping
from urllib.parse import urlencode

import aiohttp
import orjson
from aiohttp import web
from yarl import URL

from sidecar.access.caller import Caller
from sidecar.access.compartment import restricting_parameter
from sidecar.access.guard import PageOwners, filter_bundle, page_ids
from sidecar.auth.middleware import forbidden, note_disclosure, note_refusal
from sidecar.disclosure.answers import MATCH, AnswerFilter
from sidecar.disclosure.dates import utc_now
from sidecar.fhir.body import BadForm, form_pairs
from sidecar.fhir.outcome import outcome_response
from sidecar.logs import request_id
from sidecar.proxy.rewrite import UrlMap
from sidecar.proxy.routes import Route
from sidecar.proxy.upstream import Upstream, UpstreamError, classify_client_error

log = logging.getLogger("sidecar.proxy")

_CLIENT_ONLY_PARAMETERS = frozenset({"_format", "_pretty"})
# Subsetting would hide the codes and dates the disclosure filter decides by, and a total would count what it
# withholds; partners get whole resources (servers may ignore these) and no total.
_NOT_FOR_PARTNERS = frozenset({"_elements", "_summary", "_total", "_contained", "_containedType"})


def _not_available(what: str) -> web.Response:
    return outcome_response(404, "not-found", f"{what} is not available")


class GuardedReader:
    def __init__(self, upstream: Upstream, url_map: UrlMap, pages: PageOwners, disclosure: AnswerFilter) -> None:
        self.upstream = upstream
        self.url_map = url_map
        self.pages = pages
        self.disclosure = disclosure

    async def answer(self, request: web.Request, caller: Caller, route: Route) -> web.Response:
        try:
            if route.interaction == "read":
                return await self._read(request, caller, route)
            if route.interaction == "search-type":
                return await self._search(request, caller, route)
            return await self._page(request, caller)
        except UpstreamError as error:
            return error.response()

    async def _read(self, request: web.Request, caller: Caller, route: Route) -> web.Response:
        what = f"{route.resource_type}/{route.resource_id}"
        if caller.patients is not None and route.resource_type == "Patient" and route.resource_id not in caller.patients:
            note_refusal(request, "member not granted")
            return _not_available(what)
        status, body = await self._fetch(request, "GET", route.upstream_path, [])
        if status in (404, 410):
            return _not_available(what)
        if status != 200:
            return self._relay_outcome(status, body)
        resource = self._parse(body)
        if not caller.may_see(resource):
            note_refusal(request, "resource outside the caller's members or scopes")
            return _not_available(what)
        if caller.patients is not None:
            outcome = await self.disclosure.filter(caller.patients, [(resource, MATCH)], utc_now())
            note_disclosure(request, outcome.withheld, outcome.transformed)
            if outcome.released[0] is None:
                note_refusal(request, "withheld by the disclosure filter")
                return _not_available(what)
            resource = outcome.released[0]
        return self._json(resource)

    async def _search(self, request: web.Request, caller: Caller, route: Route) -> web.Response:
        params = [(k, v) for k, v in request.query.items() if k not in _CLIENT_ONLY_PARAMETERS]
        if request.method == "POST":
            try:
                form = await form_pairs(request)
            except BadForm as exc:
                return outcome_response(400, "invalid", str(exc))
            params += [(k, v) for k, v in form if k not in _CLIENT_ONLY_PARAMETERS]
        resource_type = route.resource_type or ""
        if caller.is_partner:
            params = [(k, v) for k, v in params if k not in _NOT_FOR_PARTNERS]
            if any(k.startswith("_has") for k, _ in params):
                return forbidden(request, "reverse chaining (_has) is not available to partner clients")
            parameter = restricting_parameter(resource_type)
            if parameter is not None:
                if not caller.patients:
                    return self._json({"resourceType": "Bundle", "type": "searchset"})
                params.append((parameter, ",".join(sorted(caller.patients))))
        status, body = await self._fetch(request, "POST", f"/{resource_type}/_search", params)
        return await self._bundle(request, caller, status, body)

    async def _page(self, request: web.Request, caller: Caller) -> web.Response:
        page = request.query.get("_getpages", "")
        if caller.is_partner and not self.pages.owned_by(page, caller.client.client_id):
            note_refusal(request, "search page not issued to this client")
            return _not_available("this search page")
        params = [(k, v) for k, v in request.query.items() if k not in _CLIENT_ONLY_PARAMETERS]
        status, body = await self._fetch(request, "GET", "", params)
        return await self._bundle(request, caller, status, body)

    async def _bundle(self, request: web.Request, caller: Caller, status: int, body: bytes) -> web.Response:
        if status != 200:
            return self._relay_outcome(status, body)
        bundle = self._parse(body)
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise UpstreamError(502, "exception", "the FHIR server gave a malformed answer")
        filter_bundle(caller, bundle)
        if caller.patients is not None:
            await self._disclose(request, caller.patients, bundle)
            for page in page_ids(bundle):
                self.pages.remember(page, caller.client.client_id)
        return self._json(bundle)

    async def _disclose(self, request: web.Request, members: Mapping[str, str], bundle: dict) -> None:
        """Replace each entry by what the disclosure filter lets leave; drop the rest, and the total. HAPI's own
        search warnings (mode `outcome`) stay."""
        bundle.pop("total", None)
        entries = bundle.get("entry") or []
        decided = [e for e in entries if (e.get("search") or {}).get("mode") != "outcome"]
        if not decided:
            return
        items = [(e["resource"], (e.get("search") or {}).get("mode") or MATCH) for e in decided]
        outcome = await self.disclosure.filter(members, items, utc_now())
        note_disclosure(request, outcome.withheld, outcome.transformed)
        released = {id(entry): resource for entry, resource in zip(decided, outcome.released)}
        kept = []
        for entry in entries:
            if id(entry) not in released:
                kept.append(entry)
            elif released[id(entry)] is not None:
                kept.append({**entry, "resource": released[id(entry)]})
        if kept:
            bundle["entry"] = kept
        else:
            bundle.pop("entry", None)

    async def _fetch(self, request: web.Request, method: str, path: str,
                     params: list[tuple[str, str]]) -> tuple[int, bytes]:
        headers = self.upstream.forwarded_headers(request, request_id.get() or "-")
        headers["Accept"] = "application/fhir+json"
        url = URL(self.upstream.base + path, encoded=True)
        data = None
        if method == "POST":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            data = urlencode(params)
        elif params:
            url = url.with_query(params)
        try:
            async with self.upstream.session.request(method, url, headers=headers, data=data,
                                                     allow_redirects=False) as resp:
                return resp.status, await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            error = classify_client_error(exc)
            log.warning("upstream request failed", extra={"error": repr(exc), "status": error.status})
            raise error from exc

    @staticmethod
    def _parse(body: bytes) -> object:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(502, "exception", "the FHIR server gave a malformed answer") from exc

    def _relay_outcome(self, status: int, body: bytes) -> web.Response:
        """HAPI's own client error (a bad search parameter, say) passes on when it is an OperationOutcome; its
        server errors do not (their diagnostics describe HAPI's insides)."""
        try:
            outcome = orjson.loads(body)
        except orjson.JSONDecodeError:
            outcome = None
        if not isinstance(outcome, dict) or outcome.get("resourceType") != "OperationOutcome" or not 400 <= status < 500:
            raise UpstreamError(502, "exception", "the FHIR server gave an unexpected answer")
        return self._json(outcome, status)

    def _json(self, resource: object, status: int = 200) -> web.Response:
        body = self.url_map.bytes(orjson.dumps(resource))
        return web.Response(status=status, body=body, content_type="application/fhir+json", charset="utf-8")
