"""The pooled connection to HAPI: every request the sidecar makes of HAPI goes through `HapiClient.request`.

`request` is the one place aiohttp's transport errors and timeouts become a `HapiError`; the helpers below it
(the sidecar's own searches, reads and writes) add the answers HAPI may give that they cannot use. Streaming
callers (the proxy's relay, export downloads) read the raw aiohttp response inside `request`'s block.
"""
from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator
from urllib.parse import urlencode, urlsplit

import aiohttp
import orjson
from aiohttp import web
from yarl import URL

from sidecar.config import Settings
from sidecar.fhir.outcome import outcome_text
from sidecar.hapi.errors import HapiError, HapiErrorKind
from sidecar.logs import request_id
from sidecar.metrics.registry import Metrics

log = logging.getLogger("sidecar.hapi")

_IDS_PER_SEARCH = 200
SERVER_ERROR = "server-error"  # the metrics' kind for HAPI's own 5xx answers
FHIR_JSON_HEADERS = {"Accept": "application/fhir+json"}


def transport_error(exc: BaseException) -> HapiError:
    """The kind of trouble an aiohttp error or timeout means."""
    if isinstance(exc, asyncio.TimeoutError):  # aiohttp's connect and read timeouts are TimeoutErrors too
        return HapiError(HapiErrorKind.TIMEOUT)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return HapiError(HapiErrorKind.UNAVAILABLE)
    return HapiError(HapiErrorKind.MALFORMED)


def refused(status: int, body: bytes, reason: str) -> HapiError:
    """HAPI answered with a status the caller cannot use: HAPI's words are logged, the error carries `reason`."""
    log.warning("the FHIR server refused a request", extra={"status": status, "answer": outcome_text(body, 300)})
    return HapiError(HapiErrorKind.REFUSED, reason)


def parsed(body: bytes, what: str = "answer") -> Any:
    """HAPI's JSON answer; a body that is not JSON is a malformed answer."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HapiError(HapiErrorKind.MALFORMED, f"the FHIR server gave a malformed {what}") from exc


class HapiClient:
    """One pooled aiohttp session to HAPI for the life of the app."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.base = settings.upstream_base
        self.metrics = metrics
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None
        public = urlsplit(settings.public_fhir_base)
        # HAPI's Apache address strategy puts the prefix in place of its own servlet path, so the prefix is the
        # whole path of the public FHIR base.
        self._forwarded = {
            "X-Forwarded-Host": public.netloc,
            "X-Forwarded-Proto": public.scheme,
            "X-Forwarded-Port": str(public.port or (443 if public.scheme == "https" else 80)),
            "X-Forwarded-Prefix": public.path,
        }

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._settings.upstream_pool_size, ttl_dns_cache=300)
        timeout = aiohttp.ClientTimeout(total=None, connect=self._settings.upstream_connect_timeout,
                                        sock_read=self._settings.upstream_read_timeout)
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=True)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("HAPI client used before app start-up")
        return self._session

    @asynccontextmanager
    async def request(self, method: str, url: str | URL, **kwargs: Any) -> AsyncIterator[aiohttp.ClientResponse]:
        """HAPI's answer, open inside the block (aiohttp's `request` arguments). Transport trouble while connecting,
        waiting or reading the body in the block leaves it as a HapiError, logged here with its cause."""
        try:
            async with self.session.request(method, url, **kwargs) as resp:
                if resp.status >= 500:
                    self.metrics.hapi_errors.labels(SERVER_ERROR).inc()
                yield resp
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            error = transport_error(exc)
            self.metrics.hapi_errors.labels(error.kind.value).inc()
            log.warning("the FHIR server could not be used", extra={"error": repr(exc), "kind": error.kind.value})
            raise error from exc

    async def fetch_json(self, request: web.Request, method: str, path: str,
                         params: list[tuple[str, str]]) -> tuple[int, object]:
        """A client's read or search as the sidecar sends it to HAPI (a POST is a form-encoded `_search`): HAPI's
        status and parsed JSON (None when the body is not JSON)."""
        headers = self.forwarded_headers(request, request_id.get() or "-")
        headers.update(FHIR_JSON_HEADERS)
        url = URL(self.base + path, encoded=True)
        data = None
        if method == "POST":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            data = urlencode(params)
        elif params:
            url = url.with_query(params)
        async with self.request(method, url, headers=headers, data=data, allow_redirects=False) as resp:
            status, body = resp.status, await resp.read()
        try:
            return status, orjson.loads(body)
        except orjson.JSONDecodeError:
            return status, None

    async def search(self, resource_type: str, params: dict[str, str] | list[tuple[str, str]]) -> list[dict]:
        """The resources of one type a HAPI search finds (first page; the sidecar's own lookups, never relayed)."""
        async with self.request("POST", f"{self.base}/{resource_type}/_search", data=params,
                                headers=FHIR_JSON_HEADERS) as resp:
            body = await resp.read()
        if resp.status != 200:
            raise refused(resp.status, body, "the FHIR server gave an unexpected answer")
        bundle = parsed(body)
        found = []
        for entry in bundle.get("entry") or () if isinstance(bundle, dict) else ():
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict) and resource.get("resourceType") == resource_type:
                found.append(resource)
        return found

    async def by_ids(self, resource_type: str, ids: list[str]) -> list[dict]:
        """The resources of one type HAPI has among `ids`."""
        found: list[dict] = []
        for start in range(0, len(ids), _IDS_PER_SEARCH):
            chunk = ids[start:start + _IDS_PER_SEARCH]
            found += await self.search(resource_type, {"_id": ",".join(chunk), "_count": str(len(chunk))})
        return found

    async def create(self, resource: dict) -> dict:
        """Store a resource the sidecar itself writes (a member's Consent); HAPI's stored version comes back."""
        async with self.request("POST", f"{self.base}/{resource['resourceType']}", data=orjson.dumps(resource),
                                headers={**FHIR_JSON_HEADERS, "Content-Type": "application/fhir+json",
                                         "Prefer": "return=representation"}) as resp:
            body = await resp.read()
        if resp.status not in (200, 201):
            raise refused(resp.status, body, "the FHIR server refused to store a resource")
        return parsed(body)

    async def transaction(self, entries: list[dict]) -> list[str]:
        """A transaction Bundle of the sidecar's own writes (Member Match Groups); `Type/id` per entry, in order."""
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        async with self.request("POST", self.base, data=orjson.dumps(bundle),
                                headers={**FHIR_JSON_HEADERS, "Content-Type": "application/fhir+json"}) as resp:
            body = await resp.read()
        if resp.status != 200:
            raise refused(resp.status, body, "the FHIR server refused to store resources")
        answer = parsed(body)
        return ["/".join(str(e["response"]["location"]).split("/")[:2]) for e in answer.get("entry", [])]

    def forwarded_headers(self, request: web.Request, request_id: str) -> dict[str, str]:
        """Headers that tell HAPI who the client reached (so it emits public URLs) and which request this is."""
        headers = dict(self._forwarded)
        prior = request.headers.get("X-Forwarded-For")
        peer = request.remote or "unknown"
        headers["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
        headers["X-Request-ID"] = request_id
        # HAPI flushes uncompressed JSON in many tiny chunks; its gzip stream buffers them into a few, which costs
        # the proxy far less per response. The body is decompressed here (it is rewritten on the way out).
        headers["Accept-Encoding"] = "gzip"
        return headers
