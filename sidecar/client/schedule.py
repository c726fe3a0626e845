"""`pdex-sidecar pull --partner P --schedule`: the rule's clocks kept without an operator.

Every `pull_optin_check_hours` (a day by default), members who opted in for the partner on the member page and were
never sent are requested: well within the week CMS-0057-F allows after opt-in or the start of coverage. Every
`pull_interval_days` (quarterly), members whose coverage there is still in force get a run-off pull.
"""
from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

from sidecar.client.pull import PullOptions
from sidecar.config import Settings
from sidecar.store.db import Store
from sidecar.store.optins import pending_members
from sidecar.store.partners import Partner

Pulling = Callable[[PullOptions], Awaitable[bool]]


async def run_schedule(settings: Settings, store: Store, partner: Partner, pull: Pulling,
                       clock: Callable[[], float] = time.time,
                       sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
    last_concurrent: float | None = None
    while True:
        pending = await store.run(pending_members, store, partner.name)
        if pending:
            await pull(PullOptions(members=pending))
        if last_concurrent is None or clock() - last_concurrent >= settings.pull_interval_days * 86400:
            await pull(PullOptions(since_last=True, concurrent_only=True))
            last_concurrent = clock()
        await sleep(settings.pull_optin_check_hours * 3600)
