"""HAPI's native bulk export, driven by the sidecar: kick-off, poll, download, cancel.

Each kick-off sends `Cache-Control: no-cache` (HAPI would otherwise hand back an earlier job with the same
parameters) and `Prefer: respond-async` (HAPI requires it). HAPI's poll and file URLs stay inside the sidecar, and
so do its words: a refusal or failure is logged with HAPI's text, and the client is told only that it happened.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import AsyncIterator

import orjson

from sidecar.hapi.client import HapiClient, parsed, refused
from sidecar.hapi.errors import HapiError

KICKOFF_HEADERS = {"Prefer": "respond-async", "Cache-Control": "no-cache", "Accept": "application/fhir+json"}


@dataclass(frozen=True)
class Poll:
    done: bool
    manifest: dict | None = None
    progress: str | None = None


class HapiExport:
    def __init__(self, upstream: HapiClient) -> None:
        self.upstream = upstream

    def _local(self, url: str) -> str:
        """HAPI writes its URLs with the public address the sidecar forwards; only the path below the base counts."""
        marker = "/$export-poll-status" if "/$export-poll-status" in url else "/Binary/"
        head, _, tail = url.partition(marker)
        return self.upstream.base + marker + tail if tail else url

    async def kickoff(self, path: str, params: list[tuple[str, str]], patients: list[str] | None = None) -> str:
        """Starts a fresh HAPI job; its poll URL. With `patients`, a POST Parameters (HAPI takes `patient` there only)."""
        url = f"{self.upstream.base}/{path}"
        if patients:
            body = {"resourceType": "Parameters", "parameter": [
                *({"name": name, "valueString": value} for name, value in params),
                *({"name": "patient", "valueString": reference} for reference in patients)]}
            request = self.upstream.request("POST", url, data=orjson.dumps(body), headers={
                **KICKOFF_HEADERS, "Content-Type": "application/fhir+json"})
        else:
            request = self.upstream.request("GET", url, params=params, headers=KICKOFF_HEADERS)
        async with request as resp:
            answer = await resp.read()
        if resp.status != 202 or "Content-Location" not in resp.headers:
            raise refused(resp.status, answer, "the FHIR server refused the export")
        return self._local(resp.headers["Content-Location"])

    async def runs_search(self, resource_type: str, pairs: list[tuple[str, str]]) -> bool:
        """Whether HAPI can run a `_typeFilter`'s search (it refuses unknown parameters and malformed values with a
        4xx), asked for one result so the check stays cheap."""
        async with self.upstream.request("GET", f"{self.upstream.base}/{resource_type}",
                                         params=[*pairs, ("_count", "1")],
                                         headers={"Accept": "application/fhir+json"}) as resp:
            body = await resp.read()
        if resp.status >= 500:
            raise refused(resp.status, body, "the FHIR server could not check the _typeFilter")
        return resp.status == 200

    async def poll(self, poll_url: str) -> Poll:
        async with self.upstream.request("GET", poll_url, headers={"Accept": "application/json"}) as resp:
            body = await resp.read()
        if resp.status == 202:
            return Poll(False, progress=resp.headers.get("X-Progress"))
        if resp.status == 200:
            return Poll(True, manifest=parsed(body, "export manifest"))
        raise refused(resp.status, body, "the FHIR server's export failed")

    async def lines(self, file_url: str) -> AsyncIterator[bytes]:
        """One HAPI output file, line by line, streamed (never held whole in memory)."""
        async with self.upstream.request("GET", self._local(file_url),
                                         headers={"Accept": "application/fhir+ndjson"}) as resp:
            if resp.status != 200:
                raise refused(resp.status, await resp.content.read(500),
                              f"the FHIR server did not deliver an export file ({resp.status})")
            buffered = b""
            async for chunk in resp.content.iter_chunked(1 << 16):
                buffered += chunk
                *complete, buffered = buffered.split(b"\n")
                for line in complete:
                    if line.strip():
                        yield line
            if buffered.strip():
                yield buffered

    async def cancel(self, poll_url: str) -> None:
        """Best effort: a finished or unknown HAPI job answers 404, which is fine."""
        try:
            async with self.upstream.request("DELETE", poll_url) as resp:
                await resp.read()
        except HapiError:
            pass
