"""An export ends soon after HAPI's job does: HAPI is polled at an interval that grows with the time waited (a short
export is seen finished within 0.1 s, a long one costs at most about 5 % more), with set waits while it is
unreachable."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from sidecar.config import Settings
from sidecar.export import job as export_job
from sidecar.export.hapi_export import Poll
from sidecar.export.job import POLL_MAX_SECONDS, POLL_MIN_SECONDS, TRANSIENT_RETRIES, ExportJob
from sidecar.hapi.errors import HapiError, HapiErrorKind
from sidecar.metrics.registry import Metrics

MANIFEST = {"transactionTime": "2026-12-05T21:00:00Z", "output": []}


class Clock:
    """Virtual time: the job's sleeps advance it instantly."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


class FakeHapi:
    def __init__(self, clock: Clock, done_at: float, failing: int = 0,
                 kind: HapiErrorKind = HapiErrorKind.UNAVAILABLE) -> None:
        self.clock, self.done_at, self.failing, self.kind = clock, done_at, failing, kind

    async def poll(self, poll_url: str) -> Poll:
        if self.failing:
            self.failing -= 1
            raise HapiError(self.kind)
        if self.clock.now >= self.done_at:
            return Poll(True, manifest=MANIFEST)
        return Poll(False, progress="Build in progress - Status set to IN_PROGRESS at 2026-12-05 21:00:00")


class RecordingRunner:
    def __init__(self) -> None:
        self.shown: list[str] = []

    def register(self, *args, **kwargs) -> None:
        pass

    async def progress(self, job, text: str) -> None:
        self.shown.append(text)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(export_job, "asyncio", SimpleNamespace(sleep=clock.sleep))
    return clock


def waiting_on(hapi: FakeHapi) -> ExportJob:
    work = ExportJob(Settings(), SimpleNamespace(), SimpleNamespace(), SimpleNamespace(), RecordingRunner(), Metrics())
    work.hapi = hapi
    return work


async def test_an_export_hapi_finishes_in_2_6_s_is_seen_finished_within_a_tenth_of_a_second(clock):
    manifest = await waiting_on(FakeHapi(clock, done_at=2.6))._await_hapi(SimpleNamespace(), "poll")
    assert manifest == MANIFEST
    assert 2.6 <= clock.now <= 2.6 + 0.14
    assert max(clock.waits) <= 0.14, "short polls, whatever HAPI's Retry-After says"


async def test_a_long_export_is_seen_finished_within_about_5_percent_of_its_time_with_few_polls(clock):
    await waiting_on(FakeHapi(clock, done_at=200.0))._await_hapi(SimpleNamespace(), "poll")
    assert clock.now <= 200.0 * 1.05 + POLL_MIN_SECONDS
    assert len(clock.waits) < 200
    assert max(clock.waits) == POLL_MAX_SECONDS


async def test_hapi_unreachable_for_a_while_is_waited_out_with_growing_waits_then_polled_briefly_again(clock):
    manifest = await waiting_on(FakeHapi(clock, done_at=10.0, failing=4))._await_hapi(SimpleNamespace(), "poll")
    assert manifest == MANIFEST
    assert clock.waits[:4] == [0.5, 1.0, 2.0, 3.0]
    assert max(clock.waits[4:]) <= 0.05 * clock.now + POLL_MIN_SECONDS


async def test_hapi_unreachable_for_longer_than_the_retries_fails_the_job(clock):
    with pytest.raises(HapiError):
        await waiting_on(FakeHapi(clock, done_at=0.0, failing=TRANSIENT_RETRIES + 1))._await_hapi(
            SimpleNamespace(), "poll")
    assert len(clock.waits) == TRANSIENT_RETRIES and clock.now >= 20


async def test_a_hapi_refusal_fails_the_job_at_once(clock):
    with pytest.raises(HapiError):
        await waiting_on(FakeHapi(clock, done_at=0.0, failing=1, kind=HapiErrorKind.REFUSED))._await_hapi(
            SimpleNamespace(), "poll")
    assert clock.waits == []


async def test_hapis_progress_is_recorded_once_while_it_does_not_change(clock):
    work = waiting_on(FakeHapi(clock, done_at=2.0))
    await work._await_hapi(SimpleNamespace(), "poll")
    assert work.runner.shown == ["FHIR server: Status set to IN_PROGRESS at 2026-12-05 21:00:00"]
