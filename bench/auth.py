"""Authorization cost: tokens per second at the token endpoint, and what checking a token adds to a proxied read.

1. Token endpoint: RS384 and ES384 clients, assertions signed before the clock starts (so the client's signing
   is not counted), posted at concurrency 4. Prints tokens/s and p50 latency per algorithm.
2. Proxied reads of one Patient, interleaved in one run, at concurrency 1 and 16:
   - open proxy: the same proxy with no authorization layer (bench/open_proxy.py), the baseline;
   - operator token: the payer's own unrestricted client (token checked, answer streamed);
   - partner token: a partner payer's client granted that member (token checked, answer checked and rewritten).
   Prints each path's reads/s and its ratio to the open proxy, and the p50 latency it adds.

    .venv/bin/python bench/auth.py [--tokens 400] [--requests 400] [--blocks 6]
"""
from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp
from measure import interleaved, pct, run_block

from sidecar.client.smart import ClientKey, request_token, token_form
from sidecar.devstack import SidecarProcess, obtain_hapi
from sidecar.store.clients import add_client
from sidecar.store.sqlite import SqliteStore
from sidecar.store.grants import Grant, add_grant

CLIENTS = {"operator": ("ES384", True), "partner": ("ES384", False), "rs384": ("RS384", True),
           "es384": ("ES384", True)}


def register(data_dir: Path) -> dict[str, ClientKey]:
    store = SqliteStore(data_dir)
    keys = {}
    for name, (alg, unrestricted) in CLIENTS.items():
        keys[name] = ClientKey.generate(alg)
        add_client(store, f"bench-{name}", f"Organization/bench-{name}", "system/*.read",
                   jwks=keys[name].public_jwks(), unrestricted=unrestricted)
    store.close()
    return keys


def grant_member(data_dir: Path, patient_id: str) -> None:
    store = SqliteStore(data_dir)
    add_grant(store, Grant("Organization/bench-partner", patient_id, "#regular", None, time.time() - 1, None))
    store.close()


async def token_throughput(session: aiohttp.ClientSession, token_url: str, name: str, key: ClientKey,
                           count: int) -> tuple[float, float]:
    forms = [token_form(f"bench-{name}", token_url, key, "system/*.read") for _ in range(count)]
    latencies: list[float] = []

    async def worker() -> None:
        while forms:
            form = forms.pop()
            started = time.perf_counter()
            async with session.post(token_url, data=form) as resp:
                await resp.read()
                assert resp.status == 200, await resp.text()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(4)))
    return count / (time.perf_counter() - started), pct(latencies, 50)


async def measure(hapi_base: str, open_proxy: SidecarProcess, sidecar: SidecarProcess, keys: dict[str, ClientKey],
                  tokens: int, requests: int, blocks: int) -> None:
    token_url = f"{sidecar.public_url}/auth/token"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        async with session.post(hapi_base + "/Patient", json={"resourceType": "Patient", "name": [{"family": "B"}]},
                                headers={"Content-Type": "application/fhir+json"}) as resp:
            patient_id = (await resp.json(content_type=None))["id"]
        grant_member(sidecar.data_dir, patient_id)
        await asyncio.sleep(1)

        print(f"{'token endpoint':<16} {'tokens/s':>9} {'p50':>9}")
        for name in ("rs384", "es384"):
            await token_throughput(session, token_url, name, keys[name], 40)
            rate, p50 = await token_throughput(session, token_url, name, keys[name], tokens)
            print(f"{CLIENTS[name][0]:<16} {rate:>9.1f} {p50:>7.2f}ms")

        auth = {}
        for name in ("operator", "partner"):
            body = await request_token(session, token_url, f"bench-{name}", keys[name], "system/*.read")
            auth[name] = {"Authorization": f"Bearer {body['access_token']}"}
        paths = [f"Patient/{patient_id}"] * requests
        series = [("open proxy", open_proxy.fhir_base, None), ("operator token", sidecar.fhir_base, auth["operator"]),
                  ("partner token", sidecar.fhir_base, auth["partner"])]
        for _, base, headers in series:
            await run_block(session, base, paths[:200], 8, headers)

        print(f"\n{'proxied read':<16} {'conc':>4} {'reads/s':>9} {'ratio':>6} {'p50':>8} {'p50 added':>10}")
        for concurrency in (1, 16):
            totals = await interleaved(session, series, lambda: paths, concurrency, blocks)
            n = requests * blocks
            base_rate, base_p50 = n / totals["open proxy"][0], pct(totals["open proxy"][1], 50)
            for name, _, _ in series:
                rate, p50 = n / totals[name][0], pct(totals[name][1], 50)
                print(f"{name:<16} {concurrency:>4} {rate:>9.1f} {rate / base_rate:>6.3f} {p50:>6.2f}ms "
                      f"{p50 - base_p50:>8.2f}ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=400, help="token requests per algorithm")
    parser.add_argument("--requests", type=int, default=400, help="reads per block")
    parser.add_argument("--blocks", type=int, default=6, help="interleaved blocks per concurrency level")
    args = parser.parse_args()
    hapi = obtain_hapi()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-auth-"))
    keys = register(data_dir)
    sidecar = SidecarProcess(hapi.base_url, data_dir).start()
    open_proxy = SidecarProcess(hapi.base_url, Path(tempfile.mkdtemp(prefix="bench-open-")),
                                argv=[str(Path(__file__).with_name("open_proxy.py"))]).start()
    try:
        print(f"HAPI: {hapi.base_url} ({hapi.how}); sidecar: {sidecar.fhir_base}; open proxy: {open_proxy.fhir_base}")
        asyncio.run(measure(hapi.base_url, open_proxy, sidecar, keys, args.tokens, args.requests, args.blocks))
    finally:
        open_proxy.stop()
        sidecar.stop()
        hapi.stop()


if __name__ == "__main__":
    main()
