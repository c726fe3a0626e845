"""`/fhir/metadata`: HAPI's CapabilityStatement, cut down to what the sidecar lets through, plus its own additions.

Later features register contributors (operations, SMART security) that add to the statement; the merged
statement is cached briefly, since HAPI's answer is large and changes only with its configuration.
"""
from __future__ import annotations

import asyncio
import time
from typing import Callable

import orjson
from aiohttp import web

from sidecar import __version__
from sidecar.config import Settings
from sidecar.fhir.outcome import FHIR_JSON
from sidecar.gate.query import SearchCatalog
from sidecar.hapi.client import HapiClient, parsed, refused
from sidecar.hapi.errors import HapiError, HapiErrorKind
from sidecar.proxy.rewrite import UrlMap

Contributor = Callable[[dict, Settings], None]

# What the route table lets through, in CapabilityStatement terms.
ALLOWED_TYPE_INTERACTIONS = frozenset({"read", "search-type"})
_WRITE_FLAGS = ("conditionalCreate", "conditionalUpdate", "conditionalDelete", "updateCreate", "readHistory",
                "conditionalRead")


def restrict_to_sidecar_routes(statement: dict, settings: Settings) -> None:
    """Advertise only what passes: reads and searches, no writes, history, batch/transaction or operations."""
    for rest in statement.get("rest", []):
        rest.pop("interaction", None)
        rest.pop("operation", None)
        for resource in rest.get("resource", []):
            resource["interaction"] = [i for i in resource.get("interaction", [])
                                       if i.get("code") in ALLOWED_TYPE_INTERACTIONS]
            resource.pop("operation", None)
            for flag in _WRITE_FLAGS:
                resource.pop(flag, None)
            resource["versioning"] = "no-version"


def describe_sidecar(statement: dict, settings: Settings) -> None:
    statement["software"] = {"name": "pdex-sidecar", "version": __version__}
    statement["implementation"] = {
        "description": "CMS-0057-F Payer-to-Payer API (Da Vinci PDex / HRex) in front of HAPI FHIR",
        "url": settings.public_fhir_base,
    }
    statement["kind"] = "instance"


class CapabilityService:
    def __init__(self, settings: Settings, upstream: HapiClient, url_map: UrlMap, ttl_seconds: float = 60.0) -> None:
        self.settings = settings
        self.upstream = upstream
        self.url_map = url_map
        self.ttl = ttl_seconds
        self.contributors: list[Contributor] = [restrict_to_sidecar_routes, describe_sidecar]
        self._cached: tuple[float, bytes, SearchCatalog] | None = None
        self._lock = asyncio.Lock()

    async def _fetch_upstream(self) -> dict:
        async with self.upstream.request(
                "GET", f"{self.upstream.base}/metadata", params={"_format": "json"},
                headers={"Accept": "application/fhir+json", "Accept-Encoding": "gzip"}) as resp:
            body = await resp.read()
        if resp.status != 200:
            raise refused(resp.status, body, "the FHIR server did not give its CapabilityStatement")
        statement = parsed(body, "CapabilityStatement")
        if not isinstance(statement, dict) or statement.get("resourceType") != "CapabilityStatement":
            raise HapiError(HapiErrorKind.MALFORMED, "the FHIR server gave a malformed CapabilityStatement")
        return statement

    async def _refreshed(self) -> tuple[float, bytes, SearchCatalog]:
        """The statement as served and HAPI's search parameters, both from one fetch of HAPI's 1.5 MB statement,
        made at most once per `ttl` however many requests arrive together."""
        cached = self._cached
        if cached and time.monotonic() - cached[0] < self.ttl:
            return cached
        async with self._lock:
            now = time.monotonic()
            if not self._cached or now - self._cached[0] >= self.ttl:
                statement = await self._fetch_upstream()
                catalog = SearchCatalog.from_capability_statement(statement)
                for contribute in self.contributors:
                    contribute(statement, self.settings)
                body = self.url_map.text(orjson.dumps(statement).decode()).encode()
                self._cached = (now, body, catalog)
            return self._cached

    async def statement_bytes(self) -> bytes:
        return (await self._refreshed())[1]

    async def search_catalog(self) -> SearchCatalog:
        """HAPI's search parameters per type, for the partner query allow-list."""
        return (await self._refreshed())[2]

    async def handle(self, request: web.Request) -> web.Response:
        body = await self.statement_bytes()
        # Open to any origin, like smart-configuration: SMART App Launch lists both as CORS-enabled discovery.
        return web.Response(body=body, content_type=FHIR_JSON, charset="utf-8",
                            headers={"Access-Control-Allow-Origin": "*"})
