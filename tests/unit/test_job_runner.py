"""The generic job runner: each job kind's registered work runs its jobs, and a cancel runs the kind's own cancel."""
from __future__ import annotations

import asyncio
import time

import pytest

from sidecar.config import Settings
from sidecar.jobs.runner import JobRunner
from sidecar.store import jobs
from sidecar.store.sqlite import SqliteStore
from sidecar.store.jobs import Job


@pytest.fixture
async def runner(tmp_path):
    store = SqliteStore(tmp_path)
    runner = JobRunner(Settings(data_dir=tmp_path, job_lease_seconds=3), store)
    yield runner
    await runner.close()
    store.close()


async def started(runner: JobRunner, kind: str) -> Job:
    job = await runner.store.run(runner.create, kind, "client", "Organization/o", "url", {})
    runner.submit(job)
    return job


async def settled(runner: JobRunner, job: Job) -> Job:
    await asyncio.gather(*runner.tasks.values())
    return await runner.store.run(jobs.get_job, runner.store, job.id)


async def test_each_kind_runs_its_own_work(runner):
    seen: dict[str, list[str]] = {"a": [], "b": []}

    def work(kind: str):
        async def run(job: Job) -> None:
            seen[kind].append(job.id)
            await runner.finish(job, [runner.write_file(job, "output", "Group", f"{kind}.ndjson", [b"{}"])], "now")
        return run

    runner.register("a", work("a"))
    runner.register("b", work("b"))
    a, b = await started(runner, "a"), await started(runner, "b")
    assert (await settled(runner, a)).state == (await settled(runner, b)).state == jobs.COMPLETE
    assert seen == {"a": [a.id], "b": [b.id]}
    assert [f.name for f in await runner.store.run(jobs.job_files, runner.store, b.id)] == ["b.ndjson"]


async def test_a_cancel_runs_the_kinds_cancel_and_the_files_go(runner):
    cancelled: list[str] = []
    running = asyncio.Event()

    async def work(job: Job) -> None:
        runner.write_file(job, "output", "Group", "partial.ndjson", [b"{}"])
        running.set()
        await asyncio.Event().wait()

    async def on_cancel(job: Job) -> None:
        cancelled.append(job.id)

    runner.register("slow", work, on_cancel=on_cancel)
    job = await started(runner, "slow")
    await running.wait()
    await runner.cancel(job)
    assert cancelled == [job.id]
    assert (await runner.store.run(jobs.get_job, runner.store, job.id)).state == jobs.CANCELLED
    assert not runner.directory(job.id).exists()


async def test_a_job_of_a_kind_nobody_registered_fails(runner):
    job = await started(runner, "unknown")
    failed = await settled(runner, job)
    assert (failed.state, failed.error_status) == (jobs.FAILED, 500)


async def test_a_live_job_whose_replica_died_is_taken_over_at_start(runner, tmp_path):
    ran = asyncio.Event()

    async def work(job: Job) -> None:
        ran.set()
        await runner.finish(job, [], "now")

    runner.register("a", work)
    dead = jobs.Lease("dead-replica", 3)
    job = await runner.store.run(jobs.create_job, runner.store, "a", "client", "Organization/o", "url", {}, dead)
    await runner.store.run(jobs.renew_leases, runner.store, dead, [job.id], time.time() - 10)
    await runner.start()
    await asyncio.wait_for(ran.wait(), 5)
    assert (await settled(runner, job)).state == jobs.COMPLETE


async def test_a_job_held_by_a_live_replica_is_left_to_it(runner):
    runner.register("a", lambda job: asyncio.sleep(0))
    job = await runner.store.run(jobs.create_job, runner.store, "a", "client", "Organization/o", "url", {},
                                 jobs.Lease("live-replica", 3))
    await runner.start()
    assert runner.tasks == {}
    assert (await runner.store.run(jobs.get_job, runner.store, job.id)).state == jobs.ACCEPTED


async def test_a_job_cancelled_at_another_replica_stops_here_and_its_files_go(runner, tmp_path):
    running = asyncio.Event()

    async def work(job: Job) -> None:
        runner.write_file(job, "output", "Group", "partial.ndjson", [b"{}"])
        running.set()
        await asyncio.Event().wait()

    runner.register("slow", work)
    await runner.start()
    job = await started(runner, "slow")
    await running.wait()
    elsewhere = SqliteStore(tmp_path)
    try:
        jobs.update_job(elsewhere, job.id, state=jobs.CANCELLED)
    finally:
        elsewhere.close()
    for _ in range(40):
        if job.id not in runner.tasks:
            break
        await asyncio.sleep(0.1)
    assert job.id not in runner.tasks and not runner.directory(job.id).exists()
