"""Proxy overhead: the same reads and searches straight to HAPI and through the sidecar, interleaved in one run.

Prints, per concurrency level, throughput of each path, their ratio (target >= 0.85) and the latency the sidecar
adds at p50 (target <= 2 ms) and p99. HAPI comes from HAPI_BASE_URL or hapi-config/run-hapi, as in the tests.

    .venv/bin/python bench/proxy_overhead.py [--requests 400] [--blocks 6]
"""
from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

from sidecar.devstack import SidecarProcess, obtain_hapi

HEADERS = {"Accept": "application/fhir+json"}


async def seed(session: aiohttp.ClientSession, base: str, system: str, count: int) -> list[str]:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "identifier": [{"system": system, "value": str(n)}],
                      "name": [{"family": f"Bench{n}", "given": ["Proxy"]}], "birthDate": "1970-01-01"},
         "request": {"method": "POST", "url": "Patient"}} for n in range(count)]}
    async with session.post(base, json=bundle, headers={"Content-Type": "application/fhir+json"}) as resp:
        assert resp.status == 200, await resp.text()
        result = await resp.json(content_type=None)
    return [e["response"]["location"].split("/")[1] for e in result["entry"]]


def workload(ids: list[str], system: str, n: int, rng: random.Random) -> list[str]:
    kinds = [lambda: f"Patient/{rng.choice(ids)}",
             lambda: f"Patient?identifier={system}|{rng.randrange(len(ids))}",
             lambda: f"Patient?identifier={system}|&_count=10"]
    return [rng.choice(kinds)() for _ in range(n)]


async def run_block(session: aiohttp.ClientSession, base: str, paths: list[str], concurrency: int
                    ) -> tuple[float, list[float]]:
    queue = list(paths)
    latencies: list[float] = []

    async def worker() -> None:
        while queue:
            path = queue.pop()
            started = time.perf_counter()
            async with session.get(f"{base}/{path}", headers=HEADERS) as resp:
                await resp.read()
                assert resp.status == 200, (path, resp.status)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


async def measure(hapi_base: str, sidecar_base: str, requests: int, blocks: int) -> None:
    rng = random.Random(42)
    system = f"urn:bench:{uuid.uuid4().hex}"
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:
        ids = await seed(session, hapi_base, system, 50)
        await run_block(session, hapi_base, workload(ids, system, 200, rng), 8)
        await run_block(session, sidecar_base, workload(ids, system, 200, rng), 8)
        print(f"{'conc':>4} {'direct req/s':>12} {'sidecar req/s':>13} {'ratio':>6} "
              f"{'p50 direct':>10} {'p50 added':>10} {'p99 direct':>10} {'p99 added':>10}")
        for concurrency in (1, 16):
            totals = {"direct": [0.0, []], "sidecar": [0.0, []]}
            for block in range(blocks):
                order = [("direct", hapi_base), ("sidecar", sidecar_base)]
                if block % 2:
                    order.reverse()
                paths = workload(ids, system, requests, rng)
                for name, base in order:
                    elapsed, lat = await run_block(session, base, paths, concurrency)
                    totals[name][0] += elapsed
                    totals[name][1] += lat
            n = requests * blocks
            direct_rps, side_rps = n / totals["direct"][0], n / totals["sidecar"][0]
            d, s = totals["direct"][1], totals["sidecar"][1]
            print(f"{concurrency:>4} {direct_rps:>12.1f} {side_rps:>13.1f} {side_rps / direct_rps:>6.3f} "
                  f"{pct(d, 50):>8.2f}ms {pct(s, 50) - pct(d, 50):>8.2f}ms "
                  f"{pct(d, 99):>8.2f}ms {pct(s, 99) - pct(d, 99):>8.2f}ms")
        print("targets: throughput ratio >= 0.85, added p50 <= 2 ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400, help="requests per block")
    parser.add_argument("--blocks", type=int, default=6, help="interleaved blocks per concurrency level")
    args = parser.parse_args()
    hapi = obtain_hapi()
    sidecar = SidecarProcess(hapi.base_url, Path(tempfile.mkdtemp(prefix="bench-sidecar-"))).start()
    try:
        print(f"HAPI: {hapi.base_url} ({hapi.how}); sidecar: {sidecar.fhir_base}")
        asyncio.run(measure(hapi.base_url, sidecar.fhir_base, args.requests, args.blocks))
    finally:
        sidecar.stop()
        hapi.stop()


if __name__ == "__main__":
    main()
