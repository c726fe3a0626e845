"""The FHIR async pattern from the client's side (Bulk Data STU2 §status): kick off, then poll at the pace the
partner asks for with `Retry-After`, until a manifest or a failure."""
from __future__ import annotations

import asyncio
import time

from sidecar.client.connection import Answer, PartnerConnection, PartnerUnavailable, retry_after
from sidecar.fhir.outcome import outcome_text

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
DEFAULT_WAIT = 2.0


class PartnerRefused(Exception):
    """The partner answered a 4xx that retrying cannot change; the message carries its diagnostics."""


def diagnostics(answer: Answer) -> str:
    return outcome_text(answer.body) or f"HTTP {answer.status}"


async def kickoff(conn: PartnerConnection, url: str, parameters: dict) -> str:
    """POSTs an async operation; its status URL."""
    answer = await conn.request("POST", url, json=parameters, headers=ASYNC)
    if answer.status != 202 or not answer.headers.get("Content-Location"):
        raise PartnerRefused(f"POST {url} answered {answer.status}: {diagnostics(answer)}")
    return answer.headers["Content-Location"]


async def await_manifest(conn: PartnerConnection, status_url: str, timeout: float = 6 * 3600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = await conn.request("GET", status_url, headers={"Accept": "application/json"})
        if answer.status == 200:
            return answer.json()
        if answer.status != 202:
            raise PartnerRefused(f"the partner's job failed ({answer.status}): {diagnostics(answer)}")
        await asyncio.sleep(retry_after(answer.headers, DEFAULT_WAIT))
    raise PartnerUnavailable(f"the partner's job at {status_url} did not finish within {timeout:.0f}s")
