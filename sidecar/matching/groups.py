"""Member Match Groups for partners: `GET /fhir/Group` and `GET /fhir/Group/{id}` show a partner its own Groups only.

Which Groups are whose is recorded when `$bulk-member-match` stores them; a search is sent to HAPI narrowed to
those ids, with the PDex search parameters (`code`, `identifier`, `characteristic`,
`characteristic-value-reference`). Another organization's Group is the same 404 as a missing one. An operator's
unrestricted client goes through the ordinary proxy.
"""
from __future__ import annotations

from typing import Awaitable, Callable

import orjson
from aiohttp import web

from sidecar.access.caller import CALLER_KEY, Caller
from sidecar.auth.middleware import forbidden, note_refusal
from sidecar.config import Settings
from sidecar.fhir.body import BadForm, form_pairs
from sidecar.fhir.outcome import fhir_json_response, outcome_response
from sidecar.proxy.upstream import Upstream, UpstreamError
from sidecar.store import jobs
from sidecar.store.db import Store

SEARCH_PARAMETERS = {"code", "identifier", "characteristic", "characteristic-value-reference", "_id", "_count"}
MAX_GROUPS = 1000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class PartnerGroups:
    def __init__(self, settings: Settings, store: Store, upstream: Upstream, proxy: Handler) -> None:
        self.settings = settings
        self.store = store
        self.upstream = upstream
        self.proxy = proxy

    async def read(self, request: web.Request) -> web.StreamResponse:
        caller: Caller = request[CALLER_KEY]
        if not caller.is_partner:
            return await self.proxy(request)
        if not caller.scopes.allows("Group", "r"):
            return forbidden(request, "the access token's scopes do not allow reading Group")
        group_id = request.match_info["id"]
        found = []
        if await self.store.run(jobs.group_owner, self.store, group_id) == caller.client.organization:
            try:
                found = await self.upstream.by_ids("Group", [group_id])
            except UpstreamError as error:
                return error.response()
        if not found:
            note_refusal(request, "not this client's Group")
            return outcome_response(404, "not-found", f"Group/{group_id} is not known")
        return fhir_json_response(found[0])

    async def search(self, request: web.Request) -> web.StreamResponse:
        caller: Caller = request[CALLER_KEY]
        if not caller.is_partner:
            return await self.proxy(request)
        if not caller.scopes.allows("Group", "s"):
            return forbidden(request, "the access token's scopes do not allow searching Group")
        params = list(request.query.items())
        if request.method == "POST":
            try:
                params += await form_pairs(request)
            except BadForm as exc:
                return outcome_response(400, "invalid", str(exc))
        unknown = sorted({name for name, _ in params} - SEARCH_PARAMETERS)
        if unknown:
            return outcome_response(400, "not-supported", f"Group search does not take {', '.join(unknown)}")
        own = await self.store.run(jobs.groups_of, self.store, caller.client.organization)
        asked = {v for name, value in params if name == "_id" for v in value.split(",")}
        ids = [g for g in own if not asked or g in asked][-MAX_GROUPS:]
        found = []
        if ids:
            query = [(n, v) for n, v in params if n not in ("_id", "_count")]
            try:
                found = await self.upstream.search("Group", [*query, ("_id", ",".join(ids)), ("_count", str(len(ids)))])
            except UpstreamError as error:
                return error.response()
        base = self.settings.public_fhir_base
        bundle = {"resourceType": "Bundle", "type": "searchset",
                  "link": [{"relation": "self", "url": f"{base}/Group" + (f"?{request.query_string}"
                                                                          if request.query_string else "")}],
                  "entry": [{"fullUrl": f"{base}/Group/{g['id']}", "resource": g, "search": {"mode": "match"}}
                            for g in found]}
        return web.Response(body=orjson.dumps(bundle), content_type="application/fhir+json", charset="utf-8")
