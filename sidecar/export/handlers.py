"""The client side of asynchronous jobs: export kick-offs, the status URL (poll, cancel) and file downloads.

Status and file URLs are the sidecar's own (`{public}/fhir/bulk-status/{job}`, `{public}/fhir/bulk-files/{job}/{file}`)
and answer only the client that started the job: to any other caller a job does not exist (404), so job ids are no
oracle. Kick-offs: `Group/{id}/$davinci-data-export` (ATR/PDex), `Group/{id}/$export` and `Patient/$export`
(Bulk Data), GET or POST. A partner exports only its own Member Match Groups and only payer-to-payer types its
scopes cover; an operator's unrestricted client exports anything, unfiltered.
"""
from __future__ import annotations

import email.utils
from datetime import datetime, timezone

import orjson
from aiohttp import web

from sidecar.access.caller import CALLER_KEY, Caller
from sidecar.auth.middleware import forbidden, note_audit, note_refusal
from sidecar.config import Settings
from sidecar.disclosure.dates import utc_now
from sidecar.disclosure.service_dates import DISCLOSED_MEMBER_TYPES
from sidecar.export.references import exported_reference_types
from sidecar.export.request import BadExport, ExportParams, filter_search, pairs_of_parameters, parse_export
from sidecar.export.runner import JobRunner
from sidecar.fhir.body import BodyTooLarge, read_limited
from sidecar.fhir.outcome import outcome_response
from sidecar.fhir.resource_types import R4_RESOURCE_TYPES
from sidecar.store import jobs
from sidecar.store.db import Store

PARTNER_EXPORT_TYPES = sorted(DISCLOSED_MEMBER_TYPES | {"Provenance"})
RETRY_AFTER = "2"
MAX_BODY = 256 * 1024


def status_url(settings: Settings, job_id: str) -> str:
    return f"{settings.public_fhir_base}/bulk-status/{job_id}"


def accepted(settings: Settings, job: jobs.Job) -> web.Response:
    response = outcome_response(202, "informational", "accepted; poll the Content-Location for the result")
    response.headers["Content-Location"] = status_url(settings, job.id)
    return response


def manifest(settings: Settings, job: jobs.Job, files: list[jobs.JobFile]) -> dict:
    def item(f: jobs.JobFile) -> dict:
        return {"type": f.type, "url": f"{settings.public_fhir_base}/bulk-files/{job.id}/{f.id}", "count": f.count}
    return {"transactionTime": job.transaction_time, "request": job.request_url, "requiresAccessToken": True,
            "output": [item(f) for f in files if f.section == "output"],
            "error": [item(f) for f in files if f.section == "error"]}


class JobHandlers:
    def __init__(self, settings: Settings, store: Store, runner: JobRunner) -> None:
        self.settings = settings
        self.store = store
        self.runner = runner

    async def _own(self, request: web.Request) -> jobs.Job | None:
        job = await self.store.run(jobs.get_job, self.store, request.match_info["job"])
        caller: Caller = request[CALLER_KEY]
        return job if job is not None and job.client_id == caller.client.client_id else None

    async def status(self, request: web.Request) -> web.Response:
        job = await self._own(request)
        if job is None or job.state in (jobs.CANCELLED, jobs.EXPIRED):
            return outcome_response(404, "not-found", "no such job (cancelled, expired, or never started)")
        if job.state in jobs.LIVE_STATES:
            return web.Response(status=202, headers={"X-Progress": job.progress or job.state,
                                                     "Retry-After": RETRY_AFTER})
        if job.state == jobs.FAILED:
            return outcome_response(job.error_status or 500, "exception", job.error_text or "the job failed")
        files = await self.store.run(jobs.job_files, self.store, job.id)
        expires = email.utils.format_datetime(datetime.fromtimestamp(job.expires_at or 0, timezone.utc), usegmt=True)
        return web.Response(body=orjson.dumps(manifest(self.settings, job, files)), content_type="application/json",
                            headers={"Expires": expires})

    async def delete(self, request: web.Request) -> web.Response:
        job = await self._own(request)
        if job is None or job.state in (jobs.CANCELLED, jobs.EXPIRED):
            return outcome_response(404, "not-found", "no such job (cancelled, expired, or never started)")
        await self.runner.cancel(job)
        note_audit(request, job=job.id, cancelled=True)
        return outcome_response(202, "informational", "the job is cancelled and its files deleted")

    async def file(self, request: web.Request) -> web.StreamResponse:
        job = await self._own(request)
        found = None
        if job is not None and job.state == jobs.COMPLETE:
            found = await self.store.run(jobs.get_file, self.store, job.id, request.match_info["file"])
        path = self.runner.directory(job.id) / found.name if job is not None and found is not None else None
        if path is None or not path.is_file():
            return outcome_response(404, "not-found", "no such file")
        note_audit(request, job=job.id, file=found.id, type=found.type, count=found.count)
        return web.FileResponse(path, headers={"Content-Type": "application/fhir+ndjson"})

    async def _check_filters(self, params: ExportParams, allowed: list[str]) -> None:
        """A `_typeFilter` HAPI cannot run would fail the job later with HAPI's reasons; refuse it now instead."""
        for query in params.type_filters:
            if not await self.runner.hapi.runs_search(*filter_search(query, params.types or allowed)):
                raise BadExport(f"_typeFilter {query[:80]!r} is not a search this server can run (an unknown "
                                "parameter or a malformed value)")

    async def export(self, request: web.Request) -> web.Response:
        caller: Caller = request[CALLER_KEY]
        group_id = request.match_info.get("group")
        operation = request.path.rsplit("/", 1)[-1]
        level = "group" if group_id else "patient"
        if caller.is_partner and group_id is not None:
            owner = await self.store.run(jobs.group_owner, self.store, group_id)
            if owner != caller.client.organization:
                note_refusal(request, "not this client's Group")
                return outcome_response(404, "not-found", f"Group/{group_id} is not known")
        allowed = [t for t in (PARTNER_EXPORT_TYPES if caller.is_partner else sorted(R4_RESOURCE_TYPES))
                   if caller.scopes.allows(t, "r")]
        if not allowed:
            return forbidden(request, "the access token's scopes allow reading no exportable type")
        try:
            pairs = list(request.query.items())
            if request.method == "POST":
                try:
                    pairs += pairs_of_parameters(orjson.loads(await read_limited(request, MAX_BODY)))
                except BodyTooLarge as exc:
                    raise BadExport("the kick-off body is too large") from exc
                except orjson.JSONDecodeError as exc:
                    raise BadExport("the kick-off body is not JSON") from exc
            prefer = request.headers.get("Prefer")
            if prefer is not None and "respond-async" not in prefer:
                raise BadExport("only Prefer: respond-async is supported")
            params = parse_export(pairs, level, group_id, allowed, utc_now(), self.settings.timezone,
                                  self.settings.lookback_years, self.settings.export_since_floor, operation,
                                  unrestricted=not caller.is_partner)
            await self._check_filters(params, allowed)
        except BadExport as exc:
            note_refusal(request, str(exc))
            return outcome_response(exc.status, "invalid", str(exc),
                                    expression=[exc.expression] if exc.expression else None)
        request_url = f"{self.settings.public_fhir_base}/{request.path.removeprefix('/fhir/')}"
        if request.query_string:
            request_url += "?" + request.query_string
        job = await self.store.run(jobs.create_job, self.store, jobs.EXPORT, caller.client.client_id,
                                   caller.client.organization, request_url,
                                   {"export": params.as_dict(), "unrestricted": not caller.is_partner,
                                    "reference_types": exported_reference_types(pairs, caller.scopes)})
        self.runner.submit(job)
        note_audit(request, job=job.id, export=params.as_dict())
        return accepted(self.settings, job)
