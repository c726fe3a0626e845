"""The export job's work: a fresh HAPI job (Group or Patient `$export`), its output filtered into the sidecar's files.

When HAPI's job completes, each of its output files is streamed through the disclosure filter, in batches, into
the sidecar's own file; the members are those the client may see at that moment (Group members with a live grant,
so a revocation since the match counts), and only then is the job complete. Reference data the released member
data points to (`sidecar.export.references`) is then fetched from HAPI by id, judged as an `_include` would be, and
written one file per type. A partner's export also carries this payer's Transmitter Provenance for what it
released (`sidecar.export.transmitted`), unless its `_type` leaves Provenance out. A resumed job polls HAPI's job
again (or starts it, if it never was) and filters from the start. A cancelled job cancels HAPI's job too.
"""
from __future__ import annotations

import asyncio
import shutil
from collections import Counter
from datetime import datetime
from functools import partial
from pathlib import Path

import orjson

from sidecar.config import Settings
from sidecar.disclosure.answers import INCLUDE, MATCH, AnswerFilter
from sidecar.disclosure.dates import parse_fhir_moment, utc_now
from sidecar.disclosure.rules import policy_of
from sidecar.export.hapi_export import HapiExport
from sidecar.export.references import PointedTo
from sidecar.export.request import ExportParams
from sidecar.export.transmitted import TransmittedFile
from sidecar.jobs.runner import OPERATION_OUTCOME, JobRunner, outcome_line
from sidecar.metrics.registry import Metrics
from sidecar.hapi.client import HapiClient
from sidecar.hapi.errors import HapiError
from sidecar.provenance.transmitter import payer_reference
from sidecar.store import jobs
from sidecar.store.db import Store
from sidecar.store.grants import granted_members
from sidecar.store.jobs import Job, JobFile

BATCH = 500
# HAPI's job is polled so the export ends soon after HAPI's does: every POLL_SHARE of the time waited so far, within
# [POLL_MIN_SECONDS, POLL_MAX_SECONDS]. A short export is seen finished within 0.1 s; a long one costs at most about
# 5 % more, with few polls. HAPI's `Retry-After: 120` on every 202 is a fixed value, not an estimate: not followed.
POLL_SHARE = 0.05
POLL_MIN_SECONDS = 0.1
POLL_MAX_SECONDS = 2.0
# HAPI unreachable or slow: retried with growing waits (about 25 s in all) before the job fails.
TRANSIENT_WAITS = (0.5, 1.0, 2.0, 3.0)
TRANSIENT_RETRIES = 10


class ExportJob:
    def __init__(self, settings: Settings, store: Store, upstream: HapiClient, disclosure: AnswerFilter,
                 runner: JobRunner, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.store = store
        self.upstream = upstream
        self.hapi = HapiExport(upstream)
        self.disclosure = disclosure
        self.runner = runner
        self.who = payer_reference(settings)
        runner.register(jobs.EXPORT, self.run, on_cancel=self.cancel)

    async def cancel(self, job: Job) -> None:
        """HAPI's job, if it was started, is cancelled with the sidecar's (HAPI would otherwise run it out)."""
        if job.upstream_poll:
            await self.hapi.cancel(job.upstream_poll)

    async def run(self, job: Job) -> None:
        params = ExportParams(**job.params["export"])
        poll_url = job.upstream_poll
        if poll_url is None:
            patients = None
            if params.level == "patient" and not job.params.get("unrestricted"):
                # A partner's Patient-level export names its members to HAPI (HAPI would export everyone).
                patients = sorted(f"Patient/{pid}" for pid in await self._members(job, params) or {})
                if not patients:
                    await self.runner.finish(job, [], utc_now().isoformat())
                    return
            path = f"Group/{params.group_id}/$export" if params.level == "group" else "Patient/$export"
            poll_url = await self.hapi.kickoff(path, params.upstream_params(), patients)
            await self.store.run(partial(jobs.update_job, self.store, job.id, upstream_poll=poll_url))
        manifest = await self._await_hapi(job, poll_url)
        await self.runner.progress(job, "filtering the export files")
        now = utc_now()
        members = await self._members(job, params)
        directory = self.runner.directory(job.id)
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        files: list[JobFile] = []
        errors: list[bytes] = [outcome_line("information", "informational", f"_since was raised to {params.since}, "
                                            "the start of the look-back period")] if params.since_raised else []
        # A partner's `_type` may name reference types: not member data, so left out of HAPI's job, but added below.
        # A job resumed from before reference data was exported has none.
        pointed_to = PointedTo(job.params.get("reference_types", []))
        errors += [outcome_line("warning", "not-supported", f"{t} is not exported to this client; left out")
                   for t in params.left_out_types if t not in pointed_to.types]
        unknown = [p for p in params.patients if members is not None and p.split("/")[1] not in members]
        errors += [outcome_line("warning", "not-found", f"{p} is not a member of this export") for p in unknown]
        until = parse_fhir_moment(params.until, self.settings.timezone) if params.until else None
        transaction_time = str(manifest.get("transactionTime") or now.isoformat())
        # Bulk Data filters to `_type`, and for partners `types` is never empty: Provenance only when asked for.
        transmitted = (TransmittedFile(directory, job.id, self.who, transaction_time)
                       if members is not None and "Provenance" in params.types else None)
        for item in manifest.get("output") or ():
            if not isinstance(item, dict) or not isinstance(item.get("url"), str):
                continue
            written = await self._filter_file(job, directory, item["url"], members, now, until, pointed_to,
                                              transmitted)
            if written is not None:
                files.append(written)
        if members is not None and pointed_to.types:
            await self.runner.progress(job, "adding the reference data the export points to")
            files += await self._reference_files(job, directory, members, pointed_to, now, transmitted)
        if transmitted is not None and (provenance := transmitted.listed()) is not None:
            files.append(provenance)
        if errors:
            files.append(self.runner.write_file(job, "error", OPERATION_OUTCOME, "errors.ndjson", errors))
        await self.runner.finish(job, files, transaction_time)

    async def _await_hapi(self, job: Job, poll_url: str) -> dict:
        failures, shown, waited = 0, None, 0.0
        while True:
            try:
                poll = await self.hapi.poll(poll_url)
            except HapiError as error:
                failures += 1
                if not error.transient or failures > TRANSIENT_RETRIES:
                    raise
                wait = poll_wait(failures, waited)
                waited += wait
                await asyncio.sleep(wait)
                continue
            failures = 0
            if poll.done and poll.manifest is not None:
                return poll.manifest
            if poll.progress and poll.progress != shown:  # written only when it changes: polls are frequent
                shown = poll.progress
                await self.runner.progress(job, "FHIR server: " + poll.progress.split(" - ")[-1])
            wait = poll_wait(0, waited)
            waited += wait
            await asyncio.sleep(wait)

    async def _members(self, job: Job, params: ExportParams) -> dict[str, str] | None:
        """Patient id → consent policy of the members whose data may leave now; None for an unrestricted client."""
        if job.params.get("unrestricted"):
            return None
        recorded = await self.store.run(granted_members, self.store, job.organization)
        granted = {pid: policy_of(uri) for pid, uri in recorded.items()}
        if params.level == "group":
            groups = await self.upstream.by_ids("Group", [params.group_id or ""])
            in_group = {str(m.get("entity", {}).get("reference", "")).removeprefix("Patient/")
                        for g in groups for m in g.get("member") or () if isinstance(m, dict)}
            granted = {pid: policy for pid, policy in granted.items() if pid in in_group}
        if params.patients:
            wanted = {p.split("/")[1] for p in params.patients}
            granted = {pid: policy for pid, policy in granted.items() if pid in wanted}
        return granted

    async def _filter_file(self, job: Job, directory: Path, url: str, members: dict[str, str] | None,
                           now: datetime, until: object, pointed_to: PointedTo,
                           transmitted: TransmittedFile | None) -> JobFile | None:
        name = _next_name(directory)
        path = directory / name
        resource_type, count = None, 0
        batch: list[dict] = []

        async def flush(out) -> None:
            nonlocal count
            if not batch:
                return
            kept = batch
            if isinstance(until, datetime):
                kept = [r for r in kept if not _updated_after(r, until, self.settings)]
            if members is not None:
                outcome = await self.disclosure.filter(members, [(r, MATCH) for r in kept], now)
                kept = [r for r in outcome.released if r is not None]
                self._count(kept, outcome.withheld)
                pointed_to.note(outcome.pointed_to)
            for resource in kept:
                out.write(orjson.dumps(resource) + b"\n")
            if transmitted is not None:
                transmitted.add(kept)
            count += len(kept)
            batch.clear()

        with path.open("wb") as out:
            async for line in self.hapi.lines(url):
                resource = orjson.loads(line)
                resource_type = resource_type or resource.get("resourceType")
                batch.append(resource)
                if len(batch) >= BATCH:
                    await flush(out)
            await flush(out)
        return _listed(job, directory, name, resource_type, count)

    async def _reference_files(self, job: Job, directory: Path, members: dict[str, str], pointed_to: PointedTo,
                               now: datetime, transmitted: TransmittedFile | None) -> list[JobFile]:
        files = []
        for resource_type in sorted(pointed_to.types):
            written = await self._reference_file(job, directory, resource_type, members, pointed_to, now,
                                                 transmitted)
            if written is not None:
                files.append(written)
        return files

    async def _reference_file(self, job: Job, directory: Path, resource_type: str, members: dict[str, str],
                              pointed_to: PointedTo, now: datetime,
                              transmitted: TransmittedFile | None) -> JobFile | None:
        """What released data points to, fetched by id in batches, each resource judged under the most permissive
        policy pointing to it, as an `_include` is (a Part 2 program only under `#sensitive`)."""
        name = _next_name(directory)
        count = 0
        with (directory / name).open("wb") as out:
            for policies in pointed_to.batches(resource_type, BATCH):
                fetched = await self.upstream.by_ids(resource_type, [ref.partition("/")[2] for ref in policies])
                outcome = await self.disclosure.filter(members, [(r, INCLUDE) for r in fetched], now, policies)
                released = [r for r in outcome.released if r is not None]
                self._count(released, outcome.withheld)
                out.writelines(orjson.dumps(r) + b"\n" for r in released)
                if transmitted is not None:
                    transmitted.add(released)
                count += len(released)
        return _listed(job, directory, name, resource_type, count)

    def _count(self, released: list[dict], withheld: list[dict]) -> None:
        """A partner's export's disclosure decisions, for the metrics (released by type, withheld by rule)."""
        # Tallied per batch first: a label lookup per resource would cost more than the count is worth.
        for resource_type, count in Counter(str(r.get("resourceType")) for r in released).items():
            self.metrics.export_released.labels(resource_type).inc(count)
        for rule, count in Counter(str(entry.get("rule")) for entry in withheld).items():
            self.metrics.export_withheld.labels(rule).inc(count)


def poll_wait(failures: int, waited: float) -> float:
    """Seconds before the next poll of HAPI's job, after `failures` transient failures in a row and `waited` seconds
    of waiting in all."""
    if failures:
        return TRANSIENT_WAITS[min(failures, len(TRANSIENT_WAITS)) - 1]
    return min(POLL_MAX_SECONDS, max(POLL_MIN_SECONDS, waited * POLL_SHARE))


def _updated_after(resource: dict, until: datetime, settings: Settings) -> bool:
    updated = parse_fhir_moment((resource.get("meta") or {}).get("lastUpdated"), settings.timezone)
    return isinstance(updated, datetime) and updated > until


def _next_name(directory: Path) -> str:
    return f"{len(list(directory.iterdir())) + 1}.ndjson"


def _listed(job: Job, directory: Path, name: str, resource_type: str | None, count: int) -> JobFile | None:
    """A written output file for the manifest; an empty one is deleted instead (no item for a type with no data)."""
    if count == 0 or resource_type is None:
        (directory / name).unlink()
        return None
    return JobFile(jobs.new_id(), job.id, "output", resource_type, name, count)
