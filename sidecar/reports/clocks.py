"""`pdex-sidecar report`: the CMS-0057-F clocks, per member and per partner request.

Requesting side, per member and partner: the opt-in, the start of coverage here, the request sent to the partner
(late when more than 7 days after the later of the two), the data received, and the last pull of concurrent
coverage (late past 92 days). Responding side: each partner request this payer answered asynchronously
(`$bulk-member-match`, exports), when it came, when it was answered and how long that took.

Opt-in and coverage start are known for members who opted in on the member page (`sidecar.members`); a member
whose consent was loaded otherwise shows the request and data clocks only.
"""
from __future__ import annotations

import argparse
import csv
import io
import sys
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import jinja2

from sidecar.config import load_settings
from sidecar.store import jobs
from sidecar.store.exchanges import exchange_times
from sidecar.store.optins import OptIn, all_optins
from sidecar.store.db import Store, open_store

REQUEST_WITHIN = timedelta(days=7)
CONCURRENT_WITHIN = timedelta(days=92)
TEMPLATE = Path(__file__).parent / "clocks.html"


@dataclass(frozen=True)
class Row:
    side: str                       # "requesting" or "responding"
    partner: str                    # the partner's name, or the requesting organization
    member: str = ""
    opted_in: str = ""
    coverage_start: str = ""
    request_due: str = ""
    requested: str = ""
    request_late: str = ""          # "late" or ""
    data_received: str = ""
    last_pull: str = ""
    pull_late: str = ""
    request_kind: str = ""          # responding side: bulk-member-match, export
    request_received: str = ""
    answered: str = ""
    answer_seconds: str = ""


def _at(moment: float | None) -> datetime | None:
    return datetime.fromtimestamp(moment, timezone.utc) if moment else None


def _text(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else ""


def _day(text: str | None) -> datetime | None:
    try:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), timezone.utc) if text else None
    except ValueError:
        return None


def requesting_rows(store: Store, now: datetime) -> list[Row]:
    optins: dict[tuple[str, str], OptIn] = {}
    for row in all_optins(store):
        # The first opt-in starts the clock; a plan that is not a partner is member services' to request.
        partner = row.partner or f"other: {row.other_plan or 'not named'}"
        optins.setdefault((partner, row.member), row)
    times = exchange_times(store)
    rows = []
    for partner, member in sorted(set(optins) | set(times)):
        optin, clock = optins.get((partner, member)), times.get((partner, member)) or {}
        opted_in = _at(optin.opted_in_at) if optin else None
        started = _day(optin.coverage_start) if optin else None
        due = max(m for m in (opted_in, started) if m) + REQUEST_WITHIN if (opted_in or started) else None
        requested, received = _at(clock.get("first_requested_at")), _at(clock.get("first_received_at"))
        late = due is not None and ((requested or now) > due)
        concurrent = optin is not None and optin.withdrawn_at is None and (
            not optin.prior_end or (_day(optin.prior_end) or now) >= now)
        last_pull = _at(clock.get("last_pulled_at")) or received
        pull_late = concurrent and received is not None and now - (last_pull or received) > CONCURRENT_WITHIN
        rows.append(Row("requesting", partner, member, _text(opted_in), optin.coverage_start or "" if optin else "",
                        _text(due), _text(requested), "late" if late else "", _text(received), _text(last_pull),
                        "late" if pull_late else ""))
    return rows


def responding_rows(store: Store) -> list[Row]:
    rows = []
    for job in jobs.answered_jobs(store):
        rows.append(Row("responding", job["organization"], request_kind=job["kind"],
                        request_received=_text(_at(job["created_at"])), answered=_text(_at(job["updated_at"])),
                        answer_seconds=f"{job['updated_at'] - job['created_at']:.1f}"))
    return rows


def in_range(row: Row, start: datetime | None, end: datetime | None) -> bool:
    """A member's row counts by when its clock started (the due date's week before), a request by its arrival."""
    moment_text = row.request_received or row.opted_in or row.requested
    moment = datetime.fromisoformat(moment_text) if moment_text else None
    if moment is None:
        return start is None and end is None
    return (start is None or moment >= start) and (end is None or moment < end)


def report(store: Store, start: datetime | None = None, end: datetime | None = None,
           now: datetime | None = None) -> list[Row]:
    now = now or datetime.now(timezone.utc)
    return [row for row in requesting_rows(store, now) + responding_rows(store) if in_range(row, start, end)]


def as_csv(rows: list[Row]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[f.name for f in fields(Row)], lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(row) for row in rows)
    return out.getvalue()


def as_html(rows: list[Row], generated: datetime) -> str:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE.parent)), autoescape=True)
    return environment.get_template(TEMPLATE.name).render(
        requesting=[r for r in rows if r.side == "requesting"], responding=[r for r in rows if r.side == "responding"],
        generated=generated.isoformat(timespec="seconds"))


def _day_argument(text: str) -> datetime:
    day = _day(text)
    if day is None:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}")
    return day


def _run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    store = open_store(settings.store_url, settings.data_dir)
    try:
        now = datetime.now(timezone.utc)
        end = args.to + timedelta(days=1) if args.to else None  # --to names the last day included
        rows = report(store, args.start, end, now)
    finally:
        store.close()
    sys.stdout.write(as_html(rows, now) if args.format == "html" else as_csv(rows))
    return 0


def add_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "report", parents=[common], help="the rule's clocks: opt-in, coverage start, request (late after 7 days), "
                                         "data received, concurrent pulls (late after 92 days), answer times")
    parser.add_argument("--from", dest="start", type=_day_argument, help="first day included (YYYY-MM-DD)")
    parser.add_argument("--to", type=_day_argument, help="last day included (YYYY-MM-DD)")
    parser.add_argument("--format", choices=["csv", "html"], default="csv")
    parser.set_defaults(run=_run)
