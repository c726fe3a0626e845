"""What an opt-in writes into HAPI: the HRex Consent (source = the previous payer, recipient = this payer, the
period, the `#regular` or `#sensitive` policy) and the prior Coverage (payor = the previous payer), both about the
signed-in member only. `pull` finds them as it finds any member's consent (`sidecar.client.member_requests`)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sidecar.matching.consent import HREX_POLICY, RECIPIENT_ROLE, SOURCE_ROLE
from sidecar.store.partners import Partner

POLICIES = ("regular", "sensitive")
CONSENT_YEARS = 5   # how long the permission lasts unless withdrawn: a former member's window at the old payer
OTHER = "other"


@dataclass(frozen=True)
class PriorCoverage:
    member_id: str
    start: date
    end: date | None          # None: still covered there (concurrent coverage, pulled quarterly)


def organization_reference(named: str, display: str) -> dict:
    """`Organization/x` as a literal reference, `system|value` as an identifier, anything else as a display."""
    if named.startswith("Organization/"):
        return {"reference": named, "display": display}
    system, _, value = named.partition("|")
    if system and value:
        return {"identifier": {"system": system, "value": value}, "display": display}
    return {"display": display}


def partner_reference(partner: Partner) -> dict:
    return organization_reference(partner.identifiers[0] if partner.identifiers else partner.name, partner.name)


def _years_later(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def consent(member: str, source: dict, recipient: dict, policy: str, today: date) -> dict:
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}")
    local = {"reference": f"Patient/{member}"}
    return {
        "resourceType": "Consent",
        "meta": {"profile": ["http://hl7.org/fhir/us/davinci-hrex/StructureDefinition/hrex-consent"]},
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                              "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "64292-6"}]}],
        "patient": local,
        "dateTime": today.isoformat(),
        "performer": [local],
        "sourceReference": {"display": "Opt-in on the member page"},
        "policy": [{"uri": f"{HREX_POLICY}{policy}"}],
        "provision": {
            "type": "permit",
            "period": {"start": today.isoformat(), "end": _years_later(today, CONSENT_YEARS).isoformat()},
            "actor": [
                {"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                                      "code": SOURCE_ROLE}]}, "reference": source},
                {"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                      "code": RECIPIENT_ROLE}]}, "reference": recipient},
            ],
            "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction",
                                    "code": "disclose"}]}],
        },
    }


def prior_coverage(member: str, payor: dict, prior: PriorCoverage, today: date) -> dict:
    ended = prior.end is not None and prior.end < today
    coverage = {
        "resourceType": "Coverage",
        "status": "cancelled" if ended else "active",
        "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                             "code": "MB"}]}, "value": prior.member_id}],
        "beneficiary": {"reference": f"Patient/{member}"},
        "payor": [payor],
        "period": {"start": prior.start.isoformat(), **({"end": prior.end.isoformat()} if prior.end else {})},
    }
    return coverage


def coverage_start(coverages: list[dict], prior: set[str]) -> str | None:
    """When the member's coverage here began: the earliest start among their active Coverages, leaving out the
    prior coverages opt-ins wrote (`prior`: `Coverage/id`s)."""
    starts = sorted(str((c.get("period") or {}).get("start", ""))[:10] for c in coverages
                    if c.get("status") == "active" and f"Coverage/{c.get('id')}" not in prior
                    and (c.get("period") or {}).get("start"))
    return starts[0] if starts else None
