"""Former members at the old payer: zero-knowledge sign-in (name, birth date, previous member id, ZIP code) and
what they may see and do once signed in.

The sign-in is checked by the product's matcher (`sidecar.matching.matcher`, as `$member-match` runs it: the same
HAPI searches and evidence rules) at its strictest: it must call it a match, and then every one of the four answers
must agree exactly (first and family name, birth date, the member's own number, the ZIP code of the address).
A wrong answer is refused without saying which field was wrong; attempts are throttled like `$member-match`
(per browser address, and per person across addresses) and audited.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timezone

from sidecar.config import Settings
from sidecar.hapi.client import HapiClient
from sidecar.matching import throttle
from sidecar.matching.candidates import CandidateSource
from sidecar.matching.person import member_id, person_of
from sidecar.matching.matcher import Matcher
from sidecar.matching.scoring import Scorer
from sidecar.store import jobs
from sidecar.store.db import Store
from sidecar.store.grants import grants_of_member

# Every field must agree at its best level: no typo, nickname, swapped names or one-day-off birth date is enough.
STRICT_LEVELS = {"given": {"exact"}, "family": {"exact"}, "birth_date": {"exact"}, "member_id": {"agree"}}
# Per person, across browser addresses: how many distinct member ids may be tried with the same name and birth date.
ANYWHERE = "former-member:*"
GROUPS_PER_SEARCH = 100


@dataclass(frozen=True)
class Answers:
    given: str
    family: str
    birth_date: str
    member_id: str
    postal_code: str

    def complete(self) -> bool:
        try:
            date.fromisoformat(self.birth_date)
        except ValueError:
            return False
        return all(v.strip() for v in (self.given, self.family, self.member_id, self.postal_code))

    def as_request(self) -> tuple[dict, dict]:
        """The answers as a `$member-match` request's MemberPatient and CoverageToMatch."""
        patient = {"resourceType": "Patient", "name": [{"family": self.family.strip(), "given": [self.given.strip()]}],
                   "birthDate": self.birth_date, "address": [{"postalCode": self.postal_code.strip()}]}
        coverage = {"resourceType": "Coverage", "identifier": [{"value": self.member_id.strip()}]}
        return patient, coverage


@dataclass(frozen=True)
class SignIn:
    outcome: str                   # "signed-in", "refused" or "throttled"
    patient_id: str | None = None
    audit: dict | None = None      # why, field by field: for the audit record only


class FormerMembers:
    def __init__(self, settings: Settings, upstream: HapiClient, store: Store, scorer: Scorer) -> None:
        self.settings = settings
        self.upstream = upstream
        self.store = store
        self.matcher = Matcher(settings, scorer, CandidateSource(upstream))
        self.limits = throttle.ThrottleSettings(settings.match_window_seconds, settings.match_card_variants,
                                                settings.match_failure_floor, settings.match_failure_rate)
        # Across addresses only the card-variant rule applies: one failure rate for everyone would let anybody
        # lock every former member out.
        self.anywhere = throttle.ThrottleSettings(settings.match_window_seconds, settings.match_card_variants,
                                                  failure_floor=2 ** 31, failure_rate=1.0)

    async def sign_in(self, answers: Answers, address: str) -> SignIn:
        client = f"former-member:{address}"
        patient, coverage = answers.as_request()
        person = person_of(patient, [coverage], False)
        card = member_id(answers.member_id)
        for who, limits in ((client, self.limits), (ANYWHERE, self.anywhere)):
            refusal = await self.store.run(throttle.refusal, self.store, limits, who, person.demographics_key, card)
            if refusal:
                return SignIn("throttled", audit={"throttled": refusal})
        if not answers.complete():
            return SignIn("refused", audit={"reason": "incomplete answers"})
        found = await self.matcher.match(person, coverage)
        verdict = found.verdict
        outcome, patient_id, detail = "refused", None, {"verdict": verdict.outcome}
        if verdict.outcome == "match" and verdict.best is not None:
            best_id, score = verdict.best
            levels = {f: level for f, (level, _) in score.contributions.items()}
            disagreeing = sorted(f for f, allowed in STRICT_LEVELS.items() if levels.get(f) not in allowed)
            if not _same_zip(answers.postal_code, found.patients[best_id]):
                disagreeing.append("postal_code")
            detail = {"verdict": "match", "patient": best_id, "not_exact": disagreeing}
            if not disagreeing:
                outcome, patient_id = "signed-in", best_id
        for who in (client, ANYWHERE):
            await self.store.run(throttle.record, self.store, who, person.demographics_key, card,
                                 "match" if outcome == "signed-in" else "not-found")
        return SignIn(outcome, patient_id, detail)

    async def recipients(self, patient_id: str) -> list[dict]:
        """Each organization this member's data was granted to: when, under which policy, until when, whether
        withdrawn, and the exports of that organization that carried the member while the grant was live."""
        grants = await self.store.run(grants_of_member, self.store, patient_id)
        exports = await self.store.run(jobs.completed_exports, self.store,
                                       sorted({g["organization"] for g in grants}))
        own = f"Patient/{patient_id}"
        carrying = await self._groups_with(own, sorted({g for job in exports if (g := _group_of(job["request_url"]))}))
        names = await self._organization_names({g["organization"] for g in grants})
        shown = []
        for grant in grants:
            ended = grant["revoked_at"] or grant["valid_until"] or float("inf")
            sent = [job["updated_at"] for job in exports
                    if job["organization"] == grant["organization"] and grant["valid_from"] <= job["created_at"] < ended
                    and (_group_of(job["request_url"]) in carrying
                         or own in json.loads(job["params"]).get("export", {}).get("patients", []))]
            shown.append({"organization": names.get(grant["organization"], grant["organization"]),
                          "policy": grant["policy"].rsplit("#", 1)[-1],
                          "from": _day(grant["valid_from"]), "until": _day(grant["valid_until"]),
                          "withdrawn": _day(grant["revoked_at"]), "sent": [_moment(t) for t in sorted(sent)]})
        return shown

    async def _groups_with(self, member: str, groups: list[str]) -> set[str]:
        """Which of these Groups have the member: HAPI answers with ids only, not the Groups' member lists."""
        found: set[str] = set()
        for start in range(0, len(groups), GROUPS_PER_SEARCH):
            chunk = groups[start:start + GROUPS_PER_SEARCH]
            found |= {g["id"] for g in await self.upstream.search("Group", {
                "member": member, "_id": ",".join(chunk), "_elements": "id", "_count": str(len(chunk))})}
        return found

    async def _organization_names(self, organizations: set[str]) -> dict[str, str]:
        """`Organization/x` → its name at HAPI, so a member reads a plan's name rather than a reference."""
        ids = sorted(o.removeprefix("Organization/") for o in organizations if o.startswith("Organization/"))
        found = await self.upstream.by_ids("Organization", ids) if ids else []
        return {f"Organization/{o['id']}": o["name"] for o in found if isinstance(o.get("name"), str)}


def _same_zip(answer: str, patient: dict) -> bool:
    wanted = "".join(ch for ch in answer if ch.isdigit())[:5]
    return len(wanted) == 5 and any(
        "".join(ch for ch in str(a.get("postalCode", "")) if ch.isdigit())[:5] == wanted
        for a in patient.get("address") or () if isinstance(a, dict))


def _group_of(request_url: str) -> str | None:
    parts = request_url.split("?", 1)[0].split("/")
    return parts[parts.index("Group") + 1] if "Group" in parts[:-1] else None


def _day(moment: float | None) -> str | None:
    return datetime.fromtimestamp(moment, timezone.utc).date().isoformat() if moment else None


def _moment(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
