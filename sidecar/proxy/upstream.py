"""The pooled connection to HAPI, and what HAPI trouble looks like to a client.

Trouble is always answered with an OperationOutcome: unreachable → 503 `transient`, timed out → 504 `timeout`,
a malformed answer → 502 `exception`. No upstream detail (host, stack trace) is put in the answer; it is logged.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import aiohttp
import orjson
from aiohttp import web
from yarl import URL

from sidecar.config import Settings
from sidecar.fhir.outcome import outcome_response
from sidecar.logs import request_id

log = logging.getLogger("sidecar.upstream")

_IDS_PER_SEARCH = 200

# RFC 7230 §6.1 hop-by-hop headers, plus those the proxy computes itself.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
    "transfer-encoding", "upgrade", "proxy-connection",
})
NOT_FORWARDED_UPSTREAM = HOP_BY_HOP | {"host", "content-length", "accept-encoding", "authorization", "cookie",
                                       "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto",
                                       "x-forwarded-port", "x-forwarded-prefix", "forwarded", "x-request-id"}
NOT_RETURNED = HOP_BY_HOP | {"content-length", "content-encoding", "server", "x-powered-by", "set-cookie"}


@dataclass(frozen=True)
class UpstreamError(Exception):
    """HAPI could not be used; `status`, `code` and `reason` are what the client is told."""

    status: int
    code: str
    reason: str

    def response(self) -> web.Response:
        return outcome_response(self.status, self.code, self.reason)


def classify_client_error(exc: BaseException) -> UpstreamError:
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return UpstreamError(504, "timeout", "the FHIR server did not answer in time")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamError(503, "transient", "the FHIR server is unavailable; try again later")
    return UpstreamError(502, "exception", "the FHIR server gave a malformed answer")


class Upstream:
    """One pooled aiohttp session to HAPI for the life of the app."""

    def __init__(self, settings: Settings) -> None:
        self.base = settings.upstream_base
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
            raise RuntimeError("upstream session used before app start-up")
        return self._session

    async def fetch_json(self, request: web.Request, method: str, path: str,
                         params: list[tuple[str, str]]) -> tuple[int, object]:
        """A client's read or search as the sidecar sends it to HAPI (a POST is a form-encoded `_search`): HAPI's
        status and parsed JSON (None when the body is not JSON). Transport trouble raises UpstreamError."""
        headers = self.forwarded_headers(request, request_id.get() or "-")
        headers["Accept"] = "application/fhir+json"
        url = URL(self.base + path, encoded=True)
        data = None
        if method == "POST":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            data = urlencode(params)
        elif params:
            url = url.with_query(params)
        try:
            async with self.session.request(method, url, headers=headers, data=data, allow_redirects=False) as resp:
                status, body = resp.status, await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            error = classify_client_error(exc)
            log.warning("upstream request failed", extra={"error": repr(exc), "status": error.status})
            raise error from exc
        try:
            return status, orjson.loads(body)
        except orjson.JSONDecodeError:
            return status, None

    async def search(self, resource_type: str, params: dict[str, str] | list[tuple[str, str]]) -> list[dict]:
        """The resources of one type a HAPI search finds (first page; the sidecar's own lookups, never relayed)."""
        try:
            async with self.session.post(f"{self.base}/{resource_type}/_search", data=params,
                                         headers={"Accept": "application/fhir+json"}) as resp:
                if resp.status != 200:
                    raise UpstreamError(502, "exception", "the FHIR server gave an unexpected answer")
                bundle = orjson.loads(await resp.read())
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise classify_client_error(exc) from exc
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(502, "exception", "the FHIR server gave a malformed answer") from exc
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
        try:
            async with self.session.post(f"{self.base}/{resource['resourceType']}", data=orjson.dumps(resource),
                                         headers={"Content-Type": "application/fhir+json",
                                                  "Accept": "application/fhir+json",
                                                  "Prefer": "return=representation"}) as resp:
                body = await resp.read()
                if resp.status not in (200, 201):
                    log.warning("upstream refused a write", extra={"status": resp.status, "body": body[:500].decode(
                        "utf-8", "replace")})
                    raise UpstreamError(502, "exception", "the FHIR server refused to store a resource")
                return orjson.loads(body)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise classify_client_error(exc) from exc

    async def transaction(self, entries: list[dict]) -> list[str]:
        """A transaction Bundle of the sidecar's own writes (Member Match Groups); `Type/id` per entry, in order."""
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        try:
            async with self.session.post(self.base, data=orjson.dumps(bundle),
                                         headers={"Content-Type": "application/fhir+json",
                                                  "Accept": "application/fhir+json"}) as resp:
                body = await resp.read()
                if resp.status != 200:
                    log.warning("upstream refused a transaction", extra={"status": resp.status, "body": body[
                        :500].decode("utf-8", "replace")})
                    raise UpstreamError(502, "exception", "the FHIR server refused to store resources")
                answer = orjson.loads(body)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise classify_client_error(exc) from exc
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(502, "exception", "the FHIR server gave a malformed answer") from exc
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
