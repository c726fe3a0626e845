"""Shared by the pull benchmarks: two payers on this machine. Payer A (the old payer) is a HAPI with its sidecar;
payer B (the new payer) is a second HAPI holding its members with their prior coverage at A and consents, and
B's side of a pull (`sidecar.client.pull`, run in-process as the CLI runs it)."""
from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import aiohttp

from sidecar.client.progress import Progress
from sidecar.client.pull import Pull, PullOptions, PullReport
from sidecar.client.smart import ClientKey
from sidecar.config import Settings
from sidecar.devstack import SidecarProcess
from sidecar.store.clients import add_client
from sidecar.store.exchanges import exchanges
from sidecar.store.partners import DEFAULT_SCOPES, add_partner
from sidecar.store.db import open_store
from sidecar.store.sqlite import SqliteStore

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


async def transact(session: aiohttp.ClientSession, base: str, entries: list[dict]) -> list[dict]:
    """Every entry, in transactions of about PER_TRANSACTION entries; their response entries in order."""
    answered: list[dict] = []
    for start in range(0, len(entries), PER_TRANSACTION):
        body = {"resourceType": "Bundle", "type": "transaction", "entry": entries[start:start + PER_TRANSACTION]}
        async with session.post(base, data=json.dumps(body), headers=FHIR_JSON) as resp:
            assert resp.status == 200, (await resp.text())[:500]
            answered += (await resp.json(content_type=None))["entry"]
    return answered


def post(resource: dict, urn: str | None = None) -> dict:
    return {**({"fullUrl": urn} if urn else {}), "resource": resource,
            "request": {"method": "POST", "url": resource["resourceType"]}}


async def load_b(session: aiohttp.ClientSession, base: str, run: str, members: list[int], npi_a: str) -> None:
    """B's side of members `members` of A's roster: Patient (same demographics), our Coverage, the prior
    Coverage at A and a Consent naming A as source and B as recipient."""
    entries: list[dict] = []
    for n in members:
        urn = f"urn:uuid:{uuid.uuid4()}"
        entries += [post({"resourceType": "Patient", **person(run, n)}, urn),
                    post({"resourceType": "Coverage", "status": "active", "subscriberId": f"B{run}{n}",
                          "beneficiary": {"reference": urn}, "payor": [{"display": "Payer B"}]}),
                    post({"resourceType": "Coverage", "status": "cancelled", "subscriberId": f"A{run}{n}",
                          "beneficiary": {"reference": urn},
                          "payor": [{"identifier": {"system": NPI, "value": npi_a}, "display": "Payer A"}]}),
                    post(consent(urn, npi_a))]
    await transact(session, base, entries)


def new_npi() -> str:
    """A's NPI, new in every run, so that B's consents from an earlier run on the same servers are not pulled."""
    return str(uuid.uuid4().int)[:10]


def start_payer_a(hapi_a: str, npi_a: str, python: str = sys.executable,
                  store_url: str = "") -> tuple[SidecarProcess, ClientKey]:
    """A's sidecar, knowing itself by `npi_a`, on the store `store_url` names (else SQLite in its data dir), with B
    registered as a partner client; B's key."""
    sidecar = SidecarProcess(hapi_a, Path(tempfile.mkdtemp(prefix="bench-pull-a-")), python=python,
                             extra_env={"SIDECAR_PAYER_IDENTIFIERS": f"{NPI}|{npi_a}",
                                        "SIDECAR_STORE_URL": store_url}).start()
    key = ClientKey.generate("ES384")
    store_a = open_store(store_url, sidecar.data_dir)
    try:
        add_client(store_a, "payer-b", f"{NPI}|{NPI_B}", DEFAULT_SCOPES, jwks=key.public_jwks())
    finally:
        store_a.close()
    return sidecar, key


@dataclass
class Pulled:
    elapsed: float
    report: PullReport
    states: dict[str, int]
    data_dir: Path


async def pull_from_a(sidecar_a: SidecarProcess, key: ClientKey, hapi_b: str, npi_a: str, progress: Progress,
                      batch_size: int | None = None) -> Pulled:
    """One `pdex-sidecar pull` at B from A's sidecar, with a fresh B store: every consented member of B."""
    data_b = Path(tempfile.mkdtemp(prefix="bench-pull-b-"))
    key_file = data_b / "payer-a.jwks"
    key_file.write_text(json.dumps({"keys": [key.private_jwk()]}))
    settings = Settings(upstream_url=hapi_b, data_dir=data_b,
                        **({"pull_batch_size": batch_size} if batch_size else {})).validate()
    store_b = SqliteStore(data_b)
    try:
        partner = add_partner(store_b, "payer-a", sidecar_a.fhir_base, "payer-b", key_file, [f"{NPI}|{npi_a}"])
        began = time.perf_counter()
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=600)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            report = await Pull(settings, store_b, partner, session, progress).run(PullOptions())
        elapsed = time.perf_counter() - began
        states: dict[str, int] = {}
        for exchange in exchanges(store_b, "payer-a"):
            states[exchange.state] = states.get(exchange.state, 0) + 1
    finally:
        store_b.close()
    return Pulled(elapsed, report, states, data_b)
