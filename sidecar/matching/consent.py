"""Whether a member's Consent (HRex profile) can be honoured for this requester now (shared/DECISIONS.md 2–3).

Honourable when: status `active`; `provision.type` `permit`; `provision.period` covers the request time; a
`source` actor (role performer) names this payer; a `recipient` actor (role IRCP) names the requesting client's
organization; and `policy` is `#regular` or `#sensitive` (both can be honoured: the disclosure filter segments
sensitive data). Actors are recognised by literal reference or by identifier (`system|value`).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from sidecar.disclosure.dates import parse_fhir_moment
from sidecar.disclosure.rules import REGULAR, SENSITIVE, policy_of

HREX_POLICY = "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-hrex-consent.html#"
SOURCE_ROLE = "performer"
RECIPIENT_ROLE = "IRCP"


@dataclass(frozen=True)
class ConsentTerms:
    policy: str                  # REGULAR or SENSITIVE
    policy_uri: str
    valid_from: datetime
    valid_until: datetime


def reference_names(reference: object) -> set[str]:
    """How an actor's reference can name an organization: `Organization/x`, or `system|value`."""
    if not isinstance(reference, dict):
        return set()
    names = set()
    if isinstance(reference.get("reference"), str):
        names.add(reference["reference"])
    identifier = reference.get("identifier")
    if isinstance(identifier, dict) and identifier.get("value"):
        names.add(f"{identifier.get('system', '')}|{identifier['value']}")
    return names


def actor_roles(actor: dict) -> set[str]:
    role = actor.get("role") if isinstance(actor, dict) else None
    return {c.get("code") for c in (role or {}).get("coding") or () if isinstance(c, dict)}


def _bound(value: object, tz: tzinfo, end: bool) -> datetime | None:
    moment = parse_fhir_moment(value, tz)
    if moment is None or isinstance(moment, datetime):
        return moment
    start_of_day = datetime.combine(moment, datetime.min.time(), tz)
    return start_of_day + timedelta(days=1) if end else start_of_day


def evaluate(consent: dict, now: datetime, payer: frozenset[str], requester: str, tz: tzinfo) -> ConsentTerms | str:
    """The terms to grant under, or why the consent cannot be honoured (for the audit log, never the partner)."""
    if consent.get("status") != "active":
        return f"consent status is {consent.get('status')!r}, not active"
    provision = consent.get("provision") if isinstance(consent.get("provision"), dict) else {}
    if provision.get("type", "permit") != "permit":
        return "consent provision is not a permit"
    period = provision.get("period") if isinstance(provision.get("period"), dict) else {}
    start, end = _bound(period.get("start"), tz, False), _bound(period.get("end"), tz, True)
    if start is None or end is None:
        return "consent provision.period needs a start and an end"
    if not start <= now < end:
        return "consent period does not cover the request time"
    actors = [a for a in provision.get("actor") or () if isinstance(a, dict)]
    if not any(SOURCE_ROLE in actor_roles(a) and reference_names(a.get("reference")) & payer for a in actors):
        return "no source actor of the consent is this payer"
    if not any(RECIPIENT_ROLE in actor_roles(a) and requester in reference_names(a.get("reference")) for a in actors):
        return "no recipient actor of the consent is the requesting organization"
    uris = [p.get("uri") for p in consent.get("policy") or () if isinstance(p, dict)
            and isinstance(p.get("uri"), str) and p["uri"].startswith(HREX_POLICY)]
    if len(uris) != 1 or uris[0].rsplit("#", 1)[-1] not in (REGULAR, SENSITIVE):
        return "consent names no HRex policy (#regular or #sensitive)"
    return ConsentTerms(policy_of(uris[0]), uris[0], start, end)
