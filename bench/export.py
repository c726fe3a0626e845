"""Bulk export through the sidecar against straight from HAPI, in one run: time ratio and the sidecar's memory.

Loads `--members` Patients with `--per-member` Observations each into HAPI, puts them in one Group, and gives a
partner client a grant for every member and ownership of the Group (written to the sidecar's store, as a bulk
match would). Then, after `--warmup` uncounted rounds of each (HAPI's first export after a large load can take
ten times its usual time), alternating so neither side always runs on a warmer server, `--rounds` times each:
- HAPI: `Group/{id}/$export` kick-off, polling, and every output file downloaded;
- sidecar: `Group/{id}/$davinci-data-export` kick-off, polling, and every output file downloaded, with the
  disclosure filter on every resource in between.
Both poll every 0.5 s. Prints each side's median seconds, the ratio sidecar/HAPI (target <= 1.1) and the
sidecar's peak resident memory while exporting (target < 150 MB whatever the export size), sampled every 50 ms.

The sidecar runs from `.venv-product`, the package installed without extras as a payer deploys it (the Dockerfile
does the same): this benchmark's own environment holds pandas and pyarrow (recordlinkage, smart-fetch), which a
deployed sidecar has not, so its memory is measured without them.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/export.py [--members 1000] [--per-member 40] [--rounds 2]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from typing import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import psutil

from sidecar.client.smart import ClientKey, request_token
from sidecar.devstack import REPO_ROOT, SidecarProcess, obtain_hapi
from sidecar.disclosure.rules import REGULAR
from sidecar.store.clients import add_client
from sidecar.store.sqlite import SqliteStore
from sidecar.store.grants import Grant, add_grant
from sidecar.store.jobs import record_groups

FHIR_JSON = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
ASYNC = {"Prefer": "respond-async"}
SCOPES = "system/*.read"
PER_TRANSACTION = 1000


async def load(session: aiohttp.ClientSession, base: str, members: int, per_member: int) -> tuple[str, list[str]]:
    """The Group id and its Patient ids."""
    today = datetime.now(timezone.utc).date().isoformat()
    patient_ids: list[str] = []
    chunk = max(1, PER_TRANSACTION // (per_member + 1))
    for start in range(0, members, chunk):
        entries = []
        for n in range(start, min(members, start + chunk)):
            urn = f"urn:uuid:{uuid.uuid4()}"
            entries.append({"fullUrl": urn, "resource": {"resourceType": "Patient", "name": [{"family": f"Export{n}"}]},
                            "request": {"method": "POST", "url": "Patient"}})
            entries += [{"resource": {"resourceType": "Observation", "status": "final",
                                      "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7",
                                                           "display": "Body weight"}]},
                                      "valueQuantity": {"value": 70 + k, "unit": "kg"},
                                      "subject": {"reference": urn}, "effectiveDateTime": today},
                         "request": {"method": "POST", "url": "Observation"}} for k in range(per_member)]
        async with session.post(base, json={"resourceType": "Bundle", "type": "transaction", "entry": entries},
                                headers=FHIR_JSON, timeout=aiohttp.ClientTimeout(total=900)) as resp:
            answer = await resp.json(content_type=None)
            assert resp.status == 200, str(answer)[:500]
        patient_ids += [e["response"]["location"].split("/")[1] for e in answer["entry"]
                        if e["response"]["location"].startswith("Patient/")]
    group = {"resourceType": "Group", "type": "person", "actual": True,
             "member": [{"entity": {"reference": f"Patient/{pid}"}} for pid in patient_ids]}
    async with session.post(f"{base}/Group", json=group, headers=FHIR_JSON) as resp:
        assert resp.status == 201, await resp.text()
        return (await resp.json(content_type=None))["id"], patient_ids


def partner(data_dir: Path, group_id: str, patient_ids: list[str]) -> ClientKey:
    key = ClientKey.generate("ES384")
    store = SqliteStore(data_dir)
    try:
        add_client(store, "bench-partner", "Organization/bench-partner", SCOPES, jwks=key.public_jwks())
        now = time.time()
        for pid in patient_ids:
            add_grant(store, Grant("Organization/bench-partner", pid, REGULAR, None, now - 60, now + 86400))
        record_groups(store, "Organization/bench-partner", "bench", {"match": group_id})
    finally:
        store.close()
    return key


Headers = Callable[[], Awaitable[dict[str, str]]]
"""Each request's headers, asked for anew: a large export outlives one access token."""


async def export(session: aiohttp.ClientSession, kickoff: str, headers: Headers, method: str) -> int:
    """Kick-off, poll every 0.5 s, download every output file; the number of resources received."""
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "_type", "valueString": "Patient,Observation"}]} if method == "POST" else None
    async with session.request(method, kickoff, json=body, headers={**await headers(), **ASYNC}) as resp:
        assert resp.status == 202, await resp.text()
        status_url = resp.headers["Content-Location"]
    while True:
        await asyncio.sleep(0.5)
        async with session.get(status_url, headers={**await headers(), "Accept": "application/json"}) as resp:
            if resp.status == 200:
                manifest = await resp.json(content_type=None)
                break
            assert resp.status == 202, (resp.status, await resp.text())
    lines = 0
    for item in manifest["output"]:
        async with session.get(item["url"], headers={**await headers(), "Accept": "application/fhir+ndjson"}) as resp:
            assert resp.status == 200, await resp.text()
            async for chunk in resp.content.iter_chunked(1 << 16):
                lines += chunk.count(b"\n")
    return lines


TOKEN_RENEWAL_SECONDS = 240  # the sidecar's tokens live 300 s


class PeakMemory:
    """A process's resident memory, sampled every `interval` seconds in a thread: the peak and every sample."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.samples: list[tuple[float, int]] = []  # (time.monotonic(), bytes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            rss = self.process.memory_info().rss
            self.peak = max(self.peak, rss)
            self.samples.append((time.monotonic(), rss))
            time.sleep(self.interval)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def product_python() -> str:
    """The interpreter of `.venv-product` (the package without extras), created or updated first."""
    venv = REPO_ROOT / ".venv-product"
    subprocess.run([str(REPO_ROOT / "scripts" / "install-python")], env={**os.environ, "VENV": str(venv)},
                   check=True)
    return str(venv / "bin" / "python")


async def measure(hapi_base: str, members: int, per_member: int, rounds: int, warmup: int, python: str) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600)) as session:
        started = time.perf_counter()
        group_id, patient_ids = await load(session, hapi_base, members, per_member)
        print(f"loaded {members} members x {per_member} Observations in {time.perf_counter() - started:.1f}s; "
              f"Group/{group_id}")
        sidecar = SidecarProcess(hapi_base, Path(tempfile.mkdtemp(prefix="bench-export-")), python=python).start()
        try:
            idle = psutil.Process(sidecar.process.pid).memory_info().rss
            key = partner(sidecar.data_dir, group_id, patient_ids)
            await asyncio.sleep(1.0)
            token: dict[str, object] = {"at": 0.0, "value": ""}

            async def bearer() -> dict[str, str]:
                if time.monotonic() - float(token["at"]) > TOKEN_RENEWAL_SECONDS:
                    token["value"] = (await request_token(session, f"{sidecar.public_url}/auth/token",
                                                          "bench-partner", key, SCOPES))["access_token"]
                    token["at"] = time.monotonic()
                return {"Authorization": f"Bearer {token['value']}"}

            async def no_cache() -> dict[str, str]:
                return {"Cache-Control": "no-cache"}
            times: dict[str, list[float]] = {"hapi": [], "sidecar": []}
            counts: dict[str, int] = {}
            peak = 0
            for round_ in range(-warmup, rounds):
                for side in (("hapi", "sidecar") if round_ % 2 == 0 else ("sidecar", "hapi")):
                    began = time.perf_counter()
                    if side == "hapi":
                        counts[side] = await export(session, f"{hapi_base}/Group/{group_id}/$export?_type=Patient,"
                                                    "Observation", no_cache, "GET")
                    else:
                        with PeakMemory(sidecar.process.pid) as memory:
                            counts[side] = await export(session, f"{sidecar.fhir_base}/Group/{group_id}/"
                                                        "$davinci-data-export", bearer, "POST")
                        peak = max(peak, memory.peak)
                    took = time.perf_counter() - began
                    if round_ >= 0:
                        times[side].append(took)
                    print(f"  {'round ' + str(round_ + 1) if round_ >= 0 else 'warm-up'} {side}: {took:.1f}s, "
                          f"{counts[side]} resources")
        finally:
            sidecar.stop()
    hapi_s, sidecar_s = statistics.median(times["hapi"]), statistics.median(times["sidecar"])
    print(f"\nstraight from HAPI: {hapi_s:.1f}s; through the sidecar: {sidecar_s:.1f}s "
          f"({counts['sidecar']} of {counts['hapi']} resources)")
    print(f"time ratio sidecar/HAPI: {sidecar_s / hapi_s:.2f} (target <= 1.1)")
    print(f"sidecar peak resident memory while exporting: {peak / 2**20:.1f} MB (target < 150 MB); "
          f"idle after start: {idle / 2**20:.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--per-member", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1, help="uncounted rounds of each side first")
    args = parser.parse_args()
    python = product_python()
    hapi = obtain_hapi()
    try:
        print(f"HAPI: {hapi.base_url} ({hapi.how})")
        asyncio.run(measure(hapi.base_url, args.members, args.per_member, args.rounds, args.warmup, python))
    finally:
        hapi.stop()


if __name__ == "__main__":
    main()
