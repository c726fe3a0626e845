"""Prior authorizations leave when current: pending, in effect now, or with a status change within the window.

A PDex prior authorization is an ExplanationOfBenefit with `use` = `preauthorization`; the PDex profile marks one
only when `use` is absent, since `use` says what the EOB is (a `predetermination` naming the profile is none). PDex
names no status-change element; the latest `base-ext-when-adjudicated` date on any adjudication is the change
date, and `meta.lastUpdated` stands in when there is none (shared/DECISIONS.md 4).
"""
from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Iterator

from sidecar.disclosure.dates import Window, parse_fhir_moment, period_covers
from sidecar.disclosure.sensitivity import Reason

PA_PROFILE = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-priorauthorization"
WHEN_ADJUDICATED = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/base-ext-when-adjudicated"
ITEM_PA_PERIOD = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-itemPreAuthPeriod"
_PENDING_OUTCOMES = frozenset({"queued", "partial"})


def is_prior_authorization(eob: dict) -> bool:
    use = eob.get("use")
    if use is not None:
        return use == "preauthorization"
    meta = eob.get("meta")
    profiles = meta.get("profile") or () if isinstance(meta, dict) else ()
    return any(isinstance(p, str) and p.split("|")[0] == PA_PROFILE for p in profiles)


def is_drug_prior_authorization(eob: dict) -> bool:
    concept = eob.get("type")
    codings = concept.get("coding") or () if isinstance(concept, dict) else ()
    return any(isinstance(c, dict) and c.get("code") == "pharmacy" for c in codings)


def _authorization_periods(eob: dict) -> Iterator[object]:
    yield from eob.get("preAuthRefPeriod") or ()
    for item in eob.get("item") or ():
        for extension in item.get("extension") or () if isinstance(item, dict) else ():
            if isinstance(extension, dict) and extension.get("url") == ITEM_PA_PERIOD:
                yield extension.get("valuePeriod")


def _adjudication_dates(eob: dict) -> Iterator[tuple[str, object]]:
    def from_adjudications(entries: object, where: str) -> Iterator[tuple[str, object]]:
        for adjudication in entries if isinstance(entries, list) else ():
            for extension in adjudication.get("extension") or () if isinstance(adjudication, dict) else ():
                if isinstance(extension, dict) and extension.get("url") == WHEN_ADJUDICATED:
                    yield where, extension.get("valueDateTime") or extension.get("valueDate")

    yield from from_adjudications(eob.get("adjudication"), "adjudication.extension[when-adjudicated]")
    for item in eob.get("item") or ():
        if isinstance(item, dict):
            yield from from_adjudications(item.get("adjudication"), "item.adjudication.extension[when-adjudicated]")


def status_changed(eob: dict, tz: tzinfo) -> tuple[str, str | None]:
    """The element holding the latest status change, and its value."""
    latest: tuple[str, str] | None = None
    latest_moment = None
    for element, value in _adjudication_dates(eob):
        moment = parse_fhir_moment(value, tz)
        if moment is None:
            continue
        comparable = moment if isinstance(moment, datetime) else datetime.combine(moment, datetime.max.time(), tz)
        if latest_moment is None or comparable > latest_moment:
            latest, latest_moment = (element, value), comparable
    if latest is not None:
        return latest
    meta = eob.get("meta")
    return "meta.lastUpdated", meta.get("lastUpdated") if isinstance(meta, dict) else None


def prior_authorization_reason(eob: dict, now: datetime, window: Window, include_drugs: bool) -> Reason | None:
    """None when the prior authorization may leave, else why not."""
    if not include_drugs and is_drug_prior_authorization(eob):
        return Reason("drug-prior-authorization", "type", "pharmacy")
    status = eob.get("status")
    if status == "draft":
        return Reason("prior-authorization-status", "status", status)
    if status == "active":
        if eob.get("outcome") in _PENDING_OUTCOMES:
            return None
        if any(period_covers(period, now, window.tz) for period in _authorization_periods(eob)):
            return None
    element, changed = status_changed(eob, window.tz)
    if changed is not None and window.contains_value(changed):
        return None
    return Reason("prior-authorization-window", element, changed if isinstance(changed, str) else None)
