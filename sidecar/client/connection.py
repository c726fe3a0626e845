"""A connection to one partner payer: SMART discovery, tokens renewed before they expire, and requests that ride
out a partner that is down, slow or answering 5xx (retried with backoff, `Retry-After` honoured), then give up
with `PartnerUnavailable` instead of crashing the pull.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

import aiohttp
import orjson

from sidecar.client.smart import ClientKey, TokenRequestFailed, request_token

log = logging.getLogger("sidecar.pull")

RENEW_MARGIN_SECONDS = 60
RETRIED_STATUSES = {429, 500, 502, 503, 504}
MAX_RETRY_AFTER = 120.0


class PartnerUnavailable(Exception):
    """The partner could not be reached or kept failing; the message says how."""


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        try:
            value = orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise PartnerUnavailable(f"the partner answered {self.status} with something that is not JSON") from exc
        if not isinstance(value, dict):
            raise PartnerUnavailable(f"the partner answered {self.status} with JSON that is not an object")
        return value


def retry_after(headers, default: float) -> float:
    """Seconds to wait: `Retry-After` as seconds or an HTTP date, else `default`; capped."""
    value = headers.get("Retry-After") if headers else None
    if value:
        try:
            return min(MAX_RETRY_AFTER, max(0.0, float(value)))
        except ValueError:
            try:
                return min(MAX_RETRY_AFTER, max(0.0, parsedate_to_datetime(value).timestamp() - time.time()))
            except (TypeError, ValueError):
                pass
    return default


class PartnerConnection:
    def __init__(self, session: aiohttp.ClientSession, fhir_base: str, client_id: str, key: ClientKey, scopes: str,
                 retries: int = 5, backoff: float = 1.0) -> None:
        self.session = session
        self.fhir_base = fhir_base.rstrip("/")
        self.client_id = client_id
        self.key = key
        self.scopes = scopes
        self.retries = retries
        self.backoff = backoff
        self.token_url: str | None = None
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock = asyncio.Lock()

    async def discover(self) -> str:
        """The token endpoint from the partner's `.well-known/smart-configuration`."""
        if self.token_url is None:
            answer = await self._send("GET", f"{self.fhir_base}/.well-known/smart-configuration",
                                      headers={"Accept": "application/json"}, authorized=False)
            if answer.status != 200:
                raise PartnerUnavailable(f"smart-configuration answered {answer.status}")
            endpoint = answer.json().get("token_endpoint")
            if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
                raise PartnerUnavailable("the partner's smart-configuration names no token_endpoint")
            self.token_url = endpoint
        return self.token_url

    async def token(self, renew: bool = False) -> str:
        async with self._token_lock:
            if renew or self._token is None or time.time() > self._token_expires - RENEW_MARGIN_SECONDS:
                token_url = await self.discover()
                for attempt in range(self.retries + 1):
                    try:
                        body = await request_token(self.session, token_url, self.client_id, self.key, self.scopes)
                        break
                    except TokenRequestFailed as exc:
                        if exc.status < 500 or attempt == self.retries:
                            raise PartnerUnavailable(f"the partner refused our token request: {exc.body}") from exc
                    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                        if attempt == self.retries:
                            raise PartnerUnavailable(f"the partner's token endpoint failed: {exc!r}") from exc
                    await asyncio.sleep(self.backoff * 2 ** attempt)
                self._token = body["access_token"]
                self._token_expires = time.time() + float(body.get("expires_in", 300))
            return self._token

    async def request(self, method: str, url: str, *, json: dict | None = None,
                      headers: dict | None = None) -> Answer:
        """An authorized request; any answer not worth retrying comes back to the caller."""
        return await self._send(method, url, json=json, headers=headers, authorized=True)

    async def download(self, url: str, target: Path, authorized: bool = True) -> int:
        """Streams one file to `target` (bytes written). An interrupted download resumes from its `.part` file with
        a Range request; a server that ignores Range sends the whole file again, which replaces the part."""
        part = target.with_name(target.name + ".part")
        last = "no attempt"
        for attempt in range(self.retries + 1):
            offset = part.stat().st_size if part.exists() else 0
            headers = {"Accept": "application/fhir+ndjson", **({"Range": f"bytes={offset}-"} if offset else {})}
            if authorized:
                headers["Authorization"] = f"Bearer {await self.token()}"
            try:
                async with self.session.get(url, headers=headers) as resp:
                    if resp.status == 416 and offset:
                        break  # the part already holds the whole file
                    if resp.status not in (200, 206):
                        last = f"HTTP {resp.status}"
                        if resp.status not in RETRIED_STATUSES and resp.status != 401:
                            raise PartnerUnavailable(f"GET {url} answered {resp.status}")
                        wait = retry_after(resp.headers, self.backoff * 2 ** attempt)
                    else:
                        with open(part, "ab" if resp.status == 206 else "wb") as out:
                            async for chunk in resp.content.iter_chunked(1 << 16):
                                out.write(chunk)
                        break
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                last = f"{type(exc).__name__}: {exc}"
                wait = self.backoff * 2 ** attempt
            if attempt == self.retries:
                raise PartnerUnavailable(f"GET {url} failed {self.retries + 1} times; last: {last}")
            if last == "HTTP 401":
                await self.token(renew=True)
            await asyncio.sleep(wait)
        part.replace(target)
        return target.stat().st_size

    async def _send(self, method: str, url: str, *, json: dict | None = None, headers: dict | None = None,
                    authorized: bool) -> Answer:
        renewed = False
        last = "no attempt"
        for attempt in range(self.retries + 1):
            sent = dict(headers or {})
            if authorized:
                sent["Authorization"] = f"Bearer {await self.token()}"
            try:
                async with self.session.request(method, url, headers=sent,
                                                data=orjson.dumps(json) if json is not None else None) as resp:
                    body = await resp.read()
                    answer = Answer(resp.status, dict(resp.headers), body)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                last = f"{type(exc).__name__}: {exc}"
                wait = self.backoff * 2 ** attempt
            else:
                if answer.status == 401 and authorized and not renewed:
                    renewed = True
                    await self.token(renew=True)
                    continue
                if answer.status not in RETRIED_STATUSES:
                    return answer
                last = f"HTTP {answer.status}"
                wait = retry_after(answer.headers, self.backoff * 2 ** attempt)
            if attempt < self.retries:
                log.warning("partner request failed; retrying", extra={"url": url, "reason": last, "wait": wait})
                await asyncio.sleep(wait)
        raise PartnerUnavailable(f"{method} {url} failed {self.retries + 1} times; last: {last}")
