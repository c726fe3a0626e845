"""How many of this payer's members carry each first and family name, for the scorer's term-frequency adjustment.

Derived from the roster in HAPI and kept in step without a scan per request: the first refresh reads every Patient's
names (`_elements=name`, sorted by `_lastUpdated`, page by page); each later one reads only the Patients changed
since the newest `meta.lastUpdated` seen (`_lastUpdated=ge…`, so one changed in that same instant is not lost; reading
a Patient twice changes nothing, as its earlier names are taken off before its new ones are counted). Deleted
Patients are not seen: their names stay counted, which only ever makes a name look commoner, so weigh less.
At 50,000 members the table is two dicts of names and one of ids, a few megabytes; the scorer reads it from an
executor thread with single `dict.get`s, safe beside the event loop's updates.
"""
from __future__ import annotations

import asyncio
import logging
from collections import Counter

from yarl import URL

from sidecar.hapi.client import FHIR_JSON_HEADERS, HapiClient, HapiError, parsed, refused
from sidecar.matching.person import names_of

log = logging.getLogger("sidecar.matching")

PAGE_SIZE = 1000
# A name fewer members carry than this is no evidence of being common.
MIN_CARRIERS = 2


class NameFrequencies:
    """Counts of first and family names (folded as the matcher compares them) over the roster's Patients."""

    def __init__(self) -> None:
        self.given: Counter[str] = Counter()
        self.family: Counter[str] = Counter()
        self._names: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.newest: str | None = None

    @property
    def people(self) -> int:
        return len(self._names)

    def _share(self, counts: Counter[str], name: str) -> float | None:
        carriers = counts.get(name, 0)
        return carriers / len(self._names) if carriers >= MIN_CARRIERS else None

    def given_share(self, name: str) -> float | None:
        """The share of members whose first name this is; None when too few carry it to say."""
        return self._share(self.given, name)

    def family_share(self, name: str) -> float | None:
        return self._share(self.family, name)

    def record(self, patient: dict) -> None:
        """Count a Patient's names, in place of what it carried when last seen."""
        patient_id = patient.get("id")
        if not isinstance(patient_id, str):
            return
        given, _, family = names_of(patient)
        old = self._names.pop(patient_id, None)
        if old is not None:
            self.given[old[0]] -= 1
            self.family.subtract(old[1])
        self._names[patient_id] = (given, family)
        self.given[given] += 1
        self.family.update(family)
        updated = (patient.get("meta") or {}).get("lastUpdated")
        if isinstance(updated, str) and (self.newest is None or updated > self.newest):
            self.newest = updated


class RosterNames:
    """The table above, refreshed from HAPI in the background every `interval` seconds from the first `start`
    (the first `$member-match`): until that first read completes, no name weighs less."""

    def __init__(self, upstream: HapiClient, interval: float) -> None:
        self.upstream = upstream
        self.interval = interval
        self.frequencies = NameFrequencies()
        self._task: asyncio.Task | None = None

    async def refresh(self) -> int:
        """Read the Patients changed since the last refresh (all of them the first time); how many were read. Each
        page is parsed and counted in an executor thread: the first read of a large roster is seconds of CPU that
        would otherwise stall every request on the event loop."""
        params = [("_elements", "name"), ("_sort", "_lastUpdated"), ("_count", str(PAGE_SIZE))]
        if self.frequencies.newest:
            params.append(("_lastUpdated", f"ge{self.frequencies.newest}"))
        url: URL | None = URL(f"{self.upstream.base}/Patient").with_query(params)
        loop = asyncio.get_running_loop()
        read = 0
        while url is not None:
            async with self.upstream.request("GET", url, headers=FHIR_JSON_HEADERS) as resp:
                body = await resp.read()
            if resp.status != 200:
                raise refused(resp.status, body, "the FHIR server refused the roster's names")
            counted, url = await loop.run_in_executor(None, self._count_page, body)
            read += counted
        return read

    def _count_page(self, body: bytes) -> tuple[int, URL | None]:
        """Count the names on one page of the roster; how many Patients it held, and the next page."""
        bundle = parsed(body)
        counted = 0
        for entry in bundle.get("entry") or ():
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict) and resource.get("resourceType") == "Patient":
                self.frequencies.record(resource)
                counted += 1
        return counted, next((URL(link["url"], encoded=True) for link in bundle.get("link") or ()
                              if isinstance(link, dict) and link.get("relation") == "next"), None)

    async def _run(self) -> None:
        while True:
            try:
                read = await self.refresh()
                log.info("roster names refreshed", extra={"read": read, "people": self.frequencies.people})
            except HapiError as exc:
                log.warning("roster names not refreshed", extra={"error": str(exc)})
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        """Start refreshing in the background, unless already started."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="roster-names")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
