"""`$member-match` latency and throughput on a 50,000-member roster, through the sidecar, on HAPI.

The roster (seeded, so every run builds the same one) has `--members` synthetic members: first names drawn from
gendered lists and surnames from a list of common US surnames, both weighted towards the top of the list
(weight 1/(rank + 10)), so common names recur (1,216 Smiths and up to 26 of one first + last name pair in 50,000);
birth dates uniform over the 80 years 1945-2024 (about two members per birth date); a postal code, a phone, and a
subscriber id `M` + 8 digits as the Patient's MB identifier and the Coverage's `subscriberId`. It is loaded
straight into HAPI in transactions of 500 entries (Patient + Coverage per member), two at a time. Loading is
skipped when HAPI already holds exactly `--members` Patients with the roster's identifier system (counted with
`_summary=count`); any other non-zero count stops the script, since a half-loaded or different roster would
make the requests ambiguous: use a fresh HAPI database then.

The sidecar's first match starts its one-off read of the roster's names (name frequencies), a minute of HAPI's
time at 50,000 members: the bench warms up, waits until its metrics count every Patient, and only then measures.

Requests are drawn (seeded) from the roster with small realistic variations: half carry the card, some send a
nickname, a middle initial, an upper-case surname, no gender, or a birth date a day off. Measured:
  1. latency at concurrency 1: `--requests` single `$member-match` calls after 30 warm-up calls; p50/p95/p99,
     against the target p95 <= 100 ms (printed met/missed); answers by kind, and any member matched wrongly;
  2. throughput at concurrency 8: `--throughput-requests` calls, requests/s;
  3. for reference, p50 of a plain `Patient?birthdate=…` search straight to HAPI (concurrency 1, same run).

The sidecar runs with `SIDECAR_MATCH_FAILURE_RATE=1.0` and `SIDECAR_MATCH_FAILURE_FLOOR=1000000`, so the
brute-force throttle never distorts the measurement. HAPI comes from HAPI_BASE_URL or hapi-config/run-hapi, as
in the tests. Roster loading, the client and the call are shared with bench/member_match_quality.py.

    .venv/bin/python bench/member_match_latency.py [--members 50000] [--requests 300] [--throughput-requests 800]
"""
from __future__ import annotations

import argparse
import asyncio
import random
import time
from dataclasses import dataclass
from datetime import date, timedelta

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from measure import pct, run_block
from member_match_quality import (MEMBER_TYPE, MatchClient, count, load_members, match_parameters,
                                  member_identifier, outcome_code, start_sidecar)

from sidecar.devstack import SidecarProcess, obtain_hapi

MEMBER_SYSTEM = "urn:bench:member-match-latency:member"
TARGET_P95_MS = 100.0
FIRST_BIRTH_DATE = date(1945, 1, 1)
BIRTH_DATE_DAYS = (date(2024, 12, 31) - FIRST_BIRTH_DATE).days
WARM_UP = 30

FEMALE = ("Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy Betty Margaret Sandra "
          "Ashley Kimberly Emily Donna Michelle Carol Amanda Dorothy Melissa Deborah Stephanie Rebecca Sharon Laura "
          "Cynthia Kathleen Amy Angela Shirley Anna Brenda Pamela Emma Nicole Helen Samantha Katherine Christine "
          "Debra Rachel Carolyn Janet Catherine Maria Heather Diane Ruth Julie Olivia Joyce Virginia Victoria Kelly "
          "Lauren Christina Joan Evelyn Judith Megan Andrea Cheryl Hannah Jacqueline Martha Gloria Teresa Ann Sara "
          "Madison Frances Kathryn Janice Jean Abigail Alice Julia Judy Sophia Grace Denise Amber Doris "
          "Marilyn").split()
MALE = ("James Robert John Michael David William Richard Joseph Thomas Christopher Charles Daniel Matthew Anthony "
        "Mark Donald Steven Paul Andrew Joshua Kenneth Kevin Brian George Timothy Ronald Edward Jason Jeffrey Ryan "
        "Jacob Gary Nicholas Eric Jonathan Stephen Larry Justin Scott Brandon Benjamin Samuel Gregory Alexander "
        "Frank Patrick Raymond Jack Dennis Jerry Tyler Aaron Jose Adam Nathan Henry Douglas Zachary Peter Kyle "
        "Ethan Walter Noah Jeremy Christian Keith Roger Terry Gerald Harold Sean Austin Carl Arthur Lawrence Dylan "
        "Jesse Jordan Bryan Billy Joe Bruce Gabriel Logan Albert Willie Alan Juan Wayne Elijah Randy Roy "
        "Vincent").split()
SURNAMES = ("Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez "
            "Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark "
            "Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams "
            "Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker Cruz "
            "Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson "
            "Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez Wood James Bennett Gray "
            "Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long Ross Foster Jimenez Powell Jenkins "
            "Perry Russell Sullivan Bell Coleman Butler Henderson Barnes Gonzales Fisher Vasquez Simmons Romero "
            "Jordan Patterson Alexander Hamilton Graham Reynolds Griffin Wallace Moreno West Cole Hayes Bryant "
            "Herrera Gibson Ellis Tran Medina Aguilar Stevens Murray Ford Castro Marshall Owens Harrison Fernandez "
            "McDonald Woods Washington Kennedy Wells Vargas Henry Chen Freeman Webb Tucker Guzman Burns Crawford "
            "Olson Simpson Porter Hunter Gordon Mendez Silva Shaw Snyder Mason Dixon Munoz Hunt Hicks Holmes Palmer "
            "Wagner Black Robertson Boyd Rose Stone Salazar Fox Warren Mills Meyer Rice Schmidt Garza Daniels "
            "Ferguson Nichols Stephens Soto Weaver Ryan Gardner Payne Grant Dunn Kelley Spencer Hawkins Arnold "
            "Pierce Vazquez Hansen Peters Santos Hart Bradley Knight Elliott Cunningham Duncan Armstrong Hudson "
            "Carroll Lane Riley Andrews Alvarado Ray Delgado Berry Perkins Hoffman Johnston Matthews Pena Richards "
            "Willis Carpenter Lawrence Sandoval Guerrero George Chapman Rios Estrada Ortega Watkins Greene Nunez "
            "Wheeler Valdez Harper Burke Larson Santiago Maldonado Morrison Franklin Carlson Austin Dominguez "
            "Carr Lawson Jacobs Obrien Lynch Singh Vega Bishop Montgomery Oliver Jensen Harvey Williamson Gilbert "
            "Dean Sims Espinoza Howell Li Wong Reid Hanson Le McCoy Garrett Burton Fuller Wang Weber Welch Rojas "
            "Lucas Marquez Fields Park Yang Little Banks Padilla Day Walsh Bowman Schultz Luna Fowler Mejia Davidson "
            "Acosta Brewer May Holland Juarez Newman Pearson Curtis Cortez Douglas Schneider Joseph Barrett Navarro "
            "Figueroa Keller Avila Wade Molina Stanley Hopkins Campos Barnett Bates Chambers Caldwell Beck Lambert "
            "Miranda Byrd Craig Ayala Lowe Frazier Powers Neal Leonard Gregory Carrillo Sutton Fleming Rhodes "
            "Shelton Schwartz Norris Jennings Watts Duran Walters Cohen McDaniel Moran Parks Steele Vaughn Becker "
            "Holt Deleon Barker Terry Hale Leon Hail Benson Haynes Horton Miles Lyons Pham Graves Bush Thornton "
            "Wolfe Warner Cabrera McKinney Mann Zimmerman Dawson Lara Fletcher Page McCarthy Love Robles Cervantes "
            "Solis Erickson Reeves Chang Klein Salinas Fuentes Baldwin Daniel Simon Velasquez Hardy Higgins Aguirre "
            "Lin Cummings Chandler Sharp Barber Bowen Ochoa Dennis Robbins Liu Ramsey Francis Griffith Paul Blair "
            "Oconnor Cardenas Pacheco Cross Calderon Quinn Moss Swanson Chan Rivas Khan Rodgers Serrano Fitzgerald "
            "Rosales Stevenson Christensen Manning Gill Curry McLaughlin Harmon McGee Gross Doyle Garner Newton "
            "Burgess Reese Walton Blake Trujillo Adkins Brady Goodman Roman Webster Goodwin Fischer Huang Potter "
            "Delacruz Montoya Todd Wu Hines Mullins Castaneda Malone Cannon Tate Mack Sherman Hubbard Hodges Zhang "
            "Guerra Wolf Valencia Saunders Franco Rowe Gallagher Farmer Hammond Hampton Townsend Ingram Wise "
            "Gallegos Clarke Barton Schroeder Maxwell Waters Logan Camacho Strickland Norman Person Colon Parsons "
            "Frank Harrington Glover Osborne Buchanan Casey Floyd Patton Ibarra Ball Tyler Suarez Bowers "
            "Orozco").split()
NICKNAMES = {"William": "Bill", "Robert": "Bob", "Richard": "Rick", "James": "Jim", "Michael": "Mike",
             "Thomas": "Tom", "Joseph": "Joe", "Christopher": "Chris", "Daniel": "Dan", "Elizabeth": "Liz",
             "Katherine": "Kate", "Margaret": "Peggy", "Patricia": "Pat", "Jennifer": "Jen", "Deborah": "Debbie"}


@dataclass(frozen=True)
class Member:
    subscriber_id: str
    given: str
    middle: str
    family: str
    gender: str
    birth_date: date
    postal: str
    phone: str

    def patient(self) -> dict:
        return {"resourceType": "Patient",
                "identifier": [{"type": MEMBER_TYPE, "system": MEMBER_SYSTEM, "value": self.subscriber_id}],
                "name": [{"use": "official", "family": self.family, "given": [self.given, self.middle]}],
                "gender": self.gender, "birthDate": self.birth_date.isoformat(),
                "address": [{"use": "home", "postalCode": self.postal}],
                "telecom": [{"system": "phone", "value": self.phone}]}


def weighted(names: list[str]) -> tuple[list[str], list[float]]:
    return names, [1.0 / (rank + 10) for rank in range(1, len(names) + 1)]


def roster(size: int, seed: int) -> list[Member]:
    rng = random.Random(seed)
    female, male, surnames = weighted(FEMALE), weighted(MALE), weighted(SURNAMES)
    postals = [f"{rng.randrange(1000, 99999):05d}" for _ in range(800)]
    members = []
    for n in range(size):
        gender = rng.choice(("female", "male"))
        given, middle = rng.choices(*(female if gender == "female" else male), k=2)
        members.append(Member(f"M{n + 10_000_000:08d}", given, middle, rng.choices(*surnames)[0], gender,
                              FIRST_BIRTH_DATE + timedelta(days=rng.randrange(BIRTH_DATE_DAYS + 1)),
                              rng.choice(postals), f"{rng.randrange(200, 999)}{rng.randrange(2000000, 9999999)}"))
    return members


async def ensure_roster(session: aiohttp.ClientSession, base: str, members: list[Member]) -> str:
    """Loads the roster unless HAPI holds it already; says which."""
    loaded = await count(session, base, "Patient", {"identifier": f"{MEMBER_SYSTEM}|"})
    if loaded == len(members):
        return f"roster already loaded ({loaded} members)"
    if loaded:
        raise SystemExit(f"HAPI holds {loaded} roster Patients, not {len(members)}: use a fresh HAPI database")
    started = time.perf_counter()
    await load_members(session, base, [(m.subscriber_id, m.patient(), m.subscriber_id) for m in members])
    return f"loaded {len(members)} members in {time.perf_counter() - started:.1f}s"


def request_for(member: Member, rng: random.Random) -> dict:
    """The member as another payer would send them, with one small realistic variation (or none)."""
    given, family, birth, gender = [member.given], member.family, member.birth_date, member.gender
    variation = rng.random()
    if variation < 0.15 and member.given in NICKNAMES:
        given = [NICKNAMES[member.given]]
    elif variation < 0.30:
        given = [member.given, member.middle[0] + "."]
    elif variation < 0.40:
        family = family.upper()
    elif variation < 0.50:
        gender = None
    elif variation < 0.60:
        birth = birth + timedelta(days=rng.choice((-1, 1)))
    patient = {"resourceType": "Patient", "name": [{"family": family, "given": given}], "birthDate": birth.isoformat(),
               "address": [{"postalCode": member.postal}], **({"gender": gender} if gender else {})}
    card = member.subscriber_id if rng.random() < 0.5 else None
    return match_parameters(patient, card)


async def timed_matches(session: aiohttp.ClientSession, client: MatchClient, requests: list[tuple[Member, dict]],
                        concurrency: int) -> tuple[float, list[float], dict[str, int], int]:
    """Elapsed seconds, latencies, answers by kind, and how many matched a member other than the one sent."""
    queue = list(reversed(requests))
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    wrong = 0

    async def worker() -> None:
        nonlocal wrong
        while queue:
            member, body = queue.pop()
            await client.headers(session)  # a token renewal is not a match's latency
            started = time.perf_counter()
            status, answer = await client.match(session, body)
            latencies.append(time.perf_counter() - started)
            outcome = outcome_code(status, answer)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            wrong += outcome == "match" and member_identifier(answer) != member.subscriber_id

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies, dict(sorted(outcomes.items())), wrong


async def roster_names_read(session: aiohttp.ClientSession, sidecar: SidecarProcess, patients: int) -> None:
    """Waits until the sidecar's name frequencies count every Patient (its metrics say), so that the one-off first
    read of a large roster, which loads HAPI for a minute at 50,000 members, is not taken for a match's latency."""
    while True:
        async with session.get(sidecar.metrics_url) as resp:
            text = await resp.text()
        counted = next((sample.value for family in text_string_to_metric_families(text)
                        if family.name == "pdex_sidecar_match_roster_names" for sample in family.samples), 0)
        if counted >= patients:
            return
        await asyncio.sleep(1.0)


def draw(members: list[Member], n: int, rng: random.Random) -> list[tuple[Member, dict]]:
    return [(member, request_for(member, rng)) for member in rng.sample(members, n)]


async def measure(hapi_base: str, sidecar: SidecarProcess, members: list[Member], requests: int,
                  throughput_requests: int, seed: int) -> None:
    rng = random.Random(seed + 1)
    client = MatchClient.register(sidecar)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32),
                                     timeout=aiohttp.ClientTimeout(total=600)) as session:
        print(await ensure_roster(session, hapi_base, members))
        patients = await count(session, hapi_base, 'Patient', {})
        print(f"HAPI holds {patients} Patients in all")
        started = time.perf_counter()
        await timed_matches(session, client, draw(members, WARM_UP, rng), 1)
        await roster_names_read(session, sidecar, patients)
        print(f"the sidecar read the roster's names in {time.perf_counter() - started:.1f}s (started by the first "
              f"match, once per sidecar start; not measured)")

        _, latencies, outcomes, wrong = await timed_matches(session, client, draw(members, requests, rng), 1)
        p95 = pct(latencies, 95)
        print(f"\n$member-match, concurrency 1, {requests} requests: p50 {pct(latencies, 50):.1f} ms  "
              f"p95 {p95:.1f} ms  p99 {pct(latencies, 99):.1f} ms")
        print(f"  target p95 <= {TARGET_P95_MS:.0f} ms: {'MET' if p95 <= TARGET_P95_MS else 'MISSED'}")
        print(f"  answers {outcomes}; matched the wrong member: {wrong}")

        elapsed, latencies, outcomes, wrong = await timed_matches(session, client,
                                                                  draw(members, throughput_requests, rng), 8)
        print(f"\n$member-match, concurrency 8, {throughput_requests} requests: {throughput_requests / elapsed:.1f} "
              f"requests/s  (p50 {pct(latencies, 50):.1f} ms, p95 {pct(latencies, 95):.1f} ms)")
        print(f"  answers {outcomes}; matched the wrong member: {wrong}")

        paths = [f"Patient?birthdate={m.birth_date.isoformat()}" for m in rng.sample(members, requests)]
        await run_block(session, hapi_base, paths[:WARM_UP], 1)
        _, latencies = await run_block(session, hapi_base, paths, 1)
        print(f"\nreference: Patient?birthdate=… straight to HAPI, concurrency 1, {requests} requests: "
              f"p50 {pct(latencies, 50):.1f} ms  p95 {pct(latencies, 95):.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=50_000, help="roster size")
    parser.add_argument("--requests", type=int, default=300, help="requests at concurrency 1")
    parser.add_argument("--throughput-requests", type=int, default=800, help="requests at concurrency 8")
    parser.add_argument("--seed", type=int, default=50, help="roster and request seed")
    args = parser.parse_args()
    started = time.perf_counter()
    members = roster(args.members, args.seed)
    hapi = obtain_hapi()
    sidecar = start_sidecar(hapi.base_url, "bench-match-latency-")
    try:
        print(f"HAPI: {hapi.base_url} ({hapi.how}); sidecar: {sidecar.fhir_base}")
        asyncio.run(measure(hapi.base_url, sidecar, members, args.requests, args.throughput_requests, args.seed))
    finally:
        sidecar.stop()
        hapi.stop()
    print(f"\nelapsed {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
