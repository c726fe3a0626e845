"""A 1,000-member bulk pull between two payers on this machine, end to end: members per minute and the share of
time in each phase.

Payer A: a HAPI (HAPI_BASE_URL, else a container or hapi-config's build) and its sidecar. Payer B: a second HAPI
(HAPI_PEER_BASE_URL, else the same way) and B's sidecar data directory. `--members` people, each at A with a
Patient, a Coverage and `--per-member` recent Observations, and at B with a Patient (same demographics), our
Coverage, the prior Coverage at A and a Consent naming A as source and B as recipient. Then one
`pdex-sidecar pull` (run in-process, as the CLI runs it): members → `$bulk-member-match` at A in batches of
`pull_batch_size` → `$davinci-data-export` of the matched Group → downloads → ingest into B's HAPI.

Printed: members matched per minute of the whole pull, seconds and share of each phase, and for a baseline
measured in the same run, the seconds it took to write the same members' data into A's HAPI straight
(transactions of about 1,000 entries): the pull's time over that is how much dearer a pulled record is than a
loaded one.

    .venv/bin/python bench/pull.py [--members 1000] [--per-member 5]
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from datetime import datetime, timezone

import aiohttp

from payers import PER_TRANSACTION, load_b, new_npi, person, post, pull_from_a, start_payer_a, transact
from sidecar.client.progress import Progress
from sidecar.devstack import obtain_hapi


async def load_a(session: aiohttp.ClientSession, base: str, run: str, members: int, per_member: int) -> None:
    today = datetime.now(timezone.utc).date().isoformat()
    entries: list[dict] = []
    chunk = max(1, PER_TRANSACTION // (per_member + 2))
    for n in range(members):
        urn = f"urn:uuid:{uuid.uuid4()}"
        entries += [post({"resourceType": "Patient", **person(run, n)}, urn),
                    post({"resourceType": "Coverage", "status": "active", "subscriberId": f"A{run}{n}",
                          "beneficiary": {"reference": urn}, "payor": [{"display": "Payer A"}]})]
        entries += [post({"resourceType": "Observation", "status": "final", "code": {"text": f"reading {k}"},
                          "subject": {"reference": urn}, "effectiveDateTime": today,
                          "valueQuantity": {"value": 60 + k, "unit": "kg"}}) for k in range(per_member)]
        if (n + 1) % chunk == 0 or n == members - 1:
            await transact(session, base, entries)
            entries = []


async def measure(hapi_a: str, hapi_b: str, members: int, per_member: int) -> None:
    run = uuid.uuid4().hex[:6]
    npi_a = new_npi()
    sidecar, key = start_payer_a(hapi_a, npi_a)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600)) as session:
            began = time.perf_counter()
            await load_a(session, hapi_a, run, members, per_member)
            baseline = time.perf_counter() - began
            await load_b(session, hapi_b, run, list(range(members)), npi_a)
        print(f"loaded {members} members x ({per_member} Observations + Patient + Coverage) into A's HAPI in "
              f"{baseline:.1f}s; B's members, coverages and consents loaded")
        await asyncio.sleep(1.0)
        progress = Progress(stream=sys.stderr, interval=10.0)
        pulled = await pull_from_a(sidecar, key, hapi_b, npi_a, progress)
    finally:
        sidecar.stop()
    elapsed = pulled.elapsed
    print(f"\npull: {elapsed:.1f}s for {progress.members} members ({pulled.states}); "
          f"problems: {pulled.report.problems or 'none'}")
    print(f"resources ingested: {progress.ingested} ({progress.invalid} invalid); files: {progress.files}")
    print(f"members per minute: {progress.matched / elapsed * 60:.0f}")
    phases = {k: v for k, v in progress.phase_seconds.items() if k not in ("starting", "done")}
    for phase, seconds in phases.items():
        print(f"  {phase:8s} {seconds:7.1f}s  {seconds / elapsed:6.1%}")
    print(f"pull time / straight load of the same data into A's HAPI: {elapsed / baseline:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--per-member", type=int, default=5)
    args = parser.parse_args()
    hapi_a = obtain_hapi()
    hapi_b = obtain_hapi("HAPI_PEER_BASE_URL")
    try:
        print(f"HAPI A: {hapi_a.base_url} ({hapi_a.how}); HAPI B: {hapi_b.base_url} ({hapi_b.how})")
        asyncio.run(measure(hapi_a.base_url, hapi_b.base_url, args.members, args.per_member))
    finally:
        hapi_b.stop()
        hapi_a.stop()


if __name__ == "__main__":
    main()
