"""Shared by the benchmarks: run a block of GETs at a concurrency, and read percentiles."""
from __future__ import annotations

import asyncio
import statistics
import time
from typing import Callable

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


Series = tuple[str, str, "dict[str, str] | None"]  # name, FHIR base, headers


async def interleaved(session: aiohttp.ClientSession, series: list[Series], paths: Callable[[], list[str]],
                      concurrency: int, blocks: int) -> dict[str, tuple[float, list[float]]]:
    """Each series runs the same block of paths in turn, the order reversed every other block so that neither
    side always runs on a warmer server; per series, the summed elapsed seconds and all latencies."""
    totals: dict[str, tuple[float, list[float]]] = {name: (0.0, []) for name, _, _ in series}
    for block in range(blocks):
        block_paths = paths()
        for name, base, headers in (series if block % 2 == 0 else list(reversed(series))):
            elapsed, latencies = await run_block(session, base, block_paths, concurrency, headers)
            totals[name] = (totals[name][0] + elapsed, totals[name][1] + latencies)
    return totals


def pct(values: list[float], q: int) -> float:
    """The q-th percentile in milliseconds."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000
