"""The one disclosure gate every partner answer passes, in the shape of HAPI's consent service.

- `start`: may this search run, and as what (the canonical, allow-listed query; `QueryRefused` otherwise);
- `can_see`: the resource's type, the token's scopes and the member it belongs to;
- `will_see`: the disclosure rules and the non-financial claims view (`sidecar.disclosure`), with the reasons for
  whatever is withheld;
- `complete`: what was withheld or changed goes to the request's audit record.

Reads, searches and their includes, `$everything`, Binary, Group reads and bulk files all decide through it, so a
partner receives exactly what the rules release and a withheld resource looks as if it did not exist.
"""
from __future__ import annotations

from datetime import datetime
from typing import Iterable

import orjson
from aiohttp import web

from sidecar.gate.caller import PARTNER_TYPES, Caller
from sidecar.auth.middleware import note_disclosure
from sidecar.disclosure.answers import AnswerFilter, Outcome
from sidecar.gate.query import CanonicalQuery, SearchCatalog, canonical_search


class DisclosureGate:
    def __init__(self, disclosure: AnswerFilter) -> None:
        self.disclosure = disclosure

    @staticmethod
    def start(resource_type: str, pairs: Iterable[tuple[str, str]], catalog: SearchCatalog) -> CanonicalQuery:
        return canonical_search(resource_type, pairs, catalog, PARTNER_TYPES)

    @staticmethod
    def can_see(caller: Caller, resource: object) -> bool:
        return caller.may_see(resource)

    async def will_see(self, caller: Caller, items: list[tuple[dict, str]], now: datetime) -> Outcome:
        """Per item, what leaves (None when withheld): `can_see` first, then, for partners, the disclosure rules."""
        visible = [i for i, (resource, _) in enumerate(items) if self.can_see(caller, resource)]
        outcome = Outcome([None] * len(items))
        shown = set(visible)
        outcome.withheld += [{"resource": _describe(resource), "rule": "not-visible-to-caller"}
                             for i, (resource, _) in enumerate(items) if i not in shown]
        if caller.patients is None:
            for i in visible:
                outcome.released[i] = items[i][0]
            return outcome
        if not visible:
            return outcome
        decided = await self.disclosure.filter(caller.patients, [items[i] for i in visible], now)
        for i, released in zip(visible, decided.released):
            outcome.released[i] = released
        outcome.withheld += decided.withheld
        outcome.transformed = decided.transformed
        return outcome

    def is_sensitive(self, resource: dict) -> bool:
        """Sensitive by itself (a label, a code, a Part 2 program), whatever points to it."""
        return self.disclosure.rules.sensitive.direct(resource, orjson.dumps(resource)) is not None

    @staticmethod
    def complete(request: web.Request, outcome: Outcome) -> None:
        note_disclosure(request, outcome.withheld, outcome.transformed)


def _describe(resource: object) -> str:
    if isinstance(resource, dict):
        return f"{resource.get('resourceType')}/{resource.get('id')}"
    return type(resource).__name__
