"""The conformance suite QA teams run: seeded into the test HAPI, it passes against the product and fails against
the same HAPI without the sidecar, naming the failing groups; both runs write their reports."""
from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from sidecar.conformance import seed
from sidecar.conformance.command import execute
from sidecar.conformance.context import PARTNER_SCOPE, Client, Target
from sidecar.conformance.groups import BY_ID
from sidecar.conformance.model import Outcome, Result
from tests.conftest import THIS_PAYER
from tests.smart import register_client

pytestmark = pytest.mark.hapi


@dataclass
class Run:
    status: int
    results: list[Result]
    reports: Path
    lines: list[str]
    seconds: float


def run_suite(target: Target, reports: Path) -> Run:
    lines: list[str] = []
    started = time.monotonic()
    status, results = execute(target, report_dir=reports, say=lines.append)
    return Run(status, results, reports, lines, time.monotonic() - started)


@pytest.fixture(scope="module")
def fixtures(hapi):
    import asyncio
    found = seed.build(THIS_PAYER)
    asyncio.run(seed.store(hapi.base_url, found))
    return found


@pytest.fixture(scope="module")
def clients(sidecar) -> tuple[Client, Client, str]:
    first = register_client(sidecar.data_dir, scopes=PARTNER_SCOPE)
    second = register_client(sidecar.data_dir, scopes=PARTNER_SCOPE, alg="RS384")  # the other algorithm
    time.sleep(0.5)  # the sidecar notices new clients within state_refresh_seconds
    return Client(first.client_id, first.key), Client(second.client_id, second.key), first.organization


@pytest.fixture(scope="module")
def profile_validator(request):
    """The session's validator, or None where Java is missing (the profile group then reports itself skipped)."""
    try:
        return request.getfixturevalue("validator")
    except pytest.skip.Exception:
        return None


@pytest.fixture(scope="module")
def against_product(sidecar, fixtures, clients, profile_validator, tmp_path_factory) -> Run:
    first, second, organization = clients
    target = Target(sidecar.fhir_base, first, organization, fixtures, second, validator=profile_validator,
                    timeout=60)
    run = run_suite(target, tmp_path_factory.mktemp("conformance-product"))
    print("\n".join(run.lines))
    return run


@pytest.fixture(scope="module")
def against_plain_hapi(hapi, fixtures, clients, tmp_path_factory) -> Run:
    first, second, organization = clients
    target = Target(hapi.base_url, first, organization, fixtures, second, timeout=10)
    return run_suite(target, tmp_path_factory.mktemp("conformance-hapi"))


def test_the_suite_passes_against_the_product(against_product, profile_validator):
    failed = [f"{r.group.id}/{r.check.name}: {r.message}" for r in against_product.results
              if r.outcome is Outcome.FAILED]
    assert not failed
    assert against_product.status == (0 if profile_validator else 3), "3: incomplete, the profile group skipped"
    print(f"conformance against the product: {against_product.seconds:.1f} s")


def test_nothing_is_skipped_against_the_product_with_two_clients_and_the_validator(against_product,
                                                                                 profile_validator):
    if profile_validator is None:
        pytest.skip("Java is not installed: the profile group cannot run")
    assert [r.check.name for r in against_product.results if r.outcome is Outcome.SKIPPED] == []


@pytest.mark.parametrize("run_name", ["against_product", "against_plain_hapi"])
def test_the_reports_list_every_group(request, run_name):
    run: Run = request.getfixturevalue(run_name)
    suites = ET.parse(run.reports / "conformance.xml").getroot()
    assert [s.get("name") for s in suites.iter("testsuite")] == list(BY_ID)
    assert sum(int(s.get("tests")) for s in suites.iter("testsuite")) == len(run.results)
    page = (run.reports / "conformance.html").read_text()
    assert all(f"id='{group}'" in page for group in BY_ID)
    assert "<script" not in page and "http-equiv" not in page


def test_against_plain_hapi_the_suite_fails_naming_the_failing_groups(against_plain_hapi):
    assert against_plain_hapi.status == 1
    verdict = next(line for line in against_plain_hapi.lines if "FAILED groups: " in line)
    named = verdict.split("FAILED groups: ")[1].split(", ")
    assert {"smart", "capability", "member-match", "bulk-member-match", "group-search", "export", "isolation",
            "disclosure"} <= set(named)
    failures = ET.parse(against_plain_hapi.reports / "conformance.xml").getroot()
    assert any(f.text and "GET " in f.text for f in failures.iter("failure")), "failures show the request"
