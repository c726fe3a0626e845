"""Which resource types a partner payer may receive, and each one's date of service (shared/specs/pdex-hrex.md §4.5).

PDex names no normative "date of service" per type; the table below follows the US Core date search parameters
and the PDex claim mappings. A resource is inside the look-back window when any of its service dates is; a Period
counts by its end, and a Period that has started but not ended is ongoing, so it is current. Record-keeping dates
(`DocumentReference.date`, `Observation.issued`, `DiagnosticReport.issued`, `Condition.recordedDate`) stand in only
when the resource has no service date: a 6-year-old visit note indexed today is 6 years old.

`UNDATED_PASS` lists the dated types whose date is often absent in real data (allergies, care teams, goals); those
pass when they carry no date at all. Any other dated type with no service date is withheld: nothing shows it
falls inside the window. Types mapped to `None` have no date of service (administrative or reference data).
"""
from __future__ import annotations

from typing import Callable, Iterator

ONGOING = "ongoing"
"""A service date that is still running (a Period with a start and no end)."""

Extract = Callable[[dict], Iterator[tuple[str, object]]]
"""Yields (element name, value) pairs: a date/dateTime string, or ONGOING."""


def _choice(*prefixes: str) -> Extract:
    """Each `prefix[x]` element: a date/dateTime, or a Period."""
    def extract(resource: dict) -> Iterator[tuple[str, object]]:
        for prefix in prefixes:
            for suffix in ("DateTime", "Date", "Instant"):
                value = resource.get(prefix + suffix)
                if value is not None:
                    yield prefix + suffix, value
            period = resource.get(prefix + "Period")
            if period is not None:
                yield from _period(prefix + "Period", period)
    return extract


def _period(element: str, period: object) -> Iterator[tuple[str, object]]:
    if isinstance(period, dict):
        if period.get("end"):
            yield element + ".end", period["end"]
        elif period.get("start"):
            yield element + ".start", ONGOING


def _plain(*names: str) -> Extract:
    """Elements that are a date/dateTime (`recordedDate`) or a Period (`period`), by name."""
    def extract(resource: dict) -> Iterator[tuple[str, object]]:
        for name in names:
            value = resource.get(name)
            if isinstance(value, dict):
                yield from _period(name, value)
            elif value is not None:
                yield name, value
    return extract


def _combine(*extractors: Extract) -> Extract:
    def extract(resource: dict) -> Iterator[tuple[str, object]]:
        for extractor in extractors:
            yield from extractor(resource)
    return extract


def _fallback(service: Extract, record_keeping: Extract) -> Extract:
    """The service dates; only when there are none, the dates that record when the data was written down."""
    def extract(resource: dict) -> Iterator[tuple[str, object]]:
        yield from list(service(resource)) or record_keeping(resource)
    return extract


def _claim_dates(resource: dict) -> Iterator[tuple[str, object]]:
    yield from _period("billablePeriod", resource.get("billablePeriod"))
    for item in resource.get("item") or ():
        if isinstance(item, dict):
            for element, value in _choice("serviced")(item):
                yield "item." + element, value


def _document_period(resource: dict) -> Iterator[tuple[str, object]]:
    context = resource.get("context")
    if isinstance(context, dict):
        yield from _period("context.period", context.get("period"))


def _goal_dates(resource: dict) -> Iterator[tuple[str, object]]:
    yield from _choice("start")(resource)
    if resource.get("statusDate") is not None:
        yield "statusDate", resource["statusDate"]
    for target in resource.get("target") or ():
        if isinstance(target, dict):
            for element, value in _choice("due")(target):
                yield "target." + element, value


SERVICE_DATES: dict[str, Extract | None] = {
    "AllergyIntolerance": _combine(_plain("recordedDate"), _choice("onset"), _plain("lastOccurrence")),
    "CarePlan": _plain("period"),
    "CareTeam": _plain("period"),
    "Condition": _fallback(_choice("onset", "abatement"), _plain("recordedDate")),
    "DiagnosticReport": _fallback(_choice("effective"), _plain("issued")),
    "DocumentReference": _fallback(_document_period, _plain("date")),
    "Encounter": _plain("period"),
    "ExplanationOfBenefit": _claim_dates,
    "Goal": _goal_dates,
    "Immunization": _choice("occurrence"),
    "MedicationDispense": _plain("whenHandedOver", "whenPrepared"),
    "MedicationRequest": _plain("authoredOn"),
    "Observation": _fallback(_choice("effective"), _plain("issued")),
    "Procedure": _choice("performed"),
    "QuestionnaireResponse": _plain("authored"),
    "ServiceRequest": _combine(_choice("occurrence"), _plain("authoredOn")),
    "Coverage": None,
    "Device": None,
    "Patient": None,
    "RelatedPerson": None,
    "Specimen": None,
}

UNDATED_PASS = frozenset({"AllergyIntolerance", "CareTeam", "Goal"})

DISCLOSED_MEMBER_TYPES = frozenset(SERVICE_DATES)
"""Member-data types that leave to partner payers; others (Claim, ClaimResponse, Consent...) never do."""
