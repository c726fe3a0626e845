"""The five-year window on dates of service: its boundary days, time zones, partial dates and open periods."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from sidecar.disclosure.rules import REGULAR, DisclosureRules
from sidecar.disclosure.sensitivity import SensitiveData

SENSITIVE_DATA = SensitiveData.load()
NOON = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
NEW_YORK = ZoneInfo("America/New_York")


def condition(**dates) -> dict:
    return {"resourceType": "Condition", "id": "c", "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}]}, **dates}


def released(resource: dict, now: datetime = NOON, tz=timezone.utc) -> bool:
    rules = DisclosureRules(SENSITIVE_DATA, tz)
    return rules.decide(resource, rules.context(now, {"p1": REGULAR})).released


@pytest.mark.parametrize("onset, expected", [
    ("2021-11-23", True),    # exactly five years before the request day
    ("2021-11-22", False),   # a day before
    ("2021-11-24", True),    # a day after
])
def test_date_of_service_on_the_boundary_days(onset, expected):
    assert released(condition(onsetDateTime=onset)) is expected


@pytest.mark.parametrize("onset, expected", [
    ("2021-11-23T12:00:00Z", True),        # the very instant five years back
    ("2021-11-23T11:59:59Z", True),        # earlier that day: the first day counts whole
    ("2021-11-23T00:00:00Z", True),        # its first instant
    ("2021-11-22T23:59:59Z", False),       # the day before
])
def test_a_date_time_on_the_first_day_of_the_window_is_inside_at_any_hour(onset, expected):
    assert released(condition(onsetDateTime=onset)) is expected


@pytest.mark.parametrize("onset, expected", [
    ("2021-11-22T20:30:00-05:00", True),   # 01:30 UTC on the 23rd
    ("2021-11-23T01:30:00+05:00", False),  # 20:30 UTC on the 22nd
])
def test_a_date_time_counts_by_its_day_in_the_payers_time_zone_whatever_its_offset(onset, expected):
    assert released(condition(onsetDateTime=onset)) is expected


@pytest.mark.parametrize("onset, expected", [
    ("2021-11-23T05:00:00Z", True),    # midnight in New York, the window's first day there
    ("2021-11-23T04:59:59Z", False),   # still 22 November in New York
    ("2021-11-23T00:30:00-05:00", True),
])
def test_the_first_day_starts_at_midnight_in_the_configured_service_date_timezone(onset, expected):
    assert released(condition(onsetDateTime=onset), NOON, NEW_YORK) is expected


def test_a_plain_date_is_a_calendar_day_in_the_payers_time_zone():
    # 03:00 UTC on 23 November is still 22 November in New York, so the window starts on 22 November 2021 there.
    early = datetime(2026, 11, 23, 3, 0, tzinfo=timezone.utc)
    assert released(condition(onsetDateTime="2021-11-22"), early, NEW_YORK)
    assert not released(condition(onsetDateTime="2021-11-22"), early, timezone.utc)


def test_a_request_on_29_february_counts_back_to_28_february():
    leap = datetime(2028, 2, 29, 12, 0, tzinfo=timezone.utc)
    assert released(condition(onsetDateTime="2023-02-28"), leap)
    assert not released(condition(onsetDateTime="2023-02-27"), leap)


@pytest.mark.parametrize("onset, expected", [("2021", True), ("2021-11", True), ("2020", False), ("2021-10", False)])
def test_a_partial_date_counts_by_its_latest_day(onset, expected):
    assert released(condition(onsetDateTime=onset)) is expected


def test_any_service_date_inside_the_window_is_enough():
    assert released(condition(onsetDateTime="2010-01-01", abatementDateTime="2024-05-01"))


OLD_SERVICE_RECENT_RECORD = [
    ({"resourceType": "DocumentReference", "context": {"period": {"start": "2020-06-01", "end": "2020-06-01"}},
      "date": "2026-11-20T09:00:00Z"}, "context.period.end"),
    ({"resourceType": "Observation", "effectiveDateTime": "2020-06-01", "issued": "2026-11-20T09:00:00Z"},
     "effectiveDateTime"),
    ({"resourceType": "DiagnosticReport", "effectivePeriod": {"start": "2020-05-01", "end": "2020-06-01"},
      "issued": "2026-11-20T09:00:00Z"}, "effectivePeriod.end"),
    ({"resourceType": "Condition", "onsetDateTime": "2020-06-01", "recordedDate": "2026-11-20"}, "onsetDateTime"),
]


@pytest.mark.parametrize("resource, service_element", OLD_SERVICE_RECENT_RECORD,
                         ids=[r["resourceType"] for r, _ in OLD_SERVICE_RECENT_RECORD])
def test_a_recent_record_keeping_date_does_not_bring_an_old_service_inside(resource, service_element):
    rules = DisclosureRules(SENSITIVE_DATA, timezone.utc)
    reason = rules.decide({**resource, "subject": {"reference": "Patient/p1"}},
                          rules.context(NOON, {"p1": REGULAR})).reason
    assert reason.rule == "five-year-lookback" and reason.element == service_element


@pytest.mark.parametrize("resource_type, element", [
    ("DocumentReference", "date"), ("Observation", "issued"), ("DiagnosticReport", "issued"),
    ("Condition", "recordedDate"),
])
def test_a_record_keeping_date_stands_in_when_there_is_no_service_date(resource_type, element):
    def dated(value: str) -> dict:
        return {"resourceType": resource_type, "subject": {"reference": "Patient/p1"}, element: value}
    assert released(dated("2026-11-20"))
    assert not released(dated("2019-01-01"))


def test_a_period_counts_by_its_end():
    assert released(condition(onsetPeriod={"start": "2019-01-01", "end": "2022-01-01"}))
    assert not released(condition(onsetPeriod={"start": "2019-01-01", "end": "2021-01-01"}))


def test_a_period_that_has_not_ended_is_current():
    encounter = {"resourceType": "Encounter", "subject": {"reference": "Patient/p1"}, "status": "in-progress",
                 "period": {"start": "2015-03-01"}}
    assert released(encounter)


def test_dated_types_without_any_service_date_are_withheld():
    rules = DisclosureRules(SENSITIVE_DATA, timezone.utc)
    decision = rules.decide({"resourceType": "Observation", "subject": {"reference": "Patient/p1"}},
                            rules.context(NOON, {"p1": REGULAR}))
    assert not decision.released and decision.reason.rule == "no-service-date"


def test_allergies_without_a_date_pass():
    assert released({"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/p1"}})


def test_types_without_a_date_of_service_pass_at_any_age():
    assert released({"resourceType": "Coverage", "beneficiary": {"reference": "Patient/p1"}, "status": "active",
                     "period": {"start": "2001-01-01", "end": "2002-01-01"}})


def test_the_window_length_is_a_setting():
    rules = DisclosureRules(SENSITIVE_DATA, timezone.utc, lookback_years=7)
    assert rules.decide(condition(onsetDateTime="2020-01-01"), rules.context(NOON, {"p1": REGULAR})).released


def test_a_withheld_date_is_explained_by_element_and_value():
    rules = DisclosureRules(SENSITIVE_DATA, timezone.utc)
    reason = rules.decide(condition(onsetDateTime="2019-06-01"), rules.context(NOON, {"p1": REGULAR})).reason
    assert reason.as_dict() == {"rule": "five-year-lookback", "element": "onsetDateTime", "code": "2019-06-01"}
