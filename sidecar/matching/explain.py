"""`pdex-sidecar match explain --request FILE`: the decision `$member-match` would take on a request, for an operator.

It runs the operation's own matching (candidates from HAPI, the roster's name frequencies, scores, decision) on a
saved Parameters body, and prints each candidate's fields with their levels and weights, then why the decision was
taken. It neither throttles, nor records, nor grants anything. Patient data goes to the operator's terminal only.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import orjson

from sidecar.config import Settings, load_settings
from sidecar.hapi.client import HapiClient
from sidecar.hapi.errors import HapiError
from sidecar.matching.candidates import CandidateSource
from sidecar.matching.matcher import Found, Matcher
from sidecar.matching.name_frequency import RosterNames
from sidecar.matching.operation import BadRequest, parse
from sidecar.matching.person import Person, person_of
from sidecar.matching.scoring import Scorer, load_nicknames, load_weights, outranked_siblings, \
    twin_named_nearly
from sidecar.metrics.registry import Metrics


def add_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    match = commands.add_parser("match", help="member matching").add_subparsers(dest="match_command", required=True)
    explain = match.add_parser("explain", parents=[common],
                               help="explain the $member-match decision on a request (candidates, field weights, why)")
    explain.add_argument("--request", required=True, type=Path, help="the $member-match Parameters body (JSON)")
    explain.set_defaults(run=run)


def describe(person: Person) -> str:
    name = " ".join([person.given, *person.middle]).strip() or "-"
    return (f"{name} / {' | '.join(person.family) or '-'}, born {person.birth_date or '-'}, {person.gender or '-'}, "
            f"postal {person.postal or '-'}, cards {', '.join(sorted(person.card_ids)) or '-'}")


def reasons(found: Found, settings: Settings) -> list[str]:
    """Why the decision was taken, in the terms of the settings."""
    verdict, scored = found.verdict, list(found.scores.items())
    lines = [f"set aside: Patient/{key}, a sibling under the same subscription whose first name only nearly agrees"
             for key, _ in scored if (key, found.scores[key]) not in outranked_siblings(scored)]
    lines += [f"set aside: Patient/{key}, whose SSN is one off the request's in its last digit under another first "
              "name: the request is this person's twin" for key, score in scored if score.twin_number]
    if verdict.best is None:
        return [*lines, "no candidate was found"]
    key, best = verdict.best
    lines.append(f"best: Patient/{key}, total {best.total:.2f} "
                 f"{'≥' if best.total >= settings.match_threshold else '<'} threshold {settings.match_threshold:g}, "
                 f"individual evidence {best.individual:.2f} "
                 f"{'≥' if best.individual >= settings.match_individual_minimum else '<'} minimum "
                 f"{settings.match_individual_minimum:g}")
    if verdict.runner_up is not None:
        lead = best.total - verdict.runner_up[1].total
        lines.append(f"runner-up: Patient/{verdict.runner_up[0]}, lead {lead:.2f} "
                     f"{'≥' if lead >= settings.match_margin else '<'} margin {settings.match_margin:g}")
    if twin_named_nearly(best, scored):
        lines.append("someone born the same day under the same family name is here, and the first name only "
                     "nearly agrees: a twin is matched on her own first name only")
    return lines


def print_explanation(request: Person, found: Found, settings: Settings, people: int) -> None:
    print(f"request: {describe(request)}")
    print(f"name frequencies from {people} members; decision: {found.verdict.outcome}")
    ranked = sorted(found.scores.items(), key=lambda item: item[1].total, reverse=True)
    for key, score in ranked:
        candidate = person_of(found.patients[key], found.coverages.get(key, []), True)
        print(f"\nPatient/{key}: {describe(candidate)}")
        print(f"  total {score.total:.2f}, individual {score.individual:.2f}")
        for field, (level, weight) in score.contributions.items():
            print(f"  {field:<11} {level:<19} {weight:+.2f}")
    print()
    for line in reasons(found, settings):
        print(line)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    try:
        match_request = parse(orjson.loads(args.request.read_bytes()))
    except (OSError, orjson.JSONDecodeError) as exc:
        print(f"pdex-sidecar: cannot read {args.request}: {exc}", file=sys.stderr)
        return 2
    except BadRequest as exc:
        print(f"pdex-sidecar: the request would be refused (400): {exc}"
              f"{f' at {exc.expression}' if exc.expression else ''}", file=sys.stderr)
        return 2
    return asyncio.run(_explain(settings, match_request.patient, match_request.coverage))


async def _explain(settings: Settings, patient: dict, coverage: dict) -> int:
    upstream = HapiClient(settings, Metrics())  # a one-off command: nobody scrapes its counts
    await upstream.start()
    try:
        names = RosterNames(upstream, settings.match_name_frequency_seconds)
        await names.refresh()
        weights = load_weights(Path(settings.match_weights_file) if settings.match_weights_file else None)
        matcher = Matcher(settings, Scorer(weights, load_nicknames(), names.frequencies), CandidateSource(upstream))
        request = person_of(patient, [coverage], False)
        found = await matcher.match(request, coverage)
    except HapiError as exc:
        print(f"pdex-sidecar: the FHIR server could not be used: {exc}", file=sys.stderr)
        return 1
    finally:
        await upstream.close()
    print_explanation(request, found, settings, names.frequencies.people)
    return 0
