"""Export kick-offs, answered 202 with the job's status URL (`sidecar.jobs.handlers` serves it and the files).

Kick-offs: `Group/{id}/$davinci-data-export` (ATR/PDex), `Group/{id}/$export` and `Patient/$export`
(Bulk Data), GET or POST. A partner exports only its own Member Match Groups and only payer-to-payer types its
scopes cover; an operator's unrestricted client exports anything, unfiltered.
"""
from __future__ import annotations

import orjson
from aiohttp import web

from sidecar.gate.caller import CALLER_KEY, Caller
from sidecar.auth.middleware import forbidden, note_audit, note_refusal
from sidecar.config import Settings
from sidecar.disclosure.dates import utc_now
from sidecar.disclosure.service_dates import DISCLOSED_MEMBER_TYPES
from sidecar.export.hapi_export import HapiExport
from sidecar.export.references import exported_reference_types
from sidecar.export.request import BadExport, ExportParams, filter_search, pairs_of_parameters, parse_export
from sidecar.fhir.body import BodyTooLarge, read_limited
from sidecar.fhir.outcome import outcome_response
from sidecar.fhir.resource_types import R4_RESOURCE_TYPES
from sidecar.jobs.handlers import accepted
from sidecar.jobs.runner import JobRunner
from sidecar.store import jobs
from sidecar.store.db import Store

PARTNER_EXPORT_TYPES = sorted(DISCLOSED_MEMBER_TYPES | {"Provenance"})
MAX_BODY = 256 * 1024


class ExportKickoff:
    def __init__(self, settings: Settings, store: Store, runner: JobRunner, hapi: HapiExport) -> None:
        self.settings = settings
        self.store = store
        self.runner = runner
        self.hapi = hapi

    async def _check_filters(self, params: ExportParams, allowed: list[str]) -> None:
        """A `_typeFilter` HAPI cannot run would fail the job later with HAPI's reasons; refuse it now instead."""
        for query in params.type_filters:
            if not await self.hapi.runs_search(*filter_search(query, params.types or allowed)):
                raise BadExport(f"_typeFilter {query[:80]!r} is not a search this server can run (an unknown "
                                "parameter or a malformed value)")

    async def handle(self, request: web.Request) -> web.Response:
        caller: Caller = request[CALLER_KEY]
        group_id = request.match_info.get("group")
        operation = request.path.rsplit("/", 1)[-1]
        level = "group" if group_id else "patient"
        if caller.is_partner and group_id is not None:
            owner = await self.store.run(jobs.group_owner, self.store, group_id)
            if owner != caller.client.organization:
                note_refusal(request, "not this client's Group")
                return outcome_response(404, "not-found", f"Group/{group_id} is not known")
        allowed = [t for t in (PARTNER_EXPORT_TYPES if caller.is_partner else sorted(R4_RESOURCE_TYPES))
                   if caller.scopes.allows(t, "r")]
        if not allowed:
            return forbidden(request, "the access token's scopes allow reading no exportable type")
        try:
            pairs = list(request.query.items())
            if request.method == "POST":
                try:
                    pairs += pairs_of_parameters(orjson.loads(await read_limited(request, MAX_BODY)))
                except BodyTooLarge as exc:
                    raise BadExport("the kick-off body is too large") from exc
                except orjson.JSONDecodeError as exc:
                    raise BadExport("the kick-off body is not JSON") from exc
            prefer = request.headers.get("Prefer")
            if prefer is not None and "respond-async" not in prefer:
                raise BadExport("only Prefer: respond-async is supported")
            params = parse_export(pairs, level, group_id, allowed, utc_now(), self.settings.timezone,
                                  self.settings.lookback_years, self.settings.export_since_floor, operation,
                                  unrestricted=not caller.is_partner)
            await self._check_filters(params, allowed)
        except BadExport as exc:
            note_refusal(request, str(exc))
            return outcome_response(exc.status, "invalid", str(exc),
                                    expression=[exc.expression] if exc.expression else None)
        request_url = f"{self.settings.public_fhir_base}/{request.path.removeprefix('/fhir/')}"
        if request.query_string:
            request_url += "?" + request.query_string
        job = await self.store.run(self.runner.create, jobs.EXPORT, caller.client.client_id,
                                   caller.client.organization, request_url,
                                   {"export": params.as_dict(), "unrestricted": not caller.is_partner,
                                    "reference_types": exported_reference_types(pairs, caller.scopes)})
        self.runner.submit(job)
        note_audit(request, job=job.id, export=params.as_dict())
        return accepted(self.settings, job)
