"""The client side of any asynchronous job once kicked off: the status URL (poll, cancel) and file downloads.

Status and file URLs are the sidecar's own (`{public}/fhir/bulk-status/{job}`, `{public}/fhir/bulk-files/{job}/{file}`)
and answer only the client that started the job: to any other caller a job does not exist (404), so job ids are no
oracle.
"""
from __future__ import annotations

import email.utils
from datetime import datetime, timezone

import orjson
from aiohttp import web

from sidecar.gate.caller import CALLER_KEY, Caller
from sidecar.auth.middleware import note_audit
from sidecar.config import Settings
from sidecar.fhir.outcome import outcome_response
from sidecar.jobs.runner import JobRunner
from sidecar.store import jobs
from sidecar.store.db import Store

RETRY_AFTER = "2"


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
