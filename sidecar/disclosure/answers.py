"""The disclosure filter applied to one answer (a read, or a page of a search with its includes).

Member data is decided by `DisclosureRules.decide`. What belongs to no member follows the data it goes with:
- a Provenance leaves only when every resource it targets leaves (fetched when not in the answer);
- an included Organization, Practitioner, Location, Medication... leaves only when released data in the same answer
  points to it, and under the consent of the member whose data does (a Part 2 program only under `#sensitive`);
- reference data asked for directly (a read, or a search of that type) is directory data: it leaves unless it is
  itself sensitive, judged as under `#regular` because no member's consent stands behind it.
Everything withheld is explained (rule, element, code) for the audit log, and never mentioned to the partner.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Mapping

import orjson

from sidecar.gate.compartment import is_member_data, member_of
from sidecar.config import Settings
from sidecar.disclosure.resolver import Fetch, ReferenceSensitivity, reference_of
from sidecar.disclosure.rules import REGULAR, SENSITIVE, Decision, DisclosureRules, normal_reference
from sidecar.disclosure.sensitivity import Reason, SensitiveData

MATCH, INCLUDE = "match", "include"


@dataclass
class Outcome:
    released: list[dict | None]
    """Per input resource: what leaves, or None."""
    withheld: list[dict] = field(default_factory=list)
    transformed: int = 0
    pointed_to: dict[str, str] = field(default_factory=dict)
    """`Type/id` that released data points to → the most permissive consent policy of that data's members."""


def _targets(provenance: dict) -> list[str]:
    refs = []
    for target in provenance.get("target") or ():
        ref = normal_reference(target.get("reference", "")) if isinstance(target, dict) else None
        refs.append(ref or "")
    return refs


class AnswerFilter:
    def __init__(self, rules: DisclosureRules, resolver: ReferenceSensitivity, fetch: Fetch) -> None:
        self.rules = rules
        self.resolver = resolver
        self.fetch = fetch

    @classmethod
    def configured(cls, settings: Settings, fetch: Fetch) -> "AnswerFilter":
        """The filter the settings describe (rules, sensitive codes), looking resources up with `fetch`."""
        sensitive = SensitiveData.load(Path(settings.sensitive_data_dir) if settings.sensitive_data_dir else None,
                                       settings.sensitive_category_list)
        rules = DisclosureRules(sensitive, settings.timezone, settings.lookback_years, settings.prior_auth_months,
                                settings.drug_prior_authorizations)
        return cls(rules, ReferenceSensitivity(sensitive, fetch, settings.disclosure_cache_seconds), fetch)

    async def _missing_targets(self, resources: list[dict], present: set[str]) -> list[dict]:
        wanted: dict[str, list[str]] = {}
        for resource in resources:
            if resource.get("resourceType") == "Provenance":
                for ref in _targets(resource):
                    if ref and ref not in present:
                        resource_type, _, resource_id = ref.partition("/")
                        wanted.setdefault(resource_type, []).append(resource_id)
        found: list[dict] = []
        for resource_type, ids in wanted.items():
            found += await self.fetch(resource_type, sorted(set(ids)))
        return found

    async def filter(self, members: Mapping[str, str], items: list[tuple[dict, str]], now: datetime,
                     pointed_elsewhere: Mapping[str, str] | None = None) -> Outcome:
        """`pointed_elsewhere`: what released data outside this answer points to (an export's member files), with
        its policy; included reference data it names is judged as if that data were in the answer."""
        resources = [resource for resource, _ in items]
        present = {ref for ref in map(reference_of, resources) if ref}
        context_only = await self._missing_targets(resources, present)
        everything = resources + context_only
        raws = [orjson.dumps(resource) for resource in everything]
        judged = await self.resolver.judge(everything, raws)
        ctx = self.rules.context(now, members, judged.sensitive)
        outcome = Outcome([None] * len(items), pointed_to=dict(pointed_elsewhere or {}))

        released_policy: dict[str, str] = {}   # ref of released member data → its member's policy
        pointed_to = outcome.pointed_to

        def point(index: int, policy: str) -> None:
            for ref in judged.nodes[index].references:
                if pointed_to.get(ref) != SENSITIVE:
                    pointed_to[ref] = policy

        def record(index: int, resource: dict, decision: Decision) -> None:
            if decision.released:
                if decision.reason is not None:
                    outcome.transformed += 1
                if index < len(items):
                    outcome.released[index] = decision.resource
            elif index < len(items):
                outcome.withheld.append({"resource": reference_of(resource) or resource.get("resourceType"),
                                         **(decision.reason or Reason("withheld")).as_dict()})

        for index, (resource, raw) in enumerate(zip(everything, raws)):
            if is_member_data(str(resource.get("resourceType"))):
                decision = self.rules.decide(resource, ctx, raw, judged.nodes[index].direct)
                record(index, resource, decision)
                if decision.released:
                    policy = members[member_of(resource) or ""]
                    ref = reference_of(resource)
                    if ref:
                        released_policy[ref] = policy
                    if index < len(items):
                        point(index, policy)
        for index, (resource, raw) in enumerate(zip(everything, raws)):
            if resource.get("resourceType") == "Provenance":
                targets = _targets(resource)
                if not targets or any(t not in released_policy for t in targets):
                    record(index, resource, Decision(None, Reason("provenance-target-not-released", "target")))
                    continue
                policies = [released_policy[t] for t in targets]
                policy = REGULAR if REGULAR in policies else SENSITIVE
                decision = self.rules.decide_unowned(resource, policy, ctx, raw, judged.nodes[index].direct)
                record(index, resource, decision)
                if decision.released:
                    point(index, policy)
        for index, ((resource, mode), raw) in enumerate(zip(items, raws)):
            resource_type = str(resource.get("resourceType"))
            if is_member_data(resource_type) or resource_type == "Provenance":
                continue
            if mode == MATCH:
                decision = self.rules.decide_unowned(resource, REGULAR, ctx, raw, judged.nodes[index].direct)
            elif reference_of(resource) in pointed_to:
                decision = self.rules.decide_unowned(resource, pointed_to[reference_of(resource) or ""], ctx, raw,
                                                     judged.nodes[index].direct)
            else:
                decision = Decision(None, Reason("not-referenced-by-released-data"))
            record(index, resource, decision)
        return outcome
