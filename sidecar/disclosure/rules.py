"""The disclosure filter's one decision: may this resource leave to this partner, now, and in what form?

Pure and per resource, so NDJSON streams through it: the caller supplies the granted members with their consent
policies, the request time, and which referenced resources are sensitive (`resolver.py` finds those for answers;
an export finds them in its own files). Rules, in order (issue 4, shared/DECISIONS.md 2–5):

1. the type is payer-to-payer data at all, and its member is granted (defense in depth);
2. prior authorizations (`use` decides over the PDex profile): pending, in effect, or changed within 12 months;
   drug PAs only when enabled; denied ones never;
3. everything else dated: a date of service within the look-back window (default five years);
4. under a `#regular` consent, nothing sensitive: labelled, coded, or pointing at something sensitive;
5. claims leave as the non-financial Basis view.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo
import functools
import re
from functools import cached_property
from typing import Mapping, NamedTuple

import orjson

from sidecar.gate.compartment import MEMBER_DATA, member_of
from sidecar.disclosure.claims import non_financial
from sidecar.disclosure.dates import Window, lookback_window, months_window
from sidecar.disclosure.prior_auth import is_prior_authorization, prior_authorization_reason
from sidecar.disclosure.sensitivity import Reason, SensitiveData, trie_pattern
from sidecar.disclosure.service_dates import DISCLOSED_MEMBER_TYPES, ONGOING, SERVICE_DATES, UNDATED_PASS

REGULAR = "regular"
SENSITIVE = "sensitive"
UNJUDGED = object()
"""`direct` not given: the rules judge the resource's own sensitivity themselves."""


def policy_of(uri: object) -> str:
    """HRex consent policy (`…hrex-consent.html#sensitive` / `#regular`) → its short name; unknown → regular, the
    more protective."""
    return SENSITIVE if isinstance(uri, str) and uri.rsplit("#", 1)[-1] == SENSITIVE else REGULAR


def normal_reference(reference: str) -> str | None:
    """`Condition/5`, `https://x/fhir/Condition/5/_history/2` → `Condition/5`; contained (`#x`) and URNs → None."""
    if not reference or reference.startswith(("#", "urn:")):
        return None
    parts = reference.split("?")[0].split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) < 2 or not parts[-2][:1].isupper() or not parts[-1]:
        return None
    return f"{parts[-2]}/{parts[-1]}"


def references_of(raw_references: list[bytes]) -> list[str]:
    found = []
    for value in raw_references:
        ref = normal_reference(value.decode("utf-8", "replace"))
        if ref is not None and not ref.startswith("Patient/"):
            found.append(ref)
    return found


class Decision(NamedTuple):
    resource: dict | None
    """What leaves (possibly changed), or None when withheld."""
    reason: Reason | None = None
    """Why it was withheld, or how it was changed."""

    @property
    def released(self) -> bool:
        return self.resource is not None


@dataclass(frozen=True)
class DisclosureContext:
    now: datetime
    lookback: Window
    prior_auth: Window
    members: Mapping[str, str]
    """Granted patient id → consent policy (REGULAR or SENSITIVE)."""
    sensitive_refs: Mapping[str, Reason] = field(default_factory=dict)
    """`Type/id` of referenced resources known to be sensitive, with why."""

    @cached_property
    def sensitive_ref_pattern(self) -> re.Pattern[bytes] | None:
        """Finds a reference to any of them in JSON, relative or absolute, with or without a version."""
        return _reference_pattern(frozenset(self.sensitive_refs)) if self.sensitive_refs else None


@functools.lru_cache(maxsize=256)
def _reference_pattern(refs: frozenset[str]) -> re.Pattern[bytes]:
    return re.compile(rb'"reference"\s*:\s*"(?:[^"]*/)?(' + trie_pattern(refs) + rb')(?:/_history/[^"]*)?"')


class DisclosureRules:
    def __init__(self, sensitive: SensitiveData, tz: tzinfo, lookback_years: int = 5, prior_auth_months: int = 12,
                 drug_prior_authorizations: bool = False) -> None:
        self.sensitive = sensitive
        self.tz = tz
        self.lookback_years = lookback_years
        self.prior_auth_months = prior_auth_months
        self.drug_prior_authorizations = drug_prior_authorizations

    def context(self, now: datetime, members: Mapping[str, str],
                sensitive_refs: Mapping[str, Reason] | None = None) -> DisclosureContext:
        return DisclosureContext(now, lookback_window(now, self.lookback_years, self.tz),
                                 months_window(now, self.prior_auth_months, self.tz), members, sensitive_refs or {})

    def sensitivity(self, resource: dict, ctx: DisclosureContext, raw: bytes | None = None,
                    direct: Reason | None | object = UNJUDGED) -> Reason | None:
        """Sensitive by itself or through a sensitive resource it points to. `direct`: what
        `SensitiveData.direct` already found for this resource, when the caller judged it (the answer filter's
        reference resolver does, for every resource of the answer)."""
        raw = orjson.dumps(resource) if raw is None else raw
        found = self.sensitive.direct(resource, raw) if direct is UNJUDGED else direct
        if found is None and ctx.sensitive_ref_pattern is not None:
            match = ctx.sensitive_ref_pattern.search(raw)
            if match:
                ref = match[1].decode()
                return Reason("sensitive-reference", "reference", f"{ref} ({ctx.sensitive_refs[ref].rule})")
        return found

    def _dated(self, resource: dict, resource_type: str, ctx: DisclosureContext) -> Reason | None:
        extract = SERVICE_DATES[resource_type]
        if extract is None:
            return None
        latest = None
        for element, value in extract(resource):
            if value == ONGOING or ctx.lookback.contains_value(value):
                return None
            latest = latest or (element, value)
        if latest is None:
            return None if resource_type in UNDATED_PASS else Reason("no-service-date")
        return Reason("five-year-lookback", latest[0], latest[1] if isinstance(latest[1], str) else None)

    def decide(self, resource: dict, ctx: DisclosureContext, raw: bytes | None = None,
               direct: Reason | None | object = UNJUDGED) -> Decision:
        """For member data: the whole rule chain."""
        resource_type = resource.get("resourceType")
        if resource_type not in DISCLOSED_MEMBER_TYPES:
            return Decision(None, Reason("not-payer-to-payer-data", "resourceType", str(resource_type)))
        member = member_of(resource)
        policy = ctx.members.get(member) if member is not None else None
        if policy is None:
            element = "id" if resource_type == "Patient" else MEMBER_DATA[resource_type][0]
            return Decision(None, Reason("member-not-granted", element, member))
        if resource.get("status") == "entered-in-error":
            return Decision(None, Reason("entered-in-error", "status", "entered-in-error"))
        claim = False
        if resource_type == "ExplanationOfBenefit":
            if is_prior_authorization(resource):
                reason = prior_authorization_reason(resource, ctx.now, ctx.prior_auth, self.drug_prior_authorizations)
            elif resource.get("use") == "claim":
                claim = True
                reason = self._dated(resource, resource_type, ctx)
            else:
                reason = Reason("not-payer-to-payer-data", "use", str(resource.get("use")))
        else:
            reason = self._dated(resource, resource_type, ctx)
        if reason is not None:
            return Decision(None, reason)
        if policy == REGULAR:
            reason = self.sensitivity(resource, ctx, raw, direct)
            if reason is not None:
                return Decision(None, reason)
        if claim:
            stripped, profile = non_financial(resource)
            return Decision(stripped, Reason("non-financial-view", "meta.profile", profile))
        return Decision(resource)

    def decide_unowned(self, resource: dict, policy: str, ctx: DisclosureContext, raw: bytes | None = None,
                       direct: Reason | None | object = UNJUDGED) -> Decision:
        """For data that belongs to no member (organizations, practitioners, medications, provenance), released
        alongside a member's data under that member's policy: only sensitivity applies."""
        if policy == REGULAR:
            reason = self.sensitivity(resource, ctx, raw, direct)
            if reason is not None:
                return Decision(None, reason)
        return Decision(resource)
