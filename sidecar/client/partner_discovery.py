"""A partner payer's FHIR base from its HRex `.well-known/davinci-configuration` (for `partners add --discover`).

The URL given is the document itself, or a base it is published under: `{base}/.well-known/davinci-configuration`
is tried first, then the same path at the host root (where SMART discovery also lives). The FHIR base is the
partner's PDex payer-to-payer endpoint (`davinci_pdex_payer_endpoint#<version>`), preferring the versions this
sidecar speaks, newest first. The token endpoint is not taken from here: the pull reads it from the partner's
SMART configuration at that base, so it stays current when the partner moves it.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
import orjson

from sidecar.discovery.davinci_configuration import PAYER_ENDPOINT, PDEX_VERSIONS

WELL_KNOWN = "/.well-known/davinci-configuration"
TIMEOUT = aiohttp.ClientTimeout(total=30)


class DiscoveryFailed(Exception):
    """No usable davinci-configuration: the message says what was tried and what went wrong."""


@dataclass(frozen=True)
class PayerEndpoint:
    fhir_base: str
    code: str
    document_url: str


def _absolute(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def document_urls(url: str) -> list[str]:
    """Where to look for the document, in order."""
    url = url.rstrip("/")
    if not _absolute(url):
        raise DiscoveryFailed(f"--discover needs an absolute http(s) URL, got {url!r}")
    if url.endswith(WELL_KNOWN):
        return [url]
    parts = urlsplit(url)
    at_root = f"{parts.scheme}://{parts.netloc}{WELL_KNOWN}"
    return list(dict.fromkeys([url + WELL_KNOWN, at_root]))


def _version_rank(code: str) -> tuple[bool, tuple[int, ...]] | None:
    """How much we want a payer endpoint of this code (spoken versions first, then newer), None for other codes."""
    if code == PAYER_ENDPOINT:
        return False, ()
    name, hash_, version = code.partition("#")
    if name != PAYER_ENDPOINT or not hash_:
        return None
    try:
        numbers = tuple(int(n) for n in version.split("."))
    except ValueError:
        numbers = ()
    return version in PDEX_VERSIONS, numbers


def payer_endpoint(document: dict, document_url: str) -> PayerEndpoint:
    """The partner's payer-to-payer FHIR base from a parsed davinci-configuration."""
    endpoints = document.get("endpoints")
    if not isinstance(endpoints, dict):
        raise DiscoveryFailed(f"{document_url} has no `endpoints` object")
    offered = {code: url for code, url in endpoints.items()
               if _version_rank(code) is not None and isinstance(url, str) and _absolute(url)}
    if not offered:
        raise DiscoveryFailed(f"{document_url} names no payer-to-payer endpoint ({PAYER_ENDPOINT}#<version> "
                              f"with an http(s) URL); it offers: {', '.join(endpoints) or 'nothing'}")
    code = max(offered, key=_version_rank)
    return PayerEndpoint(offered[code].rstrip("/"), code, document_url)


async def _fetch(session: aiohttp.ClientSession, url: str) -> dict | str:
    """The document at `url`, or why there is none there."""
    try:
        async with session.get(url, headers={"Accept": "application/json"}) as resp:
            if resp.status != 200:
                return f"answered {resp.status}"
            body = await resp.read()
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        return f"unreachable ({str(exc) or type(exc).__name__})"
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "answered with something that is not JSON"
    return document if isinstance(document, dict) else "answered with JSON that is not an object"


async def discover(url: str) -> PayerEndpoint:
    """The payer endpoint of the first davinci-configuration found from `url`."""
    tried: list[str] = []
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        for candidate in document_urls(url):
            found = await _fetch(session, candidate)
            if isinstance(found, dict):
                return payer_endpoint(found, candidate)
            tried.append(f"{candidate} {found}")
    raise DiscoveryFailed("no davinci-configuration found: " + "; ".join(tried))
