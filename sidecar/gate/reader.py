"""What a partner payer (or a scope-limited internal client) reads: reads, searches, pages, `$everything`, Binary.

Partner searches run as their canonical, allow-listed form (`query.py`), narrowed at HAPI to the caller's members.
The pages a partner receives are the sidecar's own: HAPI's pages are read and passed through the gate, and a page
is filled to `_count` with what the gate releases before it is sent; it has a `next` link only when something
released follows. So page sizes, links and the absence of `total` depend on released data only, and a withheld
resource cannot be counted. Links are sealed `PageLinks` tokens, never HAPI's page ids.

A partner's `$everything` page also carries this payer's Transmitter Provenance for the page's released resources
(PDex §pdex-127), made for the page and never stored: its targets are what the page holds, nothing else.

Internal clients whose scopes do not cover everything take the same path without member narrowing: each resource
is checked against their scopes. A query the allow-list refuses raises `QueryRefused`, which the error boundary
answers (400 naming the parameter) and the audit records.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Sequence
from urllib.parse import parse_qs, urlencode, urlsplit

import orjson
from aiohttp import web

from sidecar.gate.caller import Caller
from sidecar.gate.compartment import is_member_data, member_of, restricting_parameter
from sidecar.auth.middleware import note_refusal
from sidecar.disclosure.answers import INCLUDE, MATCH
from sidecar.disclosure.dates import utc_now
from sidecar.disclosure.resolver import reference_of
from sidecar.disclosure.rules import SENSITIVE, normal_reference
from sidecar.disclosure.sensitivity import references_in
from sidecar.fhir.outcome import outcome_response
from sidecar.gate.gate import DisclosureGate
from sidecar.gate.pages import PageLinks, PageState
from sidecar.gate.query import QueryRefused, SearchCatalog, canonical_everything, check_plain_read
from sidecar.hapi.client import HapiClient
from sidecar.hapi.errors import HapiError, HapiErrorKind
from sidecar.provenance.transmitter import provenance_id, targets_by_member, transmitter_provenance
from sidecar.proxy.rewrite import UrlMap

log = logging.getLogger("sidecar.gate")

MAX_SCANNED = 5000
"""HAPI results read for one partner page at most; past that the search is refused as too costly (narrow it)."""
MAX_BATCH = 200
EVERYTHING = "everything"
SEARCH = "search"

Catalog = Callable[[], Awaitable[SearchCatalog]]


class PageGone(Exception):
    """HAPI no longer holds the search a page link continues."""


def not_available(what: str) -> web.Response:
    return outcome_response(404, "not-found", f"{what} is not available")


def _later_batch(count: int) -> int:
    """HAPI's page size after the first: the first asks for `count` + 1 (a full page and the one that says another
    follows), which is enough unless something was withheld; then larger steps keep round trips few."""
    return min(max(2 * (count + 1), 50), MAX_BATCH)


def _next_page_id(bundle: dict) -> str | None:
    for link in bundle.get("link") or ():
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return (parse_qs(urlsplit(link["url"]).query).get("_getpages") or [None])[0]
    return None


def _search_id(bundle: dict) -> str | None:
    """HAPI's id of the search behind an answer: its `next` link's, else the Bundle's own id (HAPI names a
    searchset Bundle after its search, which `_getpages` continues even when HAPI sent no `next`)."""
    found = _next_page_id(bundle) or bundle.get("id")
    return found if isinstance(found, str) and found else None


def _refs(resource: dict) -> set[str]:
    found = set()
    for raw in references_in(orjson.dumps(resource)):
        ref = normal_reference(raw.decode("utf-8", "replace"))
        if ref:
            found.add(ref)
    return found


def _connected(matches: list[dict], includes: list[dict]) -> list[dict]:
    """The includes that belong to these matches: pointed to by them (`_include`), pointing at them
    (`_revinclude`), or so connected to an include that is (`:iterate`)."""
    kept: dict[str, dict] = {}
    anchors = {ref for ref in map(reference_of, matches) if ref}
    pointed = set().union(*map(_refs, matches)) if matches else set()
    pending = [(reference_of(r) or "", r, _refs(r)) for r in includes]
    changed = True
    while changed:
        changed = False
        for ref, resource, refs in pending:
            if ref in kept or not ref:
                continue
            if ref in pointed or refs & anchors:
                kept[ref] = resource
                anchors.add(ref)
                pointed |= refs
                changed = True
    return list(kept.values())


@dataclass
class _Scan:
    matches: list[tuple[int, dict]] = field(default_factory=list)
    includes: dict[str, dict] = field(default_factory=dict)
    search_id: str | None = None


class PartnerReader:
    def __init__(self, upstream: HapiClient, url_map: UrlMap, gate: DisclosureGate, links: PageLinks,
                 catalog: Catalog, public_fhir_base: str, payer: dict) -> None:
        self.upstream = upstream
        self.payer = payer
        self.url_map = url_map
        self.gate = gate
        self.links = links
        self.catalog = catalog
        self.public_fhir_base = public_fhir_base

    # --- reads -----------------------------------------------------------------------------------------------
    async def read(self, request: web.Request, caller: Caller, resource_type: str, resource_id: str) -> web.Response:
        what = f"{resource_type}/{resource_id}"
        check_plain_read(request.query.items())
        if caller.patients is not None and resource_type == "Patient" and resource_id not in caller.patients:
            note_refusal(request, "member not granted")
            return not_available(what)
        status, body = await self.upstream.fetch_json(request, "GET", f"/{what}", [])
        if status != 200 or not isinstance(body, dict):
            return not_available(what)
        released = await self._one(request, caller, body, MATCH)
        return self._json(released) if released is not None else not_available(what)

    async def binary(self, request: web.Request, caller: Caller, binary_id: str) -> web.Response:
        """A Binary leaves with a released DocumentReference of the caller's members that points to it."""
        what = f"Binary/{binary_id}"
        check_plain_read(request.query.items())
        if caller.patients is not None and not caller.patients:
            return not_available(what)
        locations = [f"Binary/{binary_id}", f"{self.upstream.base}/Binary/{binary_id}",
                     f"{self.public_fhir_base}/Binary/{binary_id}"]
        members = [("patient", ",".join(sorted(caller.patients)))] if caller.patients is not None else []
        documents = await self.upstream.search("DocumentReference", [
            ("location", ",".join(locations)), *members, ("_count", "50")])
        outcome = await self.gate.will_see(caller, [(d, MATCH) for d in documents], utc_now())
        self.gate.complete(request, outcome)
        if not any(r is not None for r in outcome.released):
            note_refusal(request, "no released DocumentReference points to this Binary")
            return not_available(what)
        found = await self.upstream.by_ids("Binary", [binary_id])
        policies = {(caller.patients or {}).get(member_of(d) or "") for d in outcome.released if d is not None}
        if caller.patients is None:
            policies.add(SENSITIVE)
        if not found or (SENSITIVE not in policies and self.gate.is_sensitive(found[0])):
            note_refusal(request, "Binary missing, or sensitive under a #regular consent")
            return not_available(what)
        return self._json(found[0])

    async def _one(self, request: web.Request, caller: Caller, resource: dict, mode: str) -> dict | None:
        outcome = await self.gate.will_see(caller, [(resource, mode)], utc_now())
        self.gate.complete(request, outcome)
        if outcome.released[0] is None:
            note_refusal(request, "withheld by the disclosure gate")
        return outcome.released[0]

    # --- searches --------------------------------------------------------------------------------------------
    async def search(self, request: web.Request, caller: Caller, resource_type: str,
                     pairs: list[tuple[str, str]]) -> web.Response:
        query = self.gate.start(resource_type, pairs, await self.catalog())
        state = PageState(caller.client.client_id, SEARCH, resource_type, query.pairs, query.count, "", 0)
        restriction = restricting_parameter(resource_type) if caller.patients is not None else None
        if restriction is not None and not caller.patients:
            return self._bundle([], [], self._self_url(state), None)
        upstream_pairs = query.as_list()
        if restriction is not None:
            upstream_pairs.append((restriction, ",".join(sorted(caller.patients or ()))))

        async def first(batch: int) -> tuple[int, object]:
            return await self.upstream.fetch_json(request, "POST", f"/{resource_type}/_search",
                                                  [*upstream_pairs, ("_count", str(batch))])

        return await self._fill(request, caller, state, first)

    async def everything(self, request: web.Request, caller: Caller, patient_id: str) -> web.Response:
        """`Patient/{id}/$everything` for a granted member, through the gate and the sidecar's own paging."""
        query = canonical_everything(request.query.items())
        if caller.patients is not None and patient_id not in caller.patients:
            note_refusal(request, "member not granted")
            return not_available(f"Patient/{patient_id}")

        async def first(batch: int) -> tuple[int, object]:
            return await self.upstream.fetch_json(request, "GET", f"/Patient/{patient_id}/$everything",
                                                  [*query.pairs, ("_count", str(batch))])

        state = PageState(caller.client.client_id, EVERYTHING, patient_id, query.pairs, query.count, "", 0)
        return await self._fill(request, caller, state, first)

    async def page(self, request: web.Request, caller: Caller) -> web.Response:
        state = self.links.open(request.query.get("_getpages", ""), caller.client.client_id)
        # The token that follows a link may be a newer one with narrower scopes than the search's.
        if state is not None and state.kind == SEARCH and not caller.scopes.allows(state.target, "s"):
            state = None
        if state is None:
            note_refusal(request, "search page not issued to this client, altered, or expired")
            return not_available("this search page")
        extra = [name for name in request.query if name not in ("_getpages", "_format", "_pretty")]
        if extra:
            raise QueryRefused(extra[0][:100], f"a page link takes no {extra[0][:100]}")

        async def first(batch: int) -> tuple[int, object]:
            return await self._continue(request, state.search_id, state.offset, batch, state)

        if state.kind == EVERYTHING and caller.patients is not None and state.target not in caller.patients:
            return not_available("this search page")
        try:
            return await self._fill(request, caller, state, first, start=state.offset)
        except PageGone:
            return outcome_response(410, "not-found", "this search has expired; run it again")

    async def _continue(self, request: web.Request, search_id: str, offset: int, batch: int,
                        state: PageState) -> tuple[int, object]:
        includes = [(k, v) for k, v in state.pairs if k.startswith(("_include", "_revinclude"))]
        status, body = await self.upstream.fetch_json(request, "GET", "", [
            ("_getpages", search_id), ("_getpagesoffset", str(offset)), ("_count", str(batch)),
            ("_bundletype", "searchset"), *includes])
        if status in (404, 410):
            raise PageGone()
        return status, body

    async def _fill(self, request: web.Request, caller: Caller, state: PageState,
                    first: Callable[[int], Awaitable[tuple[int, object]]], start: int = 0) -> web.Response:
        """Read HAPI's pages from `start` until `count` released matches and one more are found, or HAPI has no
        more; answer the first `count` with the includes that belong to them and, if one more exists, a link."""
        scan = _Scan(search_id=state.search_id or None)
        offset = start
        status, body = await first(state.count + 1)
        while True:
            if status != 200:
                return self._hapi_refusal(request, status)
            if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
                raise HapiError(HapiErrorKind.MALFORMED)
            scan.search_id = scan.search_id or _search_id(body)
            read = await self._take(request, caller, state, body, offset, scan)
            offset += read
            if len(scan.matches) > state.count:
                break
            if read == 0 or _next_page_id(body) is None:
                break
            if offset - start >= MAX_SCANNED:
                note_refusal(request, f"more than {MAX_SCANNED} results read for one page")
                return outcome_response(422, "too-costly", "this search reads too much to answer; narrow it "
                                                           "(for example with a date or a code)")
            status, body = await self._continue(request, scan.search_id or "", offset,
                                                _later_batch(state.count), state)
        page = [resource for _, resource in scan.matches[:state.count]]
        next_url = None
        if len(scan.matches) > state.count and scan.search_id:
            token = self.links.seal(PageState(state.client_id, state.kind, state.target, state.pairs, state.count,
                                              scan.search_id, scan.matches[state.count][0]))
            next_url = f"{self.public_fhir_base}?" + urlencode({"_getpages": token})
        includes = _connected(page, list(scan.includes.values()))
        return self._bundle(page, includes, self._self_url(state), next_url,
                            self._transmitted(caller, state, page + includes))

    def _self_url(self, state: PageState) -> str:
        """A page's `self` link names the search or operation it belongs to, never a page id."""
        if state.kind == EVERYTHING:
            return f"{self.public_fhir_base}/Patient/{state.target}/$everything"
        return f"{self.public_fhir_base}/{state.target}?" + urlencode([*state.pairs, ("_count", state.count)])

    def _transmitted(self, caller: Caller, state: PageState, released: list[dict]) -> list[dict]:
        """The Transmitter Provenance of a partner's `$everything` page, when the page holds anything and
        Provenance is among what the partner asked for (`_type`) and may read."""
        types = [t for name, value in state.pairs if name == "_type" for t in value.split(",")]
        if (state.kind != EVERYTHING or not caller.is_partner or not caller.scopes.allows("Provenance", "r")
                or (types and "Provenance" not in types)):
            return []
        targets = [target for group in targets_by_member(released).values() for target in group]
        if not targets:
            return []
        return [transmitter_provenance(provenance_id(*targets), self.payer, targets, utc_now().isoformat())]

    async def _take(self, request: web.Request, caller: Caller, state: PageState, bundle: dict, offset: int,
                    scan: _Scan) -> int:
        """Gate one HAPI page: released matches are kept with their position, released includes by reference.
        Returns how many matches HAPI's page held (its position advances by that)."""
        items: list[tuple[dict, str]] = []
        for entry in bundle.get("entry") or ():
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict):
                continue
            mode = (entry.get("search") or {}).get("mode") or MATCH
            if mode == "outcome":
                continue
            if state.kind == EVERYTHING:
                mode = MATCH if is_member_data(str(resource.get("resourceType"))) else INCLUDE
            items.append((resource, mode))
        outcome = await self.gate.will_see(caller, items, utc_now())
        self.gate.complete(request, outcome)
        position = offset
        for (resource, mode), released in zip(items, outcome.released):
            if mode == MATCH:
                if released is not None:
                    scan.matches.append((position, released))
                position += 1
            elif released is not None:
                scan.includes.setdefault(reference_of(released) or str(id(released)), released)
        return position - offset

    # --- answers ---------------------------------------------------------------------------------------------
    def _hapi_refusal(self, request: web.Request, status: int) -> web.Response:
        if 400 <= status < 500:
            note_refusal(request, f"HAPI refused the search ({status})")
            return outcome_response(400, "invalid", "the FHIR server could not run this search")
        raise HapiError(HapiErrorKind.REFUSED)

    def _bundle(self, matches: list[dict], includes: list[dict], self_url: str, next_url: str | None,
                generated: Sequence[dict] = ()) -> web.Response:
        """`generated`: resources made for this answer, not stored anywhere, so named by `urn:uuid` (their id)."""
        links = [{"relation": "self", "url": self_url}]
        if next_url:
            links.append({"relation": "next", "url": next_url})
        entries = [{"fullUrl": self._full_url(r), "resource": r, "search": {"mode": "match"}} for r in matches]
        entries += [{"fullUrl": self._full_url(r), "resource": r, "search": {"mode": "include"}} for r in includes]
        entries += [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r, "search": {"mode": "include"}}
                    for r in generated]
        bundle: dict = {"resourceType": "Bundle", "type": "searchset", "link": links}
        if entries:
            bundle["entry"] = entries
        return self._json(bundle)

    def _full_url(self, resource: dict) -> str:
        return f"{self.public_fhir_base}/{resource.get('resourceType')}/{resource.get('id')}"

    def _json(self, resource: object, status: int = 200) -> web.Response:
        body = self.url_map.bytes(orjson.dumps(resource))
        return web.Response(status=status, body=body, content_type="application/fhir+json", charset="utf-8")
