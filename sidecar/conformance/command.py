"""`pdex-sidecar conformance run|seed`: the command line of the suite."""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import orjson

from sidecar.client.smart import ClientKey, load_private_key
from sidecar.conformance import runner, seed
from sidecar.conformance.context import Client, Target
from sidecar.conformance.fixtures import FixtureError, Fixtures
from sidecar.conformance.groups import BY_ID, GROUPS
from sidecar.conformance.model import Result
from sidecar.conformance.report import html, junit

EXIT_STATUS = ("exit status: 0 every required check of the groups run passed; 1 some required check failed (the "
               "failing groups are named); 3 none failed, but some were skipped (no second client, no Java or IG "
               "packages: the skipping groups are named); 2 the suite could not start (bad fixtures, key or "
               "arguments)")
FAILED, INCOMPLETE = 1, 3


def execute(target: Target, only: Sequence[str] = (), report_dir: Path | None = None,
            say: Callable[[str], None] = print) -> tuple[int, list[Result]]:
    """Runs the chosen groups (all by default), writes the reports, and gives the exit status with the results."""
    groups = [BY_ID[g] for g in only] if only else GROUPS
    started = time.monotonic()
    results = asyncio.run(runner.run(target, groups, say))
    for line in runner.summary(results):
        say(line)
    failing, skipping = runner.failing_groups(results), runner.skipping_groups(results)
    verdict = (f"FAILED groups: {', '.join(failing)}" if failing else
               f"INCOMPLETE, skipped in: {', '.join(skipping)}" if skipping else "PASSED")
    say(f"{len(results)} checks in {time.monotonic() - started:.1f} s against {target.fhir_base}: {verdict}")
    if report_dir:
        report_dir.mkdir(parents=True, exist_ok=True)
        junit.write(results, report_dir / "conformance.xml", target.fhir_base)
        html.write(results, report_dir / "conformance.html", target.fhir_base)
        say(f"reports: {report_dir / 'conformance.xml'}, {report_dir / 'conformance.html'}")
    return (FAILED if failing else INCOMPLETE if skipping else 0), results


def _run(args: argparse.Namespace) -> int:
    try:
        fixtures = Fixtures.read(Path(args.fixtures))
        client = Client(args.client_id, load_private_key(Path(args.key)))
        second = None
        if args.second_client_id or args.second_key:
            if not (args.second_client_id and args.second_key):
                raise FixtureError("--second-client-id and --second-key go together")
            second = Client(args.second_client_id, load_private_key(Path(args.second_key)))
    except Exception as exc:  # noqa: BLE001 - whatever stops the start is told, not traced
        print(f"pdex-sidecar conformance: {exc}", file=sys.stderr)
        return 2
    target = Target(args.fhir_base, client, args.organization, fixtures, second=second,
                    packages_dir=Path(args.packages) if args.packages else None, timeout=args.job_timeout)
    status, _ = execute(target, args.only or (), Path(args.report) if args.report else None,
                        lambda line: print(line, flush=True))
    return status


def _seed(args: argparse.Namespace) -> int:
    if not args.upstream and not args.fixtures_out:
        print("pdex-sidecar conformance seed: give --upstream URL (to store the members) and/or --fixtures-out FILE",
              file=sys.stderr)
        return 2
    fixtures = seed.build(args.payer_identifier)
    if args.upstream:
        try:
            asyncio.run(seed.store(args.upstream, fixtures))
        except (seed.SeedFailed, OSError) as exc:
            print(f"pdex-sidecar conformance seed: {exc}", file=sys.stderr)
            return 1
        print(f"stored the conformance members of run {fixtures.run} in {args.upstream}", file=sys.stderr)
    if args.fixtures_out:
        Path(args.fixtures_out).write_bytes(fixtures.to_json())
        print(f"fixtures written to {args.fixtures_out}" + ("" if args.upstream else
              " (load its 'load' transaction Bundle into the server's store)"), file=sys.stderr)
    else:
        sys.stdout.buffer.write(fixtures.to_json() + b"\n")
    return 0


def _key(args: argparse.Namespace) -> int:
    """A new client key: the private JWKS to a file only its owner reads, the public JWKS (for registration) to
    standard output."""
    key = ClientKey.generate(args.alg)
    path = Path(args.out)
    path.touch(mode=0o600)
    path.write_bytes(orjson.dumps({"keys": [key.private_jwk()]}))
    sys.stdout.buffer.write(orjson.dumps(key.public_jwks(), option=orjson.OPT_INDENT_2) + b"\n")
    return 0


def add_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    conformance = commands.add_parser("conformance", help="the payer-to-payer conformance suite (QA)").add_subparsers(
        dest="conformance_command", required=True)
    run = conformance.add_parser("run", help="run the suite against a payer-to-payer FHIR server, as a partner",
                                 parents=[common], epilog=EXIT_STATUS)
    run.add_argument("--fhir-base", required=True, help="the server's FHIR base URL")
    run.add_argument("--client-id", required=True, help="the suite's registered client id at the server")
    run.add_argument("--key", required=True, help="JWKS file with that client's private key (RS384 or ES384)")
    run.add_argument("--organization", required=True,
                     help="the organization that client is registered for (Organization/x or system|value): the "
                          "Consents name it as recipient")
    run.add_argument("--fixtures", required=True, help="the fixture file `conformance seed` wrote")
    run.add_argument("--report", metavar="DIR", help="write conformance.xml (JUnit) and conformance.html here")
    run.add_argument("--only", nargs="+", choices=list(BY_ID), metavar="GROUP",
                     help=f"run only these groups ({', '.join(BY_ID)})")
    run.add_argument("--second-client-id", help="a second client, of another organization (partner isolation)")
    run.add_argument("--second-key", help="its private JWKS file")
    run.add_argument("--packages", help="folder of FHIR IG packages for profile validation (needs Java 17)")
    run.add_argument("--job-timeout", type=float, default=120.0, help="seconds to wait for an async job (120)")
    run.set_defaults(run=_run)
    seeding = conformance.add_parser("seed", help="store the suite's test members and print the fixture file",
                                     parents=[common])
    seeding.add_argument("--upstream", help="the FHIR store's base URL (HAPI behind the server), written directly")
    seeding.add_argument("--fixtures-out", metavar="FILE",
                         help="write the fixture file here (default: print it); without --upstream, load its "
                              "'load' transaction into the store yourself")
    seeding.add_argument("--payer-identifier", required=True,
                         help="system|value naming the server's payer in a Consent's source actor")
    seeding.set_defaults(run=_seed)
    key = conformance.add_parser("key", help="make the suite's client key: private JWKS to --out, public JWKS "
                                             "(to register the client) on standard output")
    key.add_argument("--out", required=True, help="file for the private JWKS (created readable by you only)")
    key.add_argument("--alg", choices=["ES384", "RS384"], default="ES384")
    key.set_defaults(run=_key)

