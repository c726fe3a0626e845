"""Runs the sidecar's asynchronous jobs in the background; each kind of job registers its own work.

A job runs once a slot is free (`job_concurrency`). Its work reports progress, writes its files into the job's
directory (under `files_dir`, which replicas share) and finishes by listing them; only then is the job complete.
HAPI failing fails the job with a 5xx, anything else with a 500; a cancelled job stops and its files go. Completed
jobs' files expire after `export_retention_seconds`.

Replicas: the runner holds a lease on each job it runs and renews it every third of `job_lease_seconds`. A job
whose lease ran out (its replica died) is claimed by whichever runner looks next and resumed: the work starts
again, knowing only what it stored, and rewrites the job's files from the start, so none is duplicated. A job
whose lease this runner lost (cancelled at another replica, or taken over after a stall) is stopped here.
"""
from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import socket
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


def replica_name() -> str:
    """This process's name as a lease owner: its own even beside another replica on the same host and data
    directory (a crashed process's jobs wait for their leases to run out, whoever restarts)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class JobRunner:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.root = settings.job_files_dir
        self.lease = jobs.Lease(replica_name(), settings.job_lease_seconds)
        self.tasks: dict[str, asyncio.Task] = {}
        self.work: dict[str, Work] = {}
        self.on_cancel: dict[str, Work] = {}
        self.slots = asyncio.Semaphore(settings.job_concurrency)
        self._background: list[asyncio.Task] = []

    def register(self, kind: str, work: Work, on_cancel: Work | None = None) -> None:
        """The work a job of `kind` does; `on_cancel` stops what that work started outside the sidecar."""
        self.work[kind] = work
        if on_cancel is not None:
            self.on_cancel[kind] = on_cancel

    async def start(self) -> None:
        await self._claim()
        self._background = [asyncio.create_task(self._sweep(), name="job-retention"),
                            asyncio.create_task(self._keep_leases(), name="job-leases")]

    async def close(self) -> None:
        """Stops the work in hand; the jobs stay live in the store, handed back for another replica (or the next
        start) to resume at once."""
        tasks = [*self.tasks.values(), *self._background]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.store.run(jobs.release_leases, self.store, self.lease.owner)

    def create(self, kind: str, client_id: str, organization: str, request_url: str, params: dict) -> jobs.Job:
        """A new job's row, leased to this runner (on the store's thread; `submit` it once created)."""
        return jobs.create_job(self.store, kind, client_id, organization, request_url, params, self.lease)

    async def _claim(self) -> None:
        """Take over the live jobs nobody holds (a new store's, a stopped or dead replica's) and run them."""
        for job in await self.store.run(jobs.claim_jobs, self.store, self.lease):
            if job.id in self.tasks:  # held here, but its renewal came late: it is running already
                continue
            log.info("resuming job", extra={"job": job.id, "kind": job.kind, "state": job.state})
            self.submit(job)

    async def _keep_leases(self) -> None:
        while True:
            await asyncio.sleep(self.lease.seconds / 3)
            try:
                held = list(self.tasks)
                kept = await self.store.run(jobs.renew_leases, self.store, self.lease, held)
                for job_id in set(held) - kept:
                    await self._lost(job_id)
                await self._claim()
            except Exception:
                log.exception("job lease renewal failed; retrying")

    async def _lost(self, job_id: str) -> None:
        """This runner no longer holds the job: cancelled elsewhere (its files go) or taken over (they stay)."""
        task = self.tasks.pop(job_id, None)
        if task is None or task.done():  # it ended here meanwhile: nothing was lost
            return
        log.warning("job lease lost; stopping its work here", extra={"job": job_id})
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        job = await self.store.run(jobs.get_job, self.store, job_id)
        if job is not None and job.state == jobs.CANCELLED:
            shutil.rmtree(self.directory(job_id), ignore_errors=True)

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
                if not await self.store.run(jobs.set_state_if_live, self.store, job.id, self.lease.owner,
                                            jobs.RUNNING):
                    return  # cancelled, or taken over by another replica, while it waited for a slot
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
        await self.store.run(partial(jobs.set_state_if_live, self.store, job.id, self.lease.owner, jobs.FAILED,
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
        if not await self.store.run(jobs.complete_job, self.store, job.id, self.lease.owner, files, transaction_time,
                                    expires):
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
