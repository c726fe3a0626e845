"""Member Match Groups for partners: `GET /fhir/Group` and `GET /fhir/Group/{id}` show a partner its own Groups only.

Which Groups are whose is recorded when `$bulk-member-match` stores them; a search is sent to HAPI narrowed to
those ids, with the PDex search parameters `code`, `identifier` and `characteristic`. HAPI does not know PDex's
`characteristic-value-reference`, so the sidecar applies it to what HAPI found: a value matches a Group whose
`characteristic.valueReference` has that literal reference or that identifier (`system|value`, or the value alone).
Every value is checked before anything reaches HAPI (a 400 naming the parameter). Another organization's Group is
the same 404 as a missing one, and so is a Group other than `match` for a token whose Group access is PDex's
Member Match Groups scope alone (`MATCH_GROUPS_SCOPE`). An operator's unrestricted client goes through the
ordinary proxy.
"""
from __future__ import annotations

import re
from typing import Awaitable, Callable, Iterable

import orjson
from aiohttp import web

from sidecar.gate.caller import CALLER_KEY, Caller
from sidecar.auth.middleware import note_refusal
from sidecar.config import Settings
from sidecar.fhir.body import BadForm, form_pairs
from sidecar.fhir.outcome import fhir_json_response, outcome_response
from sidecar.hapi.client import HapiClient
from sidecar.matching.match_groups import RESULT_SYSTEM
from sidecar.store import jobs
from sidecar.store.db import Store

VALUE_REFERENCE = "characteristic-value-reference"
# What a partner's Group search takes, as the CapabilityStatement lists it (not HAPI's whole list).
GROUP_SEARCH_PARAMETERS = [
    {"name": "_id", "definition": "http://hl7.org/fhir/SearchParameter/Resource-id", "type": "token"},
    {"name": "code", "definition": "http://hl7.org/fhir/us/davinci-pdex/SearchParameter/group-code", "type": "token"},
    {"name": "identifier", "definition": "http://hl7.org/fhir/SearchParameter/Group-identifier", "type": "token"},
    {"name": "characteristic", "definition": "http://hl7.org/fhir/SearchParameter/Group-characteristic",
     "type": "token"},
    {"name": "characteristic-value-reference",
     "definition": "http://hl7.org/fhir/us/davinci-pdex/SearchParameter/pdex-group-characteristic-value-reference",
     "type": "reference"}]
SEARCH_PARAMETERS = {p["name"] for p in GROUP_SEARCH_PARAMETERS} | {"_count"}
MAX_GROUPS = 1000
MAX_VALUE = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ID = re.compile(r"[A-Za-z0-9.-]{1,64}")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadSearch(Exception):
    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


def check_search(params: list[tuple[str, str]]) -> None:
    """BadSearch naming the first parameter a partner's Group search cannot take: unknown, empty, overlong, with
    control characters, an `_id` that is no FHIR id, or a `_count` that is no count."""
    unknown = sorted({name for name, _ in params} - SEARCH_PARAMETERS)
    if unknown:
        raise BadSearch(f"Group search does not take {', '.join(unknown)[:200]}", "not-supported")
    for name, value in params:
        if not value.strip():
            raise BadSearch(f"{name} needs a value")
        if len(value) > MAX_VALUE or _CONTROL.search(value):
            raise BadSearch(f"{name} must be at most {MAX_VALUE} characters with no control characters")
        if name == "_id" and not all(_ID.fullmatch(v) for v in value.split(",")):
            raise BadSearch("_id must be a comma list of FHIR ids")
        if name == "_count" and not (value.isascii() and value.isdigit() and int(value) <= MAX_GROUPS):
            raise BadSearch(f"_count must be a whole number from 0 to {MAX_GROUPS}")


def _reference_names(reference: object) -> set[str]:
    """What a `characteristic-value-reference` value can match in one valueReference."""
    if not isinstance(reference, dict):
        return set()
    identifier = reference.get("identifier") if isinstance(reference.get("identifier"), dict) else {}
    names = {reference.get("reference"), identifier.get("value")}
    if identifier.get("value"):
        names.add(f"{identifier.get('system', '')}|{identifier['value']}")
    return {n for n in names if isinstance(n, str) and n}


def _has_value_references(group: dict, wanted: Iterable[str]) -> bool:
    """Each occurrence of the parameter must match (AND); a comma list matches any of its values (OR)."""
    present = set().union(*(_reference_names(c.get("valueReference")) for c in group.get("characteristic") or ()
                            if isinstance(c, dict)))
    return all(present & set(value.split(",")) for value in wanted)


def _in_scope(caller: Caller, group: dict) -> bool:
    """Every own Group, or only the `match` one when the token's Group access is MATCH_GROUPS_SCOPE alone."""
    if caller.scopes.sees_all_groups():
        return True
    return any(isinstance(c, dict) and c.get("system") == RESULT_SYSTEM and c.get("code") == "match"
               for c in (group.get("code") or {}).get("coding") or ())


class PartnerGroups:
    def __init__(self, settings: Settings, store: Store, upstream: HapiClient, proxy: Handler) -> None:
        self.settings = settings
        self.store = store
        self.upstream = upstream
        self.proxy = proxy

    async def read(self, request: web.Request) -> web.StreamResponse:
        caller: Caller = request[CALLER_KEY]
        if not caller.is_partner:
            return await self.proxy(request)
        group_id = request.match_info["id"]
        found = []
        if await self.store.run(jobs.group_owner, self.store, group_id) == caller.client.organization:
            found = await self.upstream.by_ids("Group", [group_id])
        found = [g for g in found if _in_scope(caller, g)]
        if not found:
            note_refusal(request, "not this client's Group, or not one its scopes cover")
            return outcome_response(404, "not-found", f"Group/{group_id} is not known")
        return fhir_json_response(found[0])

    async def search(self, request: web.Request) -> web.StreamResponse:
        caller: Caller = request[CALLER_KEY]
        if not caller.is_partner:
            return await self.proxy(request)
        params = list(request.query.items())
        if request.method == "POST":
            try:
                params += await form_pairs(request)
            except BadForm as exc:
                note_refusal(request, str(exc))
                return outcome_response(exc.status, "invalid", str(exc))
        try:
            check_search(params)
        except BadSearch as exc:
            note_refusal(request, str(exc))
            return outcome_response(400, exc.code, str(exc))
        own = await self.store.run(jobs.groups_of, self.store, caller.client.organization)
        asked = {v for name, value in params if name == "_id" for v in value.split(",")}
        ids = [g for g in own if not asked or g in asked][-MAX_GROUPS:]
        found = []
        if ids:
            query = [(n, v) for n, v in params if n not in ("_id", "_count", VALUE_REFERENCE)]
            found = await self.upstream.search("Group", [*query, ("_id", ",".join(ids)), ("_count", str(len(ids)))])
        wanted = [v for n, v in params if n == VALUE_REFERENCE]
        found = [g for g in found if _has_value_references(g, wanted) and _in_scope(caller, g)]
        base = self.settings.public_fhir_base
        bundle = {"resourceType": "Bundle", "type": "searchset",
                  "link": [{"relation": "self", "url": f"{base}/Group" + (f"?{request.query_string}"
                                                                          if request.query_string else "")}],
                  "entry": [{"fullUrl": f"{base}/Group/{g['id']}", "resource": g, "search": {"mode": "match"}}
                            for g in found]}
        return web.Response(body=orjson.dumps(bundle), content_type="application/fhir+json", charset="utf-8")
