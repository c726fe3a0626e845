"""`pdex-sidecar report`: a request sent more than 7 days after the later of opt-in and coverage start is late, one
within the week is not; concurrent coverage not pulled for 92 days is late; partner requests show how long they
took to answer."""
from __future__ import annotations

import csv
import io
import types
from datetime import datetime, timedelta, timezone

import pytest

from sidecar.cli import main
from sidecar.store import exchanges as ex
from sidecar.store import jobs
from sidecar.store.sqlite import SqliteStore
from sidecar.store.optins import record_optin

LEASE = jobs.Lease("test", 30)

NOW = datetime.now(timezone.utc)
DAY = 86400.0


def at(days_ago: float) -> float:
    return (NOW - timedelta(days=days_ago)).timestamp()


def sent(store: SqliteStore, monkeypatch, member: str, days_ago: float, state: str = ex.MATCHED) -> None:
    monkeypatch.setattr(ex, "time", types.SimpleNamespace(time=lambda: at(days_ago)))
    ex.record_outcome(store, "payer-a", member, state)


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("SIDECAR_DATA_DIR", str(tmp_path))
    opened = SqliteStore(tmp_path)
    yield opened
    opened.close()


def rows_of(capsys, *arguments: str) -> dict[str, dict]:
    assert main(["report", *arguments]) == 0
    return {row["member"] or row["request_kind"]: row for row in csv.DictReader(io.StringIO(capsys.readouterr().out))}


def test_a_member_requested_ten_days_after_opting_in_is_late_and_one_requested_the_next_day_is_not(
        store, monkeypatch, capsys):
    record_optin(store, "late-1", "payer-a", None, "regular", "Consent/1", "Coverage/1", None, at=at(30))
    sent(store, monkeypatch, "late-1", days_ago=20)
    start = (NOW - timedelta(days=4)).date().isoformat()
    record_optin(store, "on-time-2", "payer-a", None, "regular", "Consent/2", "Coverage/2", start, at=at(10))
    sent(store, monkeypatch, "on-time-2", days_ago=3)
    rows = rows_of(capsys)
    assert rows["late-1"]["request_late"] == "late"
    assert rows["on-time-2"]["request_late"] == ""
    assert rows["on-time-2"]["request_due"].startswith((NOW + timedelta(days=3)).date().isoformat())


def test_an_opt_in_never_requested_is_late_once_its_week_is_over(store, capsys):
    record_optin(store, "forgotten", "payer-a", None, "regular", None, None, None, at=at(8))
    record_optin(store, "fresh", "payer-a", None, "regular", None, None, None, at=at(2))
    rows = rows_of(capsys)
    assert (rows["forgotten"]["request_late"], rows["fresh"]["request_late"]) == ("late", "")


def test_concurrent_coverage_last_pulled_more_than_92_days_ago_is_late(store, monkeypatch, capsys):
    for member in ("stale", "recent"):
        record_optin(store, member, "payer-a", None, "regular", None, None, None, at=at(200))
        sent(store, monkeypatch, member, days_ago=199)
        ex.record_ingest(store, "payer-a", member, 3, None, [])
    ex.record_pulled(store, "payer-a", ["stale"], at=at(93))
    ex.record_pulled(store, "payer-a", ["recent"], at=at(10))
    rows = rows_of(capsys)
    assert (rows["stale"]["pull_late"], rows["recent"]["pull_late"]) == ("late", "")


def test_a_partner_request_shows_how_long_it_took_to_answer(store, capsys):
    job = jobs.create_job(store, jobs.BULK_MATCH, "client-x", "Organization/payer-b", "https://x/fhir", {}, LEASE)
    store.execute("UPDATE jobs SET state = ?, updated_at = ? WHERE id = ?", [jobs.COMPLETE, job.created_at + 12.5, job.id])
    row = rows_of(capsys)[jobs.BULK_MATCH]
    assert (row["side"], row["partner"], row["answer_seconds"]) == ("responding", "Organization/payer-b", "12.5")


def test_from_and_to_keep_the_members_whose_clock_started_in_those_days(store, capsys):
    record_optin(store, "old", "payer-a", None, "regular", None, None, None, at=at(40))
    record_optin(store, "new", "payer-a", None, "regular", None, None, None, at=at(5))
    since = (NOW - timedelta(days=10)).date().isoformat()
    assert set(rows_of(capsys, "--from", since, "--to", NOW.date().isoformat())) == {"new"}


def test_the_html_report_flags_the_late_member(store, monkeypatch, capsys):
    record_optin(store, "late-1", "payer-a", None, "regular", None, None, None, at=at(30))
    sent(store, monkeypatch, "late-1", days_ago=20)
    assert main(["report", "--format", "html"]) == 0
    page = capsys.readouterr().out
    assert page.count('class="late">LATE') == 1 and "Patient/late-1" in page
