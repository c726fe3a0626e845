"""The conformance suite's reports: JUnit XML counts and failure detail, and an HTML page that shows answers as
text, never as markup."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from sidecar.conformance.model import Check, Exchange, Group, Outcome, Result
from sidecar.conformance.report import html, junit
from sidecar.conformance.runner import failing_groups, skipping_groups


async def nothing(ctx) -> None:
    return None


GROUP = Group("demo", "Demo group", "Spec §1")
REQUIRED, OPTIONAL = Check("required", "a SHALL", nothing), Check("optional", "a MAY", nothing, required=False)
HOSTILE = Exchange("GET", "http://x/fhir/Patient/1", "", 200, {"Content-Type": "text/html"},
                   "<script>alert(1)</script>")


def results(*outcomes: tuple[Check, Outcome]) -> list[Result]:
    return [Result(GROUP, check, outcome, "why" if outcome is not Outcome.PASSED else "", 0.5,
                   HOSTILE if outcome is Outcome.FAILED else None) for check, outcome in outcomes]


def test_junit_has_a_testsuite_per_group_with_counts_and_the_failing_exchange(tmp_path):
    junit.write(results((REQUIRED, Outcome.FAILED), (OPTIONAL, Outcome.FAILED), (REQUIRED, Outcome.SKIPPED)),
                tmp_path / "r.xml", "http://x/fhir")
    suite = ET.parse(tmp_path / "r.xml").getroot().find("testsuite")
    assert (suite.get("name"), suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("demo", "3", "2", "1")
    failures = suite.findall("testcase/failure")
    assert [f.get("type") for f in failures] == ["required", "optional"]
    assert "GET http://x/fhir/Patient/1" in failures[0].text and "--> 200" in failures[0].text


def test_html_shows_an_answer_as_text(tmp_path):
    html.write(results((REQUIRED, Outcome.FAILED)), tmp_path / "r.html", "http://x/fhir")
    page = (tmp_path / "r.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "FAILED" in page


def test_an_optional_failure_fails_no_group_a_required_skip_makes_the_run_incomplete():
    run = results((REQUIRED, Outcome.PASSED), (OPTIONAL, Outcome.FAILED), (REQUIRED, Outcome.SKIPPED))
    assert failing_groups(run) == [] and skipping_groups(run) == ["demo"]
    assert skipping_groups(results((OPTIONAL, Outcome.SKIPPED))) == []
