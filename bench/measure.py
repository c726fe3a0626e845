"""Shared by the benchmarks: run a block of GETs at a concurrency, and read percentiles."""
from __future__ import annotations

import asyncio
import statistics
import time

import aiohttp

FHIR_JSON = {"Accept": "application/fhir+json"}


async def run_block(session: aiohttp.ClientSession, base: str, paths: list[str], concurrency: int,
                    headers: dict[str, str] | None = None) -> tuple[float, list[float]]:
    """Elapsed seconds for all `paths` (GET, expecting 200) and each request's latency."""
    queue = list(paths)
    latencies: list[float] = []
    sent = {**FHIR_JSON, **(headers or {})}

    async def worker() -> None:
        while queue:
            path = queue.pop()
            started = time.perf_counter()
            async with session.get(f"{base}/{path}", headers=sent) as resp:
                await resp.read()
                assert resp.status == 200, (path, resp.status)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


def pct(values: list[float], q: int) -> float:
    """The q-th percentile in milliseconds."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000
