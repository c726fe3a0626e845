"""What we send a partner about one of our members, built from our own HAPI: the member's Patient, the prior
coverage at the partner (`CoverageToMatch`), our coverage (`CoverageToLink`) and the Consent the member gave us
naming the partner as the source of the data.

HRex requires the Coverage's and Consent's Patient references to be local and to carry the MemberPatient's id;
the MemberPatient keeps our own id so that the answer's contained Patient leads back to our member.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import date, datetime, timezone

from sidecar.client.local_fhir import LocalFhir
from sidecar.disclosure.dates import parse_fhir_moment
from sidecar.matching.consent import SOURCE_ROLE, actor_roles, reference_names
from sidecar.store.partners import Partner


@dataclass(frozen=True)
class MemberRequest:
    member: str
    patient: dict | None
    coverage_to_match: dict | None
    coverage_to_link: dict | None
    consent: dict | None
    changed_at: float          # the latest meta.lastUpdated of these, for "retry once the data changed"

    def problem(self) -> str | None:
        """Why this member cannot be sent (manual review), or None."""
        if self.patient is None:
            return "the member's Patient is not in our FHIR server"
        if self.coverage_to_match is None:
            return "no Coverage here names the partner as payor (the prior coverage)"
        if self.consent is None:
            return "no active Consent here names the partner as the source of the member's data"
        return None

    def concurrent(self, today: date) -> bool:
        """Whether the coverage at the partner is still in force (concurrent coverage: pulled on a schedule)."""
        coverage = self.coverage_to_match or {}
        end = parse_fhir_moment((coverage.get("period") or {}).get("end"), timezone.utc)
        if isinstance(end, datetime):
            end = end.date()
        return coverage.get("status") == "active" and (end is None or end >= today)

    def parts(self) -> list[dict]:
        """The MemberBundle parts (also the `$member-match` parameters), references made local to the member."""
        local = f"Patient/{self.member}"
        patient = {**_plain(self.patient), "id": self.member}
        parts = [{"name": "MemberPatient", "resource": patient},
                 {"name": "CoverageToMatch", "resource": _pointing(self.coverage_to_match, "beneficiary", local)}]
        if self.coverage_to_link is not None:
            parts.append({"name": "CoverageToLink",
                          "resource": _pointing(self.coverage_to_link, "beneficiary", local)})
        consent = _pointing(self.consent, "patient", local)
        if isinstance(consent.get("performer"), list):
            consent["performer"] = [{"reference": local} if str(p.get("reference", "")).startswith("Patient/")
                                    else p for p in consent["performer"] if isinstance(p, dict)]
        parts.append({"name": "Consent", "resource": consent})
        return parts


def _plain(resource: dict | None) -> dict:
    """A copy without the server bookkeeping a partner has no use for."""
    copied = copy.deepcopy(resource or {})
    copied.pop("meta", None)
    copied.pop("text", None)
    return copied


def _pointing(resource: dict | None, element: str, local: str) -> dict:
    copied = _plain(resource)
    copied[element] = {"reference": local}
    return copied


def names_partner(reference: object, partner: Partner) -> bool:
    if not isinstance(reference, dict):
        return False
    return bool(reference_names(reference) & partner.names()) or reference.get("display") in partner.names()


def is_source_consent(consent: dict, partner: Partner) -> bool:
    provision = consent.get("provision") if isinstance(consent.get("provision"), dict) else {}
    return consent.get("status") == "active" and any(
        SOURCE_ROLE in actor_roles(actor) and names_partner(actor.get("reference"), partner)
        for actor in provision.get("actor") or () if isinstance(actor, dict))


def _updated(resource: dict) -> float:
    moment = parse_fhir_moment((resource.get("meta") or {}).get("lastUpdated"), timezone.utc)
    return moment.timestamp() if isinstance(moment, datetime) else 0.0


def _latest(resources: list[dict]) -> dict | None:
    return max(resources, key=_updated, default=None)


async def source_consents(fhir: LocalFhir, partner: Partner, members: list[str] | None) -> dict[str, list[dict]]:
    """Active Consents naming the partner as the source of the member's data, by member: of the members named,
    or of everyone."""
    if members is None:
        found = await fhir.search("Consent", {"status": "active"})
    else:
        found = await fhir.search_in_chunks("Consent", "patient", [f"Patient/{m}" for m in members],
                                            {"status": "active"})
    consents: dict[str, list[dict]] = {}
    for consent in found:
        member = str((consent.get("patient") or {}).get("reference", "")).removeprefix("Patient/")
        if member and "/" not in member and is_source_consent(consent, partner):
            consents.setdefault(member, []).append(consent)
    return consents


async def member_requests(fhir: LocalFhir, partner: Partner, members: list[str] | None) -> list[MemberRequest]:
    """Requests for the members named, or (None) for every member with a Consent naming the partner as source."""
    consents = await source_consents(fhir, partner, members)
    members = sorted(consents) if members is None else members
    patients = {p["id"]: p for p in await fhir.search_in_chunks("Patient", "_id", members)}
    coverages: dict[str, list[dict]] = {}
    for coverage in await fhir.search_in_chunks("Coverage", "beneficiary", [f"Patient/{m}" for m in members]):
        member = str(coverage.get("beneficiary", {}).get("reference", "")).removeprefix("Patient/")
        coverages.setdefault(member, []).append(coverage)
    requests = []
    for member in members:
        own = coverages.get(member, [])
        prior = [c for c in own if any(names_partner(p, partner) for p in c.get("payor") or ())]
        ours = [c for c in own if c not in prior and c.get("status") == "active"]
        chosen = [patients.get(member), _latest(prior), _latest(ours), _latest(consents.get(member, []))]
        changed = max((_updated(r) for r in chosen if r is not None), default=0.0)
        requests.append(MemberRequest(member, *chosen, changed_at=changed))
    return requests
