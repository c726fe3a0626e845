"""This payer's own HAPI, as the pull sees it: searches followed through every page, and transactions."""
from __future__ import annotations

import asyncio

import aiohttp
import orjson

from sidecar.fhir.outcome import outcome_text

FHIR_JSON = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
PAGE = 200


class LocalFhirError(Exception):
    pass


class LocalFhir:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base.rstrip("/")

    async def search(self, resource_type: str, params: dict[str, str]) -> list[dict]:
        """Every match, page after page."""
        found: list[dict] = []
        url: str | None = f"{self.base}/{resource_type}"
        query: dict[str, str] | None = {**params, "_count": str(PAGE)}
        while url:
            bundle = await self._call("GET", url, params=query)
            found += [e["resource"] for e in bundle.get("entry") or () if isinstance(e.get("resource"), dict)]
            url = next((link.get("url") for link in bundle.get("link") or () if link.get("relation") == "next"), None)
            query = None
        return found

    async def search_in_chunks(self, resource_type: str, name: str, values: list[str],
                               extra: dict[str, str] | None = None, chunk: int = 100) -> list[dict]:
        """A search on `name` for many values, a comma-joined chunk at a time."""
        found: list[dict] = []
        for start in range(0, len(values), chunk):
            found += await self.search(resource_type, {name: ",".join(values[start:start + chunk]), **(extra or {})})
        return found

    async def transaction(self, entries: list[dict]) -> dict:
        return await self._call("POST", self.base, body={"resourceType": "Bundle", "type": "transaction",
                                                         "entry": entries})

    async def _call(self, method: str, url: str, params: dict | None = None, body: dict | None = None) -> dict:
        try:
            async with self.session.request(method, url, params=params, headers=FHIR_JSON,
                                            data=orjson.dumps(body) if body is not None else None) as resp:
                raw = await resp.read()
                if resp.status >= 300:
                    raise LocalFhirError(f"our FHIR server answered {resp.status}: {outcome_text(raw)}")
                return orjson.loads(raw)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise LocalFhirError(f"our FHIR server is unreachable: {exc!r}") from exc
        except orjson.JSONDecodeError as exc:
            raise LocalFhirError("our FHIR server answered something that is not JSON") from exc
