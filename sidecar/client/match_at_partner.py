"""Matching our members at a partner: `$bulk-member-match` batches (PDex) or single `$member-match` (HRex), and
what each answer means for the member's exchange (no member dead-ends; see store/exchanges.py for the states).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import orjson

from sidecar.client.async_jobs import PartnerRefused, await_manifest, diagnostics, kickoff
from sidecar.client.connection import PartnerConnection
from sidecar.client.member_requests import MemberRequest
from sidecar.store import exchanges as ex

MATCH_EXTENSION = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/base-ext-match-parameters"
GROUP_STATES = {"match": ex.MATCHED, "nomatch": ex.NO_MATCH, "consentconstraint": ex.CONSENT_REFUSED}
OUTCOME_STATES = {"not-found": ex.NO_MATCH, "multiple-matches": ex.NEEDS_IDENTIFIERS,
                  "business-rule": ex.CONSENT_REFUSED}


@dataclass(frozen=True)
class MatchOutcome:
    member: str
    state: str
    partner_patient: str | None = None
    export_scope: str | None = None
    detail: str | None = None


class _Submitted:
    """Finds which of our members a contained (submitted) Patient in the answer is."""

    def __init__(self, requests: list[MemberRequest]) -> None:
        self.by_key: dict[str, str] = {}
        for request in requests:
            for key in _keys({**(request.patient or {}), "id": request.member}):
                self.by_key.setdefault(key, request.member)

    def member(self, patient: dict | None) -> str | None:
        return next((self.by_key[k] for k in _keys(patient or {}) if k in self.by_key), None)


def _keys(patient: dict) -> list[str]:
    """The id first (an answer may keep it), then each identifier, then name + birth date."""
    keys = [f"id:{patient['id']}"] if patient.get("id") else []
    keys += [f"identifier:{i.get('system')}|{i.get('value')}" for i in patient.get("identifier") or ()
             if isinstance(i, dict) and i.get("value")]
    names = [n for n in patient.get("name") or () if isinstance(n, dict)]
    if names and patient.get("birthDate"):
        keys.append(f"demographics:{names[0].get('family')}|{names[0].get('given')}|{patient['birthDate']}")
    return keys


def _as_dict(value: object) -> dict:
    """A partner's JSON where an object is expected: itself, or empty when it is something else."""
    return value if isinstance(value, dict) else {}


def _contained(group: dict, member: dict) -> dict | None:
    entity = _as_dict(member.get("entity"))
    local = entity.get("reference") if str(entity.get("reference", "")).startswith("#") else None
    for extension in entity.get("extension") or ():
        if isinstance(extension, dict) and extension.get("url") == MATCH_EXTENSION:
            local = _as_dict(extension.get("valueReference")).get("reference") or local
    contained = {f"#{c.get('id')}": c for c in group.get("contained") or () if isinstance(c, dict)}
    return contained.get(local or "")


def outcomes_of_groups(groups: list[dict], requests: list[MemberRequest]) -> list[MatchOutcome]:
    submitted = _Submitted(requests)
    found: dict[str, MatchOutcome] = {}
    for group in groups:
        codes = [c.get("code") for c in _as_dict(group.get("code")).get("coding") or () if isinstance(c, dict)]
        state = next((GROUP_STATES[c] for c in codes if c in GROUP_STATES), None)
        if state is None or (state == ex.MATCHED and not isinstance(group.get("id"), str)):
            continue  # a matched Group without an id cannot be exported: its members count as left out
        for member in group.get("member") or ():
            if not isinstance(member, dict):
                continue
            ours = submitted.member(_contained(group, member))
            if ours is None:
                continue
            if state == ex.MATCHED:
                reference = str(_as_dict(member.get("entity")).get("reference", ""))
                found[ours] = MatchOutcome(ours, state, reference.removeprefix("Patient/"), f"Group/{group['id']}")
            else:
                found.setdefault(ours, MatchOutcome(ours, state, detail=f"the partner's {codes[0]} group"))
    return [found.get(r.member) or MatchOutcome(r.member, ex.NO_MATCH, detail="the partner's answer left it out")
            for r in requests]


async def bulk_match(conn: PartnerConnection, requests: list[MemberRequest]) -> list[MatchOutcome]:
    """One `$bulk-member-match` job for these members; each member's outcome."""
    body = {"resourceType": "Parameters", "parameter": [{"name": "MemberBundle", "part": r.parts()}
                                                        for r in requests]}
    status_url = await kickoff(conn, f"{conn.fhir_base}/Group/$bulk-member-match", body)
    manifest = await await_manifest(conn, status_url)
    groups: list[dict] = []
    envelopes: list[dict] = []
    for item in manifest.get("output") or ():
        if not isinstance(item, dict) or item.get("type") not in ("Group", "Parameters") \
                or not isinstance(item.get("url"), str):
            continue
        answer = await conn.request("GET", item["url"], headers={"Accept": "application/fhir+ndjson"})
        if answer.status != 200:
            raise PartnerRefused(f"the partner did not deliver {item['url']} ({answer.status})")
        try:
            lines = [orjson.loads(line) for line in answer.body.splitlines() if line.strip()]
        except orjson.JSONDecodeError as exc:
            raise PartnerRefused(f"the partner's {item['url']} is not NDJSON") from exc
        (groups if item["type"] == "Group" else envelopes).extend(line for line in lines if isinstance(line, dict))
    if not groups:  # a PDex 2.1.0 partner: the Groups travel inside the Parameters envelope
        groups = [_as_dict(p)["resource"] for envelope in envelopes for p in envelope.get("parameter") or ()
                  if _as_dict(_as_dict(p).get("resource")).get("resourceType") == "Group"]
    return outcomes_of_groups(groups, requests)


async def single_match(conn: PartnerConnection, request: MemberRequest) -> MatchOutcome:
    """`$member-match` for one member; a refusal becomes the member's state, never an exception."""
    answer = await conn.request("POST", f"{conn.fhir_base}/Patient/$member-match",
                                json={"resourceType": "Parameters", "parameter": request.parts()},
                                headers={"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"})
    if answer.status == 200:
        parameters = {p.get("name"): p for p in answer.json().get("parameter") or () if isinstance(p, dict)}
        reference = str(_as_dict(_as_dict(parameters.get("MemberId")).get("valueReference")).get("reference", ""))
        if reference.startswith("Patient/"):
            return MatchOutcome(request.member, ex.MATCHED, reference.removeprefix("Patient/"), "Patient")
        identifier = _as_dict(_as_dict(parameters.get("MemberIdentifier")).get("valueIdentifier"))
        found = await conn.request("GET", f"{conn.fhir_base}/Patient?identifier="
                                   f"{identifier.get('system', '')}|{identifier.get('value', '')}",
                                   headers={"Accept": "application/fhir+json"})
        entries = found.json().get("entry") or [] if found.status == 200 else []
        ids = [_as_dict(_as_dict(e).get("resource")).get("id") for e in entries]
        if len(ids) == 1 and isinstance(ids[0], str):
            return MatchOutcome(request.member, ex.MATCHED, ids[0], "Patient")
        return MatchOutcome(request.member, ex.REJECTED, detail="matched, but the partner's member identifier "
                                                                 "leads to no single Patient")
    if answer.status == 422:
        codes = [i.get("code") for i in answer.json().get("issue") or () if isinstance(i, dict)]
        state = next((OUTCOME_STATES[c] for c in codes if c in OUTCOME_STATES), ex.NO_MATCH)
        return MatchOutcome(request.member, state, detail=diagnostics(answer))
    if answer.status == 400:
        return MatchOutcome(request.member, ex.REJECTED, detail=diagnostics(answer))
    raise PartnerRefused(f"$member-match answered {answer.status}: {diagnostics(answer)}")


def due(request: MemberRequest, previous: ex.Exchange | None, now: float | None = None) -> bool:
    """Whether to (re)send this member: never tried; retry time reached; or our data changed since the attempt."""
    if previous is None:
        return True
    if previous.state in ex.HAS_DATA:
        return False
    if request.changed_at > previous.updated_at:
        return True
    return previous.state == ex.NO_MATCH and (previous.next_attempt or 0) <= (now or time.time())
