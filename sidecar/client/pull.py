"""A pull: our members' histories from one partner payer, end to end.

1. Members: those named, or every member with an active Consent naming the partner as the source of their data.
2. Match: members never sent, due for a retry, or whose data here changed since the last attempt go to the
   partner (`$bulk-member-match` in batches, or `$member-match` one by one); each outcome is kept per member.
3. Export: `$davinci-data-export` on each matched Group (Patient-level `$export` for single matches), with
   `_since` = the last successful `transactionTime` when asked for run-off only; files downloaded resumably.
4. Ingest: per member, one transaction into our HAPI (see ingest.py). Only when every member of an export was
   ingested does its `transactionTime` become the next run-off start.
A partner that stays down stops the pull with a report; members keep the state they had.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import aiohttp
import orjson

from sidecar.client import ingest
from sidecar.client.async_jobs import PartnerRefused, await_manifest, kickoff
from sidecar.client.connection import PartnerConnection, PartnerUnavailable
from sidecar.client.local_fhir import LocalFhir, LocalFhirError
from sidecar.client.match_at_partner import MatchOutcome, bulk_match, due, single_match
from sidecar.client.member_requests import MemberRequest, member_requests
from sidecar.client.progress import Progress
from sidecar.client.smart import load_private_key
from sidecar.config import Settings
from sidecar.store import exchanges as ex
from sidecar.store.db import Store
from sidecar.store.partners import Partner

log = logging.getLogger("sidecar.pull")

EXPORT_TYPE = "hl7.fhir.us.davinci-pdex#payertopayer"
SINGLE_CONCURRENCY = 4
# Member transactions in flight at our HAPI at once: enough to overlap round trips, few enough for two cores.
INGEST_CONCURRENCY = 4


@dataclass(frozen=True)
class PullOptions:
    members: list[str] | None = None
    since_last: bool = False
    single: bool = False
    concurrent_only: bool = False     # the scheduled run-off pulls: members whose coverage there is in force


@dataclass
class PullReport:
    partner: str
    problems: list[str] = field(default_factory=list)
    transaction_times: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


class Pull:
    def __init__(self, settings: Settings, store: Store, partner: Partner, session: aiohttp.ClientSession,
                 progress: Progress) -> None:
        self.settings = settings
        self.store = store
        self.partner = partner
        self.fhir = LocalFhir(session, settings.upstream_base)
        # The key is read from its file at each pull, so a rotated file is picked up without re-registering.
        key = load_private_key(Path(partner.private_jwks_file))
        self.connection = PartnerConnection(session, partner.fhir_base, partner.client_id, key, partner.scopes,
                                            retries=settings.pull_retries, backoff=settings.pull_backoff_seconds)
        self.progress = progress
        self.work = settings.data_dir / "pulls" / partner.name

    async def run(self, options: PullOptions) -> PullReport:
        report = PullReport(self.partner.name)
        try:
            self.progress.enter("members")
            requests = await member_requests(self.fhir, self.partner, options.members)
            if options.concurrent_only:
                today = datetime.now(timezone.utc).date()
                requests = [r for r in requests if r.concurrent(today)]
            members = [r.member for r in requests]
            self.progress.members = len(members)
            self.progress.enter("match")
            await self._match(requests, options.single)
            await self._export_and_ingest(set(members), options, report)
        except (PartnerUnavailable, PartnerRefused, LocalFhirError) as exc:
            log.warning("pull stopped", extra={"partner": self.partner.name, "reason": str(exc)})
            report.problems.append(str(exc))
        finally:
            self.progress.finish()
        return report

    # --- match ----------------------------------------------------------------------------------------------------

    async def _match(self, requests: list[MemberRequest], single: bool) -> None:
        previous = await self.store.run(ex.exchanges_of, self.store, self.partner.name)
        sendable: list[MemberRequest] = []
        for request in requests:
            known = previous.get(request.member)
            if known is not None and known.state in ex.HAS_DATA:
                continue
            problem = request.problem()
            if problem is not None:
                await self._record(MatchOutcome(request.member, ex.MISSING_DATA, detail=problem), counted=True)
            elif due(request, known):
                sendable.append(request)
        if single:
            slots = asyncio.Semaphore(SINGLE_CONCURRENCY)

            async def one(request: MemberRequest) -> None:
                async with slots:
                    await self._record(await single_match(self.connection, request))

            await asyncio.gather(*(one(r) for r in sendable))
            return
        size = self.settings.pull_batch_size
        for start in range(0, len(sendable), size):
            batch = sendable[start:start + size]
            self.progress.sent += len(batch)
            for outcome in await bulk_match(self.connection, batch):
                await self._record(outcome, counted=True)
            self.progress.show()

    async def _record(self, outcome: MatchOutcome, counted: bool = False) -> None:
        """`counted`: the member is already in `sent` (a bulk batch), or was never sent (missing data)."""
        if not counted:
            self.progress.sent += 1
        if outcome.state == ex.MATCHED:
            self.progress.matched += 1
        else:
            self.progress.not_matched += 1
        retry = time.time() + self.settings.pull_no_match_retry_days * 86400 if outcome.state == ex.NO_MATCH else None
        await self.store.run(partial(ex.record_outcome, self.store, self.partner.name, outcome.member, outcome.state,
                                     detail=outcome.detail, partner_patient=outcome.partner_patient,
                                     export_scope=outcome.export_scope, next_attempt=retry))
        self.progress.show()

    # --- export and ingest ----------------------------------------------------------------------------------------

    async def _export_and_ingest(self, selected: set[str], options: PullOptions, report: PullReport) -> None:
        scopes: dict[str, list[ex.Exchange]] = {}
        for exchange in (await self.store.run(ex.exchanges_of, self.store, self.partner.name)).values():
            if exchange.member in selected and exchange.state in ex.HAS_DATA and exchange.export_scope:
                scopes.setdefault(exchange.export_scope, []).append(exchange)
        for scope, members in sorted(scopes.items()):
            since = (await self.store.run(ex.last_transaction_time, self.store, self.partner.name, scope)
                     if options.since_last else None)
            named = scope == "Patient" or options.members is not None or options.concurrent_only
            self.progress.enter("export")
            manifest, files = await self._export(scope, members if named else None, since)
            self.progress.enter("ingest")
            if await self._ingest(members, files, manifest.get("transactionTime")):
                await self.store.run(ex.record_transaction_time, self.store, self.partner.name, scope,
                                     str(manifest["transactionTime"]))
                report.transaction_times[scope] = str(manifest["transactionTime"])
                await self.store.run(ex.record_pulled, self.store, self.partner.name, [m.member for m in members])
                for path in files:
                    path.unlink(missing_ok=True)
            else:
                report.problems.append(f"{scope}: some members could not be ingested; `pull status` names them")

    async def _export(self, scope: str, members: list[ex.Exchange] | None,
                      since: str | None) -> tuple[dict, list[Path]]:
        parameters = [{"name": "exportType", "valueString": EXPORT_TYPE}]
        if since:
            parameters.append({"name": "_since", "valueInstant": since})
        parameters += [{"name": "patient", "valueReference": {"reference": f"Patient/{m.partner_patient}"}}
                       for m in members or ()]
        operation = "$davinci-data-export" if scope.startswith("Group/") else "$export"
        status_url = await kickoff(self.connection, f"{self.partner.fhir_base}/{scope}/{operation}",
                                   {"resourceType": "Parameters", "parameter": parameters})
        manifest = await await_manifest(self.connection, status_url)
        if not manifest.get("transactionTime"):
            raise PartnerRefused("the partner's export manifest has no transactionTime")
        outputs = [o for o in manifest.get("output") or () if isinstance(o, dict) and isinstance(o.get("url"), str)]
        self.progress.files_total += len(outputs)
        directory = self.work / hashlib.sha256(status_url.encode()).hexdigest()[:16]
        directory.mkdir(parents=True, exist_ok=True)
        files = []
        for n, item in enumerate(outputs):
            target = directory / f"{n}-{item.get('type', 'file')}.ndjson"
            await self.connection.download(item["url"], target, authorized=manifest.get("requiresAccessToken", True))
            files.append(target)
            self.progress.files += 1
            self.progress.show()
        return manifest, files

    async def _ingest(self, members: list[ex.Exchange], files: list[Path], transaction_time: str | None) -> bool:
        patients = {m.partner_patient: m.member for m in members if m.partner_patient}
        by_member: dict[str | None, list[dict]] = {}
        for path in files:
            for resource in _read_ndjson(path):
                if resource.get("resourceType") == "OperationOutcome":
                    continue
                owner = ingest.member_of(resource, patients, self.partner.fhir_base)
                by_member.setdefault(owner, []).append(resource)
        everything = [r for resources in by_member.values() for r in resources]
        loop = asyncio.get_running_loop()
        problems = await loop.run_in_executor(None, _problems, everything)
        self.progress.invalid += len(problems)
        by_member = ingest.with_their_members(by_member, patients, self.partner.fhir_base, problems)
        previous = await self.store.run(ex.ingested_digests, self.store, self.partner.name)
        remapper = ingest.Remapper(self.partner.name, self.partner.fhir_base, patients,
                                   known=set(previous) | {ingest.source_of(r) for r in everything
                                                          if ingest.source_of(r) not in problems})
        # Resources of no member (an Organization, a Practitioner) first: members' resources refer to them.
        shared_ok = await self._ingest_one(None, by_member.pop(None, []), remapper, previous, problems,
                                           transaction_time)
        slots = asyncio.Semaphore(INGEST_CONCURRENCY)

        async def member(owner: str) -> bool:
            async with slots:
                return await self._ingest_one(owner, by_member[owner], remapper, previous, problems,
                                              transaction_time)

        return all([shared_ok, *await asyncio.gather(*(member(owner) for owner in by_member))])

    async def _ingest_one(self, owner: str | None, resources: list[dict], remapper: ingest.Remapper,
                          previous: dict[str, str], problems: dict[str, str], transaction_time: str | None) -> bool:
        """One member's transaction (or the shared resources'); whether it was written."""
        batch = ingest.member_batch(self.partner.name, self.partner.fhir_base, owner, resources, remapper,
                                    previous, problems, transaction_time, time.time())
        detail = f"{len(batch.skipped_invalid)} invalid resource(s) left out: " + "; ".join(
            batch.skipped_invalid)[:400] if batch.skipped_invalid else None
        try:
            if batch.entries:
                await self.fhir.transaction(batch.entries)
        except LocalFhirError as exc:
            self.progress.failed_members += 1
            if owner is not None:
                await self.store.run(ex.record_ingest_failure, self.store, self.partner.name, owner, str(exc))
            log.warning("ingest failed", extra={"partner": self.partner.name, "member": owner, "reason": str(exc)})
            return False
        await self.store.run(ex.record_ingest, self.store, self.partner.name, owner, len(batch.rows), detail,
                             batch.rows)
        self.progress.ingested += len(batch.rows)
        self.progress.unchanged += batch.unchanged
        self.progress.show()
        return True


def _read_ndjson(path: Path):
    with open(path, "rb") as lines:
        for line in lines:
            if line.strip():
                try:
                    value = orjson.loads(line)
                except orjson.JSONDecodeError:
                    log.warning("an export line is not JSON", extra={"file": str(path)})
                    continue
                if isinstance(value, dict):
                    yield value


def _problems(resources: list[dict]) -> dict[str, str]:
    found = {}
    for resource in resources:
        problem = ingest.problem_of(resource)
        if problem is not None:
            found[ingest.source_of(resource)] = problem
    return found
