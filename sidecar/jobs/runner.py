"""Runs the sidecar's asynchronous jobs in the background; each kind of job registers its own work.

A job runs once a slot is free (`job_concurrency`). Its work reports progress, writes its files into the job's
directory and finishes by listing them; only then is the job complete. A restart resumes live jobs (the work
starts again, knowing only what it stored). HAPI failing fails the job with a 5xx, anything else with a 500; a
cancelled job stops and its files go. Completed jobs' files expire after `export_retention_seconds`.
"""
from __future__ import annotations

import asyncio
import logging
import shutil
import time
from functools import partial
from pathlib import Path
from typing import Awaitable, Callable

import orjson

from sidecar.config import Settings
from sidecar.fhir.hapi_trouble import status_and_code
from sidecar.hapi.errors import HapiError
from sidecar.store import jobs
from sidecar.store.db import Store
from sidecar.store.jobs import Job, JobFile

log = logging.getLogger("sidecar.jobs")

OPERATION_OUTCOME = "OperationOutcome"

Work = Callable[[Job], Awaitable[None]]


class JobCancelled(Exception):
    pass


def outcome_line(severity: str, code: str, diagnostics: str) -> bytes:
    return orjson.dumps({"resourceType": OPERATION_OUTCOME,
                         "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}]})


class JobRunner:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.root = settings.data_dir / "jobs"
        self.tasks: dict[str, asyncio.Task] = {}
        self.work: dict[str, Work] = {}
        self.on_cancel: dict[str, Work] = {}
        self.slots = asyncio.Semaphore(settings.job_concurrency)
        self._sweeper: asyncio.Task | None = None

    def register(self, kind: str, work: Work, on_cancel: Work | None = None) -> None:
        """The work a job of `kind` does; `on_cancel` stops what that work started outside the sidecar."""
        self.work[kind] = work
        if on_cancel is not None:
            self.on_cancel[kind] = on_cancel

    async def start(self) -> None:
        for job in await self.store.run(jobs.live_jobs, self.store):
            log.info("resuming job", extra={"job": job.id, "kind": job.kind, "state": job.state})
            self.submit(job)
        self._sweeper = asyncio.create_task(self._sweep(), name="job-retention")

    async def close(self) -> None:
        """Stops the work in hand; the jobs stay live in the store and resume at the next start."""
        tasks = [*self.tasks.values(), *([self._sweeper] if self._sweeper else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def directory(self, job_id: str) -> Path:
        return self.root / job_id

    def submit(self, job: Job) -> None:
        task = asyncio.create_task(self._run(job), name=f"job-{job.id}")
        self.tasks[job.id] = task
        task.add_done_callback(lambda _: self.tasks.pop(job.id, None))

    async def cancel(self, job: Job) -> None:
        await self.store.run(partial(jobs.update_job, self.store, job.id, state=jobs.CANCELLED))
        task = self.tasks.get(job.id)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if job.kind in self.on_cancel:
            await self.on_cancel[job.kind](job)
        shutil.rmtree(self.directory(job.id), ignore_errors=True)

    async def _run(self, job: Job) -> None:
        async with self.slots:
            try:
                await self.store.run(jobs.set_state_if_live, self.store, job.id, jobs.RUNNING)
                await self.work[job.kind](job)
            except asyncio.CancelledError:
                raise
            except JobCancelled:
                return
            except HapiError as error:
                log.warning("job failed at the FHIR server", extra={"job": job.id, "reason": error.reason})
                status, _ = status_and_code(error)
                await self._fail(job, status, error.reason)
            except Exception:
                log.exception("job failed", extra={"job": job.id})
                await self._fail(job, 500, "the job failed; quote its id when reporting it")

    async def _fail(self, job: Job, status: int, reason: str) -> None:
        shutil.rmtree(self.directory(job.id), ignore_errors=True)
        await self.store.run(partial(jobs.set_state_if_live, self.store, job.id, jobs.FAILED,
                                     error_status=status, error_text=reason))

    async def progress(self, job: Job, text: str) -> None:
        await self.store.run(partial(jobs.update_job, self.store, job.id, progress=text[:99]))

    def write_file(self, job: Job, section: str, resource_type: str, name: str, lines: list[bytes]) -> JobFile:
        """A small job file written whole (Groups, an envelope, OperationOutcomes), one NDJSON line per entry."""
        directory = self.directory(job.id)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(b"".join(line + b"\n" for line in lines))
        return JobFile(jobs.new_id(), job.id, section, resource_type, name, len(lines))

    async def finish(self, job: Job, files: list[JobFile], transaction_time: str) -> None:
        expires = time.time() + self.settings.export_retention_seconds
        if not await self.store.run(jobs.complete_job, self.store, job.id, files, transaction_time, expires):
            shutil.rmtree(self.directory(job.id), ignore_errors=True)
            raise JobCancelled()

    async def _sweep(self) -> None:
        """Files expire after `export_retention_seconds`; the job then answers 404."""
        while True:
            await asyncio.sleep(min(60.0, max(1.0, self.settings.export_retention_seconds / 4)))
            try:
                for job in await self.store.run(jobs.expired_jobs, self.store, time.time()):
                    shutil.rmtree(self.directory(job.id), ignore_errors=True)
                    await self.store.run(partial(jobs.update_job, self.store, job.id, state=jobs.EXPIRED))
            except Exception:
                log.exception("retention sweep failed")
