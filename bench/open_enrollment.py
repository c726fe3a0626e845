"""Open enrollment at payer volume (issue 20): a partner's bulk match, export and pull of a batch of new members
out of a large roster, on PostgreSQL-backed HAPI, at one or more sizes in one run.

Servers, all started here and stopped at the end: a PostgreSQL cluster (`scripts/postgres`, `--pg-data-dir`,
`--pg-port`) holding two fresh HAPI databases; payer A's HAPI and payer B's HAPI on them
(`hapi-config/run-hapi` with `HAPI_DB_URL`); a sidecar for A per size (`.venv-product`, the package without
extras, as in bench/export.py), its store a PostgreSQL database of its own in the same cluster (`--sidecar-store
sqlite` for the SQLite one).

For each size (`--roster N --match M`, several pairs give several sizes, run in order on the same servers):
1. A's roster grows to N members, each with a history of 39 resources (Patient, Coverage, 6 Encounters of which 2
   older than the five-year look-back, 4 Conditions, 12 Observations, 4 MedicationRequests, 2 Procedures, 6
   ExplanationOfBenefit, an AllergyIntolerance, 2 Immunizations), written straight into HAPI in transactions.
2. M members of the roster not chosen at an earlier size become B's new members (Patient, Coverage, prior Coverage
   at A, Consent naming A; A's NPI is new at every size, so only these M are pulled).
3. Baseline: HAPI's own `Group/{id}/$export` of the same M members at A, in Groups of `--batch` posted straight to
   HAPI (the pull's matches make Groups of that size), exported one after the other, kick-off to every file
   downloaded; once before and once after the pull (the mean is the baseline).
4. `pdex-sidecar pull` at B (in-process, as the CLI runs it): `$bulk-member-match` at A's sidecar in batches of
   `--batch` → `$davinci-data-export` of the matched Group → downloads → ingest into B's HAPI.

Printed per size: members matched per minute, resources exported (released by A's sidecar) and ingested per
second, the export's time over HAPI's own Group export, A's sidecar RSS over the pull (sampled every 0.5 s with
psutil), the CPU seconds of each process in each phase (where the time goes), and the databases' sizes
(pg_database_size). With two sizes or more, each time and size is extrapolated linearly (from the two largest)
to `--target-roster` / `--target-match` (100,000 / 10,000, the issue's volume). An uncounted warm-up
(`--warmup` members, a quarter of them pulled) runs first.

    .venv/bin/python bench/open_enrollment.py [--roster 1000 3000 --match 250 600 --batch 200]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Callable

import aiohttp
import psutil

from export import PeakMemory, export, product_python
from payers import PER_TRANSACTION, load_b, new_npi, person, post, pull_from_a, start_payer_a, transact
from pg_stack import LocalPostgres, hapi_on_postgres
from sidecar.client.progress import Progress

HISTORY = 39
"""Resources per member in A's roster, the Patient included."""
PHASES = ("members", "match", "export", "ingest")
CONCURRENT_TRANSACTIONS = 2


def _coding(system: str, code: str, display: str) -> dict:
    return {"coding": [{"system": system, "code": code, "display": display}]}


SNOMED, LOINC, RXNORM = "http://snomed.info/sct", "http://loinc.org", "http://www.nlm.nih.gov/research/umls/rxnorm"
CONDITIONS = [("38341003", "Hypertensive disorder"), ("44054006", "Diabetes mellitus type 2"),
              ("195967001", "Asthma"), ("55822004", "Hyperlipidemia")]
VITALS = [("8867-4", "Heart rate", "/min", 72), ("29463-7", "Body weight", "kg", 70),
          ("8302-2", "Body height", "cm", 170), ("2339-0", "Glucose", "mg/dL", 95)]
DRUGS = [("314076", "lisinopril 10 MG Oral Tablet"), ("860975", "metformin 500 MG Oral Tablet"),
         ("617312", "atorvastatin 10 MG Oral Tablet"), ("745679", "albuterol 90 MCG Inhaler")]


def history(n: int, urn: str, coverage: str, today: date) -> list[dict]:
    """Member n's history at A, everything but the Patient and Coverage: dated within four years, except two
    Encounters six and seven years back (withheld by the look-back)."""
    def day(k: int) -> str:
        return (today - timedelta(days=(n * 7 + k * 53) % 1400 + 1)).isoformat()

    subject = {"reference": urn}
    resources: list[dict] = []
    for k in range(6):
        when = day(k) if k < 4 else (today - timedelta(days=365 * (k + 2))).isoformat()
        resources.append({"resourceType": "Encounter", "status": "finished",
                          "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                          "type": [_coding(SNOMED, "185349003", "Encounter for check up")], "subject": subject,
                          "period": {"start": f"{when}T09:00:00Z", "end": f"{when}T09:30:00Z"}})
    for k, (code, display) in enumerate(CONDITIONS):
        resources.append({"resourceType": "Condition",
                          "clinicalStatus": _coding("http://terminology.hl7.org/CodeSystem/condition-clinical",
                                                    "active", "Active"),
                          "verificationStatus": _coding("http://terminology.hl7.org/CodeSystem/"
                                                        "condition-ver-status", "confirmed", "Confirmed"),
                          "code": _coding(SNOMED, code, display), "subject": subject,
                          "onsetDateTime": day(10 + k), "recordedDate": day(10 + k)})
    for k in range(12):
        code, display, unit, value = VITALS[k % len(VITALS)]
        resources.append({"resourceType": "Observation", "status": "final",
                          "category": [_coding("http://terminology.hl7.org/CodeSystem/observation-category",
                                               "vital-signs", "Vital Signs")],
                          "code": _coding(LOINC, code, display), "subject": subject,
                          "effectiveDateTime": day(20 + k), "valueQuantity": {"value": value + k % 5, "unit": unit}})
    for k, (code, display) in enumerate(DRUGS):
        resources.append({"resourceType": "MedicationRequest", "status": "active", "intent": "order",
                          "medicationCodeableConcept": _coding(RXNORM, code, display), "subject": subject,
                          "authoredOn": day(40 + k)})
    for k in range(2):
        resources.append({"resourceType": "Procedure", "status": "completed",
                          "code": _coding(SNOMED, "73761001", "Colonoscopy"), "subject": subject,
                          "performedDateTime": day(50 + k)})
    for k in range(6):
        when = day(60 + k)
        resources.append({"resourceType": "ExplanationOfBenefit", "status": "active",
                          "type": _coding("http://terminology.hl7.org/CodeSystem/claim-type", "professional",
                                          "Professional"),
                          "use": "claim", "patient": subject, "created": when,
                          "billablePeriod": {"start": when, "end": when},
                          "insurer": {"display": "Payer A"}, "provider": {"display": "Example Clinic"},
                          "outcome": "complete", "insurance": [{"focal": True, "coverage": {"reference": coverage}}],
                          "item": [{"sequence": 1, "servicedDate": when,
                                    "productOrService": _coding("http://www.ama-assn.org/go/cpt", "99213",
                                                                "Office visit")}],
                          "total": [{"category": _coding("http://terminology.hl7.org/CodeSystem/adjudication",
                                                         "submitted", "Submitted Amount"),
                                     "amount": {"value": 120.0 + k, "currency": "USD"}}]})
    resources.append({"resourceType": "AllergyIntolerance",
                      "clinicalStatus": _coding("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                                                "active", "Active"),
                      "code": _coding(SNOMED, "91936005", "Allergy to penicillin"), "patient": subject,
                      "recordedDate": day(70)})
    for k in range(2):
        resources.append({"resourceType": "Immunization", "status": "completed",
                          "vaccineCode": _coding("http://hl7.org/fhir/sid/cvx", "140", "Influenza, seasonal"),
                          "patient": subject, "occurrenceDateTime": day(80 + k)})
    return resources


async def grow_roster(session: aiohttp.ClientSession, base: str, run: str, members: range) -> dict[int, str]:
    """Members `members` of the roster written into A's HAPI; each one's Patient id."""
    today = date.today()
    per_transaction = max(1, PER_TRANSACTION // HISTORY)
    chunks = [members[i:i + per_transaction] for i in range(0, len(members), per_transaction)]
    ids: dict[int, str] = {}

    async def write(chunk: range) -> None:
        entries: list[dict] = []
        for n in chunk:
            urn, coverage = f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}"
            entries += [post({"resourceType": "Patient", **person(run, n)}, urn),
                        post({"resourceType": "Coverage", "status": "active", "subscriberId": f"A{run}{n}",
                              "beneficiary": {"reference": urn}, "payor": [{"display": "Payer A"}]}, coverage)]
            entries += [post(resource) for resource in history(n, urn, coverage, today)]
        answered = await transact(session, base, entries)
        patients = [e["response"]["location"].split("/")[1] for e in answered
                    if e["response"]["location"].startswith("Patient/")]
        ids.update(zip(chunk, patients))

    for start in range(0, len(chunks), CONCURRENT_TRANSACTIONS):
        await asyncio.gather(*(write(c) for c in chunks[start:start + CONCURRENT_TRANSACTIONS]))
    return ids


def choose(roster: int, count: int, taken: set[int]) -> list[int]:
    """`count` members spread over the whole roster, none taken before."""
    free = [n for n in range(roster) if n not in taken]
    if count > len(free):
        raise SystemExit(f"--match {count} exceeds the {len(free)} roster members not matched at an earlier size")
    step = len(free) / count
    return [free[int(k * step)] for k in range(count)]


async def hapi_group_export(session: aiohttp.ClientSession, base: str, patient_ids: list[str],
                            batch: int) -> tuple[float, int]:
    """HAPI's own Group $export of these Patients in Groups of `batch`, as the pull's matches make them, one after
    the other: seconds from the first kick-off to every file of the last downloaded, resources."""
    async def no_cache() -> dict[str, str]:
        return {"Cache-Control": "no-cache"}
    groups = []
    for start in range(0, len(patient_ids), batch):
        group = {"resourceType": "Group", "type": "person", "actual": True,
                 "member": [{"entity": {"reference": f"Patient/{pid}"}} for pid in patient_ids[start:start + batch]]}
        async with session.post(f"{base}/Group", json=group,
                                headers={"Content-Type": "application/fhir+json"}) as resp:
            assert resp.status == 201, await resp.text()
            groups.append((await resp.json(content_type=None))["id"])
    began = time.perf_counter()
    count = 0
    for group_id in groups:
        count += await export(session, f"{base}/Group/{group_id}/$export", no_cache, "GET")
    return time.perf_counter() - began, count


class CpuMeter:
    """CPU seconds (user + system) of groups of processes, read at each lap."""

    def __init__(self, groups: dict[str, Callable[[], list[psutil.Process]]]) -> None:
        self.groups = groups
        self.last = self.totals()

    def totals(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for name, processes in self.groups.items():
            seconds = 0.0
            for process in processes():
                try:
                    times = process.cpu_times()
                    seconds += times.user + times.system
                except psutil.NoSuchProcess:
                    pass
            totals[name] = seconds
        return totals

    def lap(self) -> dict[str, float]:
        now = self.totals()
        # A PostgreSQL backend that exited since the last lap takes its seconds with it: never below zero.
        spent = {name: max(0.0, now[name] - self.last.get(name, 0.0)) for name in now}
        self.last = now
        return spent


@dataclass
class PhaseProgress(Progress):
    """The pull's progress, with the CPU seconds each process spent in each phase."""

    meter: CpuMeter | None = None
    phase_cpu: dict[str, dict[str, float]] = field(default_factory=dict)

    def enter(self, phase: str) -> None:
        if self.meter is not None:
            spent = self.phase_cpu.setdefault(self.phase, {})
            for name, seconds in self.meter.lap().items():
                spent[name] = spent.get(name, 0.0) + seconds
        super().enter(phase)


async def metric_sum(session: aiohttp.ClientSession, url: str, name: str) -> dict[str, float]:
    """Prometheus samples of `name`: label text → value."""
    async with session.get(url) as resp:
        text = await resp.text()
    return {line.split(" ")[0][len(name):] or "": float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line.startswith(name) and not line.startswith("#")}


def tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


MB = 2 ** 20


@dataclass
class Servers:
    pg: LocalPostgres
    db_a: str
    db_b: str
    hapi_a: str
    hapi_b: str
    jvm_a: psutil.Process
    jvm_b: psutil.Process
    python: str
    sidecar_store: str  # "postgresql" (a database of its own per size) or "sqlite"
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    roster: int = 0
    patient_ids: dict[int, str] = field(default_factory=dict)
    taken: set[int] = field(default_factory=set)


async def one_size(servers: Servers, roster: int, match: int, batch: int, quiet: bool = False) -> dict:
    s = servers
    result: dict = {"roster": roster, "match": match}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=7200)) as session:
        began = time.perf_counter()
        if roster > s.roster:
            s.patient_ids.update(await grow_roster(session, s.hapi_a, s.run, range(s.roster, roster)))
        loaded = roster - s.roster
        result["load_seconds"] = time.perf_counter() - began
        result["loaded_resources"] = loaded * HISTORY
        s.roster = max(s.roster, roster)
        print(f"roster: {loaded} members x {HISTORY} resources written into A's HAPI in "
              f"{result['load_seconds']:.1f}s ({result['loaded_resources'] / max(result['load_seconds'], 1e-9):.0f}"
              f" resources/s); roster now {s.roster}", flush=True)
        chosen = choose(roster, match, s.taken)
        s.taken.update(chosen)
        npi_a = new_npi()
        await load_b(session, s.hapi_b, s.run, chosen, npi_a)
        chosen_ids = [s.patient_ids[n] for n in chosen]
        before = await hapi_group_export(session, s.hapi_a, chosen_ids, batch)
        print(f"HAPI's own Group $export of the {match} members (before the pull): {before[0]:.1f}s, "
              f"{before[1]} resources", flush=True)

    store_db = f"sidecar_a_{s.run}_{roster}_{match}"
    if s.sidecar_store == "postgresql":
        s.pg.createdb(store_db)
    store_url = f"postgresql://postgres@127.0.0.1:{s.pg.port}/{store_db}" if s.sidecar_store == "postgresql" else ""
    sidecar, key = start_payer_a(s.hapi_a, npi_a, s.python, store_url)
    try:
        sidecar_process = psutil.Process(sidecar.process.pid)
        meter = CpuMeter({"sidecar A": lambda: [sidecar_process], "HAPI A": lambda: [s.jvm_a],
                          "HAPI B": lambda: [s.jvm_b], "PostgreSQL": s.pg.processes,
                          "pull client (B)": lambda: [psutil.Process()]})
        progress = PhaseProgress(stream=sys.stderr, interval=15.0, meter=meter)
        with PeakMemory(sidecar.process.pid, 0.5) as rss, PeakMemory(os.getpid(), 0.5) as client_rss:
            pulled = await pull_from_a(sidecar, key, s.hapi_b, npi_a, progress, batch)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=7200)) as session:
            released = await metric_sum(session, sidecar.metrics_url, "pdex_sidecar_export_resources_released_total")
            withheld = await metric_sum(session, sidecar.metrics_url, "pdex_sidecar_export_resources_withheld_total")
            after = await hapi_group_export(session, s.hapi_a, chosen_ids, batch)
        print(f"HAPI's own Group $export of the {match} members (after the pull): {after[0]:.1f}s, "
              f"{after[1]} resources", flush=True)
        result["store_a_bytes"] = tree_size(sidecar.data_dir) + (s.pg.size(store_db) if store_url else 0)
    finally:
        sidecar.stop()
    result["store_b_bytes"] = tree_size(pulled.data_dir)
    phases = {p: progress.phase_seconds.get(p, 0.0) for p in PHASES}
    rss_values = [v for _, v in rss.samples]
    result.update({
        "pull_seconds": pulled.elapsed, "phases": phases, "phase_cpu": {p: progress.phase_cpu.get(p, {})
                                                                       for p in PHASES},
        "states": pulled.states, "problems": pulled.report.problems, "matched": progress.matched,
        "released": sum(released.values()), "withheld": withheld, "ingested": progress.ingested,
        "unchanged": progress.unchanged, "invalid": progress.invalid,
        "hapi_export_seconds": statistics.mean([before[0], after[0]]), "hapi_export_resources": after[1],
        "sidecar_rss_mb": {"first": rss_values[0] / MB, "median": statistics.median(rss_values) / MB,
                           "peak": max(rss_values) / MB, "last": rss_values[-1] / MB,
                           "samples": len(rss_values),
                           "tenths": [rss_values[min(len(rss_values) - 1, len(rss_values) * k // 10)] / MB
                                      for k in range(11)]},
        "client_rss_peak_mb": client_rss.peak / MB,
        "hapi_a_db_bytes": s.pg.size(s.db_a), "hapi_b_db_bytes": s.pg.size(s.db_b),
    })
    if not quiet:
        report(result)
    return result


def report(r: dict) -> None:
    pull, phases = r["pull_seconds"], r["phases"]
    print(f"\n=== roster {r['roster']}, match {r['match']} ===")
    print(f"pull: {pull:.1f}s; exchange states {r['states']}; problems: {r['problems'] or 'none'}")
    print(f"members matched per minute: {r['matched'] / max(phases['match'], 1e-9) * 60:.0f} in the match phase, "
          f"{r['matched'] / pull * 60:.0f} over the whole pull")
    print(f"resources exported (released by A's sidecar): {r['released']:.0f}, "
          f"{r['released'] / max(phases['export'], 1e-9):.0f}/s over the export phase; withheld: "
          f"{ {k: int(v) for k, v in r['withheld'].items()} }")
    print(f"resources ingested into B's HAPI: {r['ingested']} ({r['invalid']} invalid, {r['unchanged']} unchanged), "
          f"{r['ingested'] / max(phases['ingest'], 1e-9):.0f}/s over the ingest phase")
    print(f"HAPI's own Group $export of the same members: {r['hapi_export_seconds']:.1f}s "
          f"({r['hapi_export_resources']} resources); sidecar export phase / HAPI export: "
          f"{phases['export'] / r['hapi_export_seconds']:.2f}; whole pull / HAPI export: "
          f"{pull / r['hapi_export_seconds']:.2f}")
    rss = r["sidecar_rss_mb"]
    print(f"A's sidecar RSS over the pull ({rss['samples']} samples): first {rss['first']:.1f} MB, median "
          f"{rss['median']:.1f}, peak {rss['peak']:.1f}, last {rss['last']:.1f}; pull client (B, in-process) peak "
          f"{r['client_rss_peak_mb']:.1f} MB")
    print("  A's sidecar RSS at each tenth of the pull (MB): " + " ".join(f"{v:.0f}" for v in rss["tenths"]))
    print(f"sizes: HAPI A database {r['hapi_a_db_bytes'] / MB:.0f} MB, HAPI B database "
          f"{r['hapi_b_db_bytes'] / MB:.0f} MB, A's sidecar store {r['store_a_bytes'] / MB:.1f} MB, "
          f"B's store {r['store_b_bytes'] / MB:.1f} MB")
    print("where the time goes (wall seconds, share of the pull; CPU seconds by process):")
    for phase in PHASES:
        cpu = ", ".join(f"{name} {seconds:.1f}" for name, seconds in r["phase_cpu"][phase].items())
        print(f"  {phase:8s} {phases[phase]:7.1f}s {phases[phase] / pull:6.1%}  cpu: {cpu}")


HAPI_EXPORT = "HAPI's Group $export (s)"


def extrapolate(results: list[dict], target_roster: int, target_match: int) -> None:
    """Each figure read at the target two ways from the two largest sizes: at the larger size's rate (seconds or
    bytes per member, constant) and along the line through both sizes (its slope is the cost of one more member;
    with small sizes, fixed costs and noise make it a rough guide). Times and the sidecar's work grow with the
    members matched; the roster's load and HAPI's database with the roster."""
    small, large = sorted(results, key=lambda r: r["match"])[-2:]

    def at_rate(key: Callable[[dict], float], by: str, target: int) -> float:
        return key(large) / large[by] * target

    def on_line(key: Callable[[dict], float], by: str, target: int) -> float:
        x0, x1, y0, y1 = small[by], large[by], key(small), key(large)
        return y1 + (y1 - y0) / (x1 - x0) * (target - x1) if x1 != x0 else y1

    rows = [("load of the roster (s)", lambda r: r["load_seconds"] / max(r["loaded_resources"], 1) * HISTORY
             * r["roster"], "roster", target_roster),
            ("match phase (s)", lambda r: r["phases"]["match"], "match", target_match),
            ("export phase (s)", lambda r: r["phases"]["export"], "match", target_match),
            ("ingest phase (s)", lambda r: r["phases"]["ingest"], "match", target_match),
            ("whole pull (s)", lambda r: r["pull_seconds"], "match", target_match),
            (HAPI_EXPORT, lambda r: r["hapi_export_seconds"], "match", target_match),
            ("HAPI A database (MB)", lambda r: r["hapi_a_db_bytes"] / MB, "roster", target_roster),
            ("HAPI B database (MB)", lambda r: r["hapi_b_db_bytes"] / MB, "match", target_match)]
    print(f"\n=== extrapolated to roster {target_roster}, match {target_match} from roster/match "
          f"{small['roster']}/{small['match']} and {large['roster']}/{large['match']} ===")
    print(f"  {'':28s} {'smaller':>10s} {'larger':>10s} {'at rate':>10s} {'on line':>10s}")
    rated = {}
    for label, key, by, target in rows:
        rated[label] = at_rate(key, by, target)
        print(f"  {label:28s} {key(small):10.1f} {key(large):10.1f} {rated[label]:10.1f} "
              f"{on_line(key, by, target):10.1f}")
    for label, key in (("A's sidecar peak RSS (MB)", lambda r: r["sidecar_rss_mb"]["peak"]),
                       ("pull client peak RSS (MB)", lambda r: r["client_rss_peak_mb"])):
        print(f"  {label:28s} {key(small):10.1f} {key(large):10.1f} {'':>10s} "
              f"{on_line(key, 'match', target_match):10.1f}")
    print(f"  at the larger size's rates: {target_match / rated['match phase (s)'] * 60:.0f} members matched per "
          f"minute; the whole pull {rated['whole pull (s)'] / 60:.0f} min, the roster's load "
          f"{rated['load of the roster (s)'] / 60:.0f} min")


async def measure(args: argparse.Namespace, python: str) -> list[dict]:
    pg = LocalPostgres(Path(args.pg_data_dir), args.pg_port).start()
    stamp = uuid.uuid4().hex[:6]
    db_a, db_b = f"bench_a_{stamp}", f"bench_b_{stamp}"
    started: list = []
    try:
        # Both start at once (HAPI creates its tables on an empty database: minutes).
        with ThreadPoolExecutor(2) as pool:
            starting = [pool.submit(hapi_on_postgres, pg, db) for db in (db_a, db_b)]
            for future in starting:
                if future.exception() is None:
                    started.append(future.result()[0])
            (hapi_a, jvm_a), (hapi_b, jvm_b) = (future.result() for future in starting)
        print(f"PostgreSQL {pg.data_dir} on port {pg.port}; HAPI A {hapi_a.base_url} ({db_a}), HAPI B "
              f"{hapi_b.base_url} ({db_b})", flush=True)
        servers = Servers(pg, db_a, db_b, hapi_a.base_url, hapi_b.base_url, jvm_a, jvm_b, python, args.sidecar_store)
        if args.warmup:
            # Uncounted: HAPI's first writes, searches and exports after a start run several times slower.
            print(f"--- warm-up (not counted): roster {args.warmup}, match {max(1, args.warmup // 4)} ---")
            warm = Servers(pg, db_a, db_b, hapi_a.base_url, hapi_b.base_url, jvm_a, jvm_b, python, args.sidecar_store)
            await one_size(warm, args.warmup, max(1, args.warmup // 4), args.batch, quiet=True)
        results = []
        for roster, match in zip(args.roster, args.match):
            results.append(await one_size(servers, roster, match, args.batch))
            if args.json:
                Path(args.json).write_text(json.dumps(results, indent=1))
        return results
    finally:
        for server in reversed(started):
            server.stop()
        if not args.keep_postgres:
            pg.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--roster", type=int, nargs="+", default=[1000, 3000], help="roster size(s), ascending")
    parser.add_argument("--match", type=int, nargs="+", default=[250, 600], help="members matched at each size")
    parser.add_argument("--batch", type=int, default=200, help="members per $bulk-member-match request")
    parser.add_argument("--warmup", type=int, default=100,
                        help="an uncounted roster of this many first (a quarter of them pulled); 0: none")
    parser.add_argument("--target-roster", type=int, default=100_000)
    parser.add_argument("--target-match", type=int, default=10_000)
    parser.add_argument("--pg-data-dir", default=str(Path(tempfile.gettempdir()) / "bench-open-enrollment-pg"))
    parser.add_argument("--pg-port", type=int, default=5440)
    parser.add_argument("--sidecar-store", choices=["postgresql", "sqlite"], default="postgresql",
                        help="A's sidecar store: a PostgreSQL database in the same server (default), or SQLite")
    parser.add_argument("--keep-postgres", action="store_true", help="leave the cluster running at the end")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if len(args.roster) != len(args.match) or args.roster != sorted(args.roster):
        parser.error("give as many --match as --roster sizes, rosters ascending")
    results = asyncio.run(measure(args, product_python()))
    if len(results) >= 2:
        extrapolate(results, args.target_roster, args.target_match)


if __name__ == "__main__":
    main()
