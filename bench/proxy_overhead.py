"""Proxy overhead: the same reads and searches straight to HAPI and through the sidecar, interleaved in one run.

Prints, per concurrency level, throughput of each path, their ratio to HAPI and the latency the sidecar adds at
p50 and p99. A third path, bench/bare_relay.py (the least an aiohttp relay can do), runs in the same blocks: its
ratio is the floor any proxy on this stack and machine pays, so the sidecar's distance from it is what the
product's own work costs (targets: operator token >= 0.9 x the floor's throughput at c=16, added p50 <= 2 ms at
c=1). A fourth path is a partner payer's token granted every seeded member: the same requests through the gate
(allow-listed query, disclosure decision, the sidecar's own paging). HAPI comes from HAPI_BASE_URL or
hapi-config/run-hapi, as in the tests.

    .venv/bin/python bench/proxy_overhead.py [--requests 400] [--blocks 6]
"""
from __future__ import annotations

import argparse
import asyncio
import random
import time
import tempfile
import uuid
from pathlib import Path

import aiohttp
from measure import interleaved, pct, run_block

from sidecar.client.smart import ClientKey, request_token
from sidecar.devstack import SidecarProcess, obtain_hapi
from sidecar.store.clients import add_client
from sidecar.store.sqlite import SqliteStore
from sidecar.store.grants import Grant, add_grant


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


REGULAR_CONSENT = "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-hrex-consent.html#regular"


def register_partner(data_dir: Path, patient_ids: list[str]) -> ClientKey:
    """A partner payer's client granted every seeded member: its reads and searches go through the gate."""
    key = ClientKey.generate("ES384", kid="bench-partner")
    store = SqliteStore(data_dir)
    add_client(store, "bench-partner", "Organization/bench-partner", "system/*.read", jwks=key.public_jwks())
    for patient_id in patient_ids:
        add_grant(store, Grant("Organization/bench-partner", patient_id, REGULAR_CONSENT, None, time.time() - 1, None))
    store.close()
    return key


def register_operator(data_dir: Path) -> ClientKey:
    """The payer's own unrestricted client: the proxy path a token check adds least to."""
    key = ClientKey.generate("ES384", kid="bench-operator")
    store = SqliteStore(data_dir)
    add_client(store, "bench-operator", "Organization/bench", "system/*.read", jwks=key.public_jwks(),
               unrestricted=True)
    store.close()
    return key


async def measure(hapi_base: str, sidecar: SidecarProcess, relay: SidecarProcess, key: ClientKey, requests: int,
                  blocks: int) -> None:
    rng = random.Random(42)
    system = f"urn:bench:{uuid.uuid4().hex}"
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:
        token = await request_token(session, f"{sidecar.public_url}/auth/token", "bench-operator", key,
                                    "system/*.read")
        auth = {"Authorization": f"Bearer {token['access_token']}"}
        ids = await seed(session, hapi_base, system, 50)
        partner_key = register_partner(sidecar.data_dir, ids)
        await asyncio.sleep(1)  # the sidecar notices new clients and grants within state_refresh_seconds
        partner_token = await request_token(session, f"{sidecar.public_url}/auth/token", "bench-partner",
                                            partner_key, "system/*.read")
        partner = {"Authorization": f"Bearer {partner_token['access_token']}"}
        series = [("direct", hapi_base, None), ("sidecar", sidecar.fhir_base, auth), ("relay", relay.fhir_base, None),
                  ("partner", sidecar.fhir_base, partner)]
        for _, base, headers in series:
            await run_block(session, base, workload(ids, system, 200, rng), 8, headers)
        print(f"{'conc':>4} {'direct req/s':>12} {'sidecar req/s':>13} {'ratio':>6} "
              f"{'p50 direct':>10} {'p50 added':>10} {'p99 direct':>10} {'p99 added':>10} "
              f"{'floor ratio':>11} {'floor p50 added':>15} {'sidecar/floor':>13} "
              f"{'partner req/s':>13} {'partner/floor':>13} {'partner p50 added':>17}")
        for concurrency in (1, 16):
            totals = await interleaved(session, series, lambda: workload(ids, system, requests, rng), concurrency,
                                       blocks)
            n = requests * blocks
            direct_rps, side_rps, relay_rps, partner_rps = (n / totals[name][0]
                                                            for name in ("direct", "sidecar", "relay", "partner"))
            d, s, r, p = (totals[name][1] for name in ("direct", "sidecar", "relay", "partner"))
            print(f"{concurrency:>4} {direct_rps:>12.1f} {side_rps:>13.1f} {side_rps / direct_rps:>6.3f} "
                  f"{pct(d, 50):>8.2f}ms {pct(s, 50) - pct(d, 50):>8.2f}ms "
                  f"{pct(d, 99):>8.2f}ms {pct(s, 99) - pct(d, 99):>8.2f}ms "
                  f"{relay_rps / direct_rps:>11.3f} {pct(r, 50) - pct(d, 50):>13.2f}ms {side_rps / relay_rps:>13.3f} "
                  f"{partner_rps:>13.1f} {partner_rps / relay_rps:>13.3f} {pct(p, 50) - pct(d, 50):>15.2f}ms")
        print("targets: sidecar (operator token) >= 0.9 x the floor's throughput at c=16, added p50 <= 2 ms at c=1 "
              "(floor: bench/bare_relay.py); the partner path (through the gate) is reported beside it")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400, help="requests per block")
    parser.add_argument("--blocks", type=int, default=6, help="interleaved blocks per concurrency level")
    args = parser.parse_args()
    hapi = obtain_hapi()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-sidecar-"))
    key = register_operator(data_dir)
    sidecar = SidecarProcess(hapi.base_url, data_dir).start()
    relay = SidecarProcess(hapi.base_url, Path(tempfile.mkdtemp(prefix="bench-relay-")),
                           argv=[str(Path(__file__).with_name("bare_relay.py"))]).start()
    try:
        print(f"HAPI: {hapi.base_url} ({hapi.how}); sidecar: {sidecar.fhir_base} (operator token); "
              f"floor relay: {relay.fhir_base}")
        asyncio.run(measure(hapi.base_url, sidecar, relay, key, args.requests, args.blocks))
    finally:
        relay.stop()
        sidecar.stop()
        hapi.stop()


if __name__ == "__main__":
    main()
