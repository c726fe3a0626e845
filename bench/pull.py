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
import json
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import aiohttp

from sidecar.client.progress import Progress
from sidecar.client.pull import Pull, PullOptions
from sidecar.client.smart import ClientKey
from sidecar.config import Settings
from sidecar.devstack import SidecarProcess, obtain_hapi
from sidecar.store.clients import add_client
from sidecar.store.sqlite import SqliteStore
from sidecar.store.exchanges import exchanges
from sidecar.store.partners import DEFAULT_SCOPES, add_partner

FHIR_JSON = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
NPI = "http://hl7.org/fhir/sid/us-npi"
NPI_B = "1098765432"
HREX = "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-hrex-consent.html#regular"
PER_TRANSACTION = 1000


def person(run: str, n: int) -> dict:
    return {"name": [{"family": f"Pull{run}x{n}", "given": [f"Given{n % 97}"]}],
            "gender": "female" if n % 2 else "male",
            "birthDate": (date(1940, 1, 1) + timedelta(days=(n * 37) % 25000)).isoformat()}


def consent(member: str, npi_a: str) -> dict:
    today = datetime.now(timezone.utc).date()
    return {"resourceType": "Consent", "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                  "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IDSCL"}]}],
            "patient": {"reference": member}, "performer": [{"reference": member}], "policy": [{"uri": HREX}],
            "provision": {"type": "permit", "period": {"start": (today - timedelta(days=5)).isoformat(),
                                                       "end": (today + timedelta(days=365)).isoformat()},
                          "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                                                    "provenance-participant-type",
                                                          "code": "performer"}]},
                                     "reference": {"identifier": {"system": NPI, "value": npi_a}}},
                                    {"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                                                    "v3-ParticipationType", "code": "IRCP"}]},
                                     "reference": {"identifier": {"system": NPI, "value": NPI_B}}}]}}


async def transact(session: aiohttp.ClientSession, base: str, entries: list[dict]) -> None:
    for start in range(0, len(entries), PER_TRANSACTION):
        body = {"resourceType": "Bundle", "type": "transaction", "entry": entries[start:start + PER_TRANSACTION]}
        async with session.post(base, data=json.dumps(body), headers=FHIR_JSON) as resp:
            assert resp.status == 200, (await resp.text())[:500]


def post(resource: dict, urn: str | None = None) -> dict:
    return {**({"fullUrl": urn} if urn else {}), "resource": resource,
            "request": {"method": "POST", "url": resource["resourceType"]}}


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


async def load_b(session: aiohttp.ClientSession, base: str, run: str, members: int, npi_a: str) -> None:
    entries: list[dict] = []
    for n in range(members):
        urn = f"urn:uuid:{uuid.uuid4()}"
        entries += [post({"resourceType": "Patient", **person(run, n)}, urn),
                    post({"resourceType": "Coverage", "status": "active", "subscriberId": f"B{run}{n}",
                          "beneficiary": {"reference": urn}, "payor": [{"display": "Payer B"}]}),
                    post({"resourceType": "Coverage", "status": "cancelled", "subscriberId": f"A{run}{n}",
                          "beneficiary": {"reference": urn},
                          "payor": [{"identifier": {"system": NPI, "value": npi_a}, "display": "Payer A"}]}),
                    post(consent(urn, npi_a))]
    await transact(session, base, entries)


async def measure(hapi_a: str, hapi_b: str, members: int, per_member: int) -> None:
    run = uuid.uuid4().hex[:6]
    # A's NPI is new in every run, so that B's consents from an earlier run on the same servers are not pulled.
    npi_a = str(uuid.uuid4().int)[:10]
    sidecar = SidecarProcess(hapi_a, Path(tempfile.mkdtemp(prefix="bench-pull-a-")),
                             extra_env={"SIDECAR_PAYER_IDENTIFIERS": f"{NPI}|{npi_a}"}).start()
    try:
        key = ClientKey.generate("ES384")
        store_a = SqliteStore(sidecar.data_dir)
        add_client(store_a, "payer-b", f"{NPI}|{NPI_B}", DEFAULT_SCOPES, jwks=key.public_jwks())
        store_a.close()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600)) as session:
            began = time.perf_counter()
            await load_a(session, hapi_a, run, members, per_member)
            baseline = time.perf_counter() - began
            await load_b(session, hapi_b, run, members, npi_a)
        print(f"loaded {members} members x ({per_member} Observations + Patient + Coverage) into A's HAPI in "
              f"{baseline:.1f}s; B's members, coverages and consents loaded")
        data_b = Path(tempfile.mkdtemp(prefix="bench-pull-b-"))
        key_file = data_b / "payer-a.jwks"
        key_file.write_text(json.dumps({"keys": [key.private_jwk()]}))
        settings = Settings(upstream_url=hapi_b, data_dir=data_b).validate()
        store_b = SqliteStore(data_b)
        partner = add_partner(store_b, "payer-a", sidecar.fhir_base, "payer-b", key_file, [f"{NPI}|{npi_a}"])
        await asyncio.sleep(1.0)
        progress = Progress(stream=sys.stderr, interval=10.0)
        began = time.perf_counter()
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=600)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            report = await Pull(settings, store_b, partner, session, progress).run(PullOptions())
        elapsed = time.perf_counter() - began
        states: dict[str, int] = {}
        for exchange in exchanges(store_b, "payer-a"):
            states[exchange.state] = states.get(exchange.state, 0) + 1
        store_b.close()
    finally:
        sidecar.stop()
    print(f"\npull: {elapsed:.1f}s for {progress.members} members ({states}); problems: {report.problems or 'none'}")
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
