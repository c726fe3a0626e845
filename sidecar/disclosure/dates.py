"""FHIR dates against a look-back window counted from the request time.

A FHIR date may be partial (`2021`, `2021-11`, `2021-11-23`) or a dateTime with a time and an offset. A partial date
is compared as a calendar date in the payer's time zone, taking its latest day (a service "in 2021-11" may have been
on the 30th); a dateTime is an instant. The window starts the same calendar day N years before the request, in
the payer's time zone (29 February falls back to the 28th), so "exactly five years ago" is inside: a date on that
day, and a dateTime at any hour of it once converted to the payer's time zone.
"""
from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def parse_fhir_moment(value: object, tz: tzinfo) -> date | datetime | None:
    """A FHIR date → its latest calendar day (a `date`); a dateTime/instant → an aware `datetime`; junk → None."""
    if not isinstance(value, str) or len(value) < 4:
        return None
    match = _DATE.match(value)
    try:
        if match:
            year = int(match[1])
            month = int(match[2]) if match[2] else 12
            day = int(match[3]) if match[3] else calendar.monthrange(year, month)[1]
            return date(year, month, day)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


def years_before(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:  # 29 February in a year that has none
        return moment.replace(year=moment.year - years, day=28)


def months_before(moment: datetime, months: int) -> datetime:
    year, month = divmod(moment.year * 12 + moment.month - 1 - months, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


@dataclass(frozen=True)
class Window:
    """Everything from the first day on, in the payer's time zone: `start` is that day's first instant."""
    start: datetime
    start_day: date
    tz: tzinfo
    # ISO days two days either side of the start: no offset moves a value's written day across them, so a value
    # whose day is outside that band is decided by comparing text, without parsing (most values are).
    clearly_inside: str
    clearly_outside: str

    @classmethod
    def since(cls, start: datetime, tz: tzinfo) -> "Window":
        """The window from the calendar day `start` falls on: its earlier hours count too, since the rule is by day."""
        day = start.astimezone(tz).date()
        return cls(datetime.combine(day, time.min, tz), day, tz, (day + timedelta(days=2)).isoformat(),
                   (day - timedelta(days=2)).isoformat())

    def contains(self, moment: date | datetime) -> bool:
        if isinstance(moment, datetime):
            return moment >= self.start
        return moment >= self.start_day

    def contains_value(self, value: object) -> bool:
        if type(value) is str and len(value) >= 10 and value[4] == "-" and value[7] == "-":
            day = value[:10]
            if day >= self.clearly_inside:
                return True
            if day < self.clearly_outside:
                return False
        moment = parse_fhir_moment(value, self.tz)
        return moment is not None and self.contains(moment)


def lookback_window(request_time: datetime, years: int, tz: tzinfo) -> Window:
    return Window.since(years_before(request_time.astimezone(tz), years), tz)


def months_window(request_time: datetime, months: int, tz: tzinfo) -> Window:
    return Window.since(months_before(request_time.astimezone(tz), months), tz)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def period_covers(period: object, moment: datetime, tz: tzinfo) -> bool:
    """Whether a FHIR Period (open ends allowed) includes `moment`; a partial end date covers its whole last day."""
    if not isinstance(period, dict) or not (period.get("start") or period.get("end")):
        return False
    start = parse_fhir_moment(period.get("start"), tz)
    end = parse_fhir_moment(period.get("end"), tz)
    local = moment.astimezone(tz)
    if start is not None and not isinstance(start, datetime):
        start = datetime.combine(_first_day(period.get("start"), start), datetime.min.time(), tz)
    if end is not None and not isinstance(end, datetime):
        end = datetime.combine(end, datetime.min.time(), tz) + timedelta(days=1)
    return (start is None or start <= local) and (end is None or local <= end)


def _first_day(value: str, latest: date) -> date:
    """The first day a partial date can mean (`2021` → 1 January)."""
    match = _DATE.match(value)
    if match and not match[2]:
        return date(latest.year, 1, 1)
    if match and not match[3]:
        return date(latest.year, latest.month, 1)
    return latest
