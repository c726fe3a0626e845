"""Gauges read from the store when Prometheus scrapes: jobs by kind, state and age, and pulls' progress by partner.

The store is read on the store's own thread before the registry is rendered (`refresh`), never from `collect`,
which runs on the event loop. The store is the service's, not the replica's: with replicas sharing one store each
reports the same values, so aggregate these with max(), not sum().
"""
from __future__ import annotations

import time
from typing import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sidecar.metrics.registry import PREFIX
from sidecar.store.db import Store
from sidecar.store.exchanges import ExchangeTally, exchange_tallies
from sidecar.store.jobs import LIVE_STATES, JobTally, job_tallies


def _read(store: Store) -> tuple[list[JobTally], list[ExchangeTally]]:
    return job_tallies(store), exchange_tallies(store)


class StoreGauges(Collector):
    def __init__(self, store: Store) -> None:
        self.store = store
        self.jobs: list[JobTally] = []
        self.exchanges: list[ExchangeTally] = []
        self.read_at = time.time()

    async def refresh(self) -> None:
        self.jobs, self.exchanges = await self.store.run(_read, self.store)
        self.read_at = time.time()

    def describe(self) -> list:
        return []  # the families' labels depend on what the store holds: nothing to check at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily(f"{PREFIX}_jobs", "Asynchronous jobs, by kind and state", labels=["kind", "state"])
        ages = GaugeMetricFamily(f"{PREFIX}_job_oldest_age_seconds",
                                 "Age of the oldest job still accepted or running, by kind and state",
                                 labels=["kind", "state"])
        for tally in self.jobs:
            jobs.add_metric([tally.kind, tally.state], tally.count)
            if tally.state in LIVE_STATES:
                ages.add_metric([tally.kind, tally.state], max(0.0, self.read_at - tally.oldest_created_at))
        members = GaugeMetricFamily(f"{PREFIX}_pull_members",
                                    "Members in each exchange state with each partner pulled from",
                                    labels=["partner", "state"])
        ingested = GaugeMetricFamily(f"{PREFIX}_pull_resources_ingested",
                                     "Resources ingested from each partner pulled from", labels=["partner"])
        per_partner: dict[str, int] = {}
        for tally in self.exchanges:
            members.add_metric([tally.partner, tally.state], tally.members)
            per_partner[tally.partner] = per_partner.get(tally.partner, 0) + (tally.ingested or 0)
        for partner, count in sorted(per_partner.items()):
            ingested.add_metric([partner], count)
        yield from (jobs, ages, members, ingested)
