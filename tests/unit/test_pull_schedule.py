"""`pull --schedule`: new opt-ins are requested at the next daily check, on their own; concurrent coverage is
pulled again every pull_interval_days."""
from __future__ import annotations

from dataclasses import replace

import pytest

from sidecar.client.pull import PullOptions
from sidecar.client.schedule import run_schedule
from sidecar.config import Settings
from sidecar.store import exchanges as ex
from sidecar.store.sqlite import SqliteStore
from sidecar.store.optins import record_optin, withdraw
from sidecar.store.partners import Partner

PARTNER = Partner("payer-a", "https://a.example/fhir", "us", "/keys/a.jwks", (), "system/*.read")


class Stop(Exception):
    pass


async def scheduled(store: SqliteStore, days: int, on_pull=None) -> list[PullOptions]:
    """Run the schedule for `days` daily checks (time advanced by the fake sleep); the pulls it asked for."""
    settings = replace(Settings(), pull_optin_check_hours=24.0, pull_interval_days=90.0)
    now = [0.0]
    pulls: list[PullOptions] = []

    async def pull(options: PullOptions) -> bool:
        pulls.append(options)
        if on_pull:
            on_pull(options)
        return True

    async def sleep(seconds: float) -> None:
        now[0] += seconds
        if now[0] >= days * 86400:
            raise Stop

    with pytest.raises(Stop):
        await run_schedule(settings, store, PARTNER, pull, clock=lambda: now[0], sleep=sleep)
    return pulls


@pytest.fixture
def store(tmp_path):
    opened = SqliteStore(tmp_path)
    yield opened
    opened.close()


async def test_a_new_opt_in_is_requested_at_the_next_check_and_not_again(store):
    record_optin(store, "m1", "payer-a", None, "regular", None, None, None)

    def sent(options: PullOptions) -> None:
        for member in options.members or ():
            ex.record_outcome(store, "payer-a", member, ex.MATCHED)

    pulls = await scheduled(store, days=3, on_pull=sent)
    assert [p.members for p in pulls if p.members] == [["m1"]]


async def test_a_withdrawn_opt_in_or_another_partners_is_not_requested(store):
    withdrawn = record_optin(store, "m1", "payer-a", None, "regular", None, None, None)
    withdraw(store, "m1", withdrawn.id)
    record_optin(store, "m2", "payer-b", None, "regular", None, None, None)
    pulls = await scheduled(store, days=1)
    assert [p.members for p in pulls if p.members] == []


async def test_concurrent_coverage_is_pulled_at_start_and_every_interval(store):
    pulls = await scheduled(store, days=181)
    assert sum(1 for p in pulls if p.concurrent_only and p.since_last) == 3
