"""Prior authorizations leave when current: pending, in effect now, or with a status change within the window.
Denied ones never do (CMS-0057-F).

A PDex prior authorization is an ExplanationOfBenefit with `use` = `preauthorization`; the PDex profile marks one
only when `use` is absent, since `use` says what the EOB is (a `predetermination` naming the profile is none). PDex
names no status-change element; the latest `base-ext-when-adjudicated` date on any adjudication is the change
date, and `meta.lastUpdated` stands in when there is none (shared/DECISIONS.md 4).

A prior authorization is denied when its `outcome` is `error`, when a header adjudication says so, or when every
item's adjudications do. PDex (and PAS) record the review decision in the `reviewAction` extension, coded in X12 306
(A3 "Not Certified" is the denial); an adjudication may also carry the category `denied` (PDex's payer
adjudication status). An item without a review action whose adjudications give a `denialreason` and approve
nothing (no allowed units, no eligible or benefit amount) is denied too. A partly denied prior authorization is
partly in effect, so it is not withheld.
"""
from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Iterator

from sidecar.disclosure.dates import Window, parse_fhir_moment, period_covers
from sidecar.disclosure.sensitivity import Reason

PA_PROFILE = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-priorauthorization"
WHEN_ADJUDICATED = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/base-ext-when-adjudicated"
ITEM_PA_PERIOD = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-itemPreAuthPeriod"
REVIEW_ACTIONS = frozenset({"http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/extension-reviewAction",
                            "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-reviewAction"})
# The code sub-extension is a profiled extension, so its url is that profile's; some senders write the slice name.
REVIEW_ACTION_CODES = frozenset({"http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/extension-reviewActionCode",
                                 "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-reviewActionCode",
                                 "code"})
NOT_CERTIFIED = "A3"
"""X12 306 "Not Certified": the review's denial (its value set is a required binding, so the code alone says it)."""
DENIED = "denied"
DENIAL_REASON = "denialreason"
APPROVING = frozenset({"allowedunits", "eligible", "benefit"})
_PENDING_OUTCOMES = frozenset({"queued", "partial"})


def is_prior_authorization(eob: dict) -> bool:
    use = eob.get("use")
    if use is not None:
        return use == "preauthorization"
    meta = eob.get("meta")
    profiles = meta.get("profile") or () if isinstance(meta, dict) else ()
    return any(isinstance(p, str) and p.split("|")[0] == PA_PROFILE for p in profiles)


def _codes(concept: object) -> list[object]:
    codings = concept.get("coding") or () if isinstance(concept, dict) else ()
    return [c.get("code") for c in codings if isinstance(c, dict)]


def is_drug_prior_authorization(eob: dict) -> bool:
    return "pharmacy" in _codes(eob.get("type"))


def _review_action_codes(adjudication: dict) -> list[object]:
    codes: list[object] = []
    for extension in adjudication.get("extension") or ():
        if isinstance(extension, dict) and extension.get("url") in REVIEW_ACTIONS:
            for part in extension.get("extension") or ():
                if isinstance(part, dict) and part.get("url") in REVIEW_ACTION_CODES:
                    codes += _codes(part.get("valueCodeableConcept"))
    return codes


def _denied(element: str, code: str) -> Reason:
    return Reason("prior-authorization-denied", element, code)


def _adjudications(owner: dict) -> list[tuple[int, dict]]:
    entries = owner.get("adjudication")
    return [(i, a) for i, a in enumerate(entries) if isinstance(a, dict)] if isinstance(entries, list) else []


def _said_denied(owner: dict, where: str) -> Reason | None:
    """An adjudication of the EOB or of an item that says "denied": its review action or its category. Category
    codes are compared without their system, as CARIN's and PDex's `denied` mean the same."""
    for i, adjudication in _adjudications(owner):
        if NOT_CERTIFIED in _review_action_codes(adjudication):
            return _denied(f"{where}adjudication[{i}].extension[reviewAction]", NOT_CERTIFIED)
        if DENIED in _codes(adjudication.get("category")):
            return _denied(f"{where}adjudication[{i}].category", DENIED)
    return None


def _item_denied(item: dict, where: str) -> Reason | None:
    said = _said_denied(item, where)
    if said is not None:
        return said
    if any(_review_action_codes(adjudication) for _, adjudication in _adjudications(item)):
        return None  # the review decided, and not to deny
    categories = {code for _, adjudication in _adjudications(item) for code in _codes(adjudication.get("category"))}
    if DENIAL_REASON in categories and not categories & APPROVING:
        return _denied(f"{where}adjudication", DENIAL_REASON)
    return None


def denial(eob: dict) -> Reason | None:
    """Why the prior authorization counts as denied as a whole, or None."""
    if eob.get("outcome") == "error":
        return _denied("outcome", "error")
    said = _said_denied(eob, "")
    if said is not None:
        return said
    items = [(i, item) for i, item in enumerate(eob.get("item") or ()) if isinstance(item, dict)]
    denials = [_item_denied(item, f"item[{i}].") for i, item in items]
    return denials[0] if denials and all(denials) else None


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
    denied = denial(eob)
    if denied is not None:
        return denied
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
