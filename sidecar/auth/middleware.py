"""Bearer tokens on every FHIR request, and one audit record per request.

Only the routes the route table (`sidecar.gate.table`) marks open (the CapabilityStatement, SMART and Da Vinci
discovery) go without a token; every other path under `/fhir` gets a caller or a 401 here before any handler runs.
The table's `authorize` middleware then applies the route's scope; this layer records the decision with the request.
"""
from __future__ import annotations

import functools
import logging

from aiohttp import web

from sidecar.gate.caller import CALLER_KEY, Caller
from sidecar.audit.chain import AuditLog
from sidecar.audit.request_record import RECORD_KEY, RequestRecord, record_of
from sidecar.auth.directory import Directory
from sidecar.auth.scopes import ScopeError, ScopeSet
from sidecar.auth.tokens import TokenInvalid, TokenService
from sidecar.fhir.boundary import answer_for
from sidecar.fhir.outcome import outcome_response

log = logging.getLogger("sidecar.auth")

REALM = 'Bearer realm="pdex-sidecar"'


@functools.lru_cache(maxsize=4096)
def _scopes_of(text: str) -> ScopeSet:
    """Tokens repeat a handful of scope strings; parse each once, not on every request."""
    return ScopeSet.parse(text)


def unauthorized(description: str | None) -> web.Response:
    challenge = REALM if description is None else f'{REALM}, error="invalid_token", error_description="{description}"'
    return outcome_response(401, "login", description or "a bearer access token is required",
                            headers={"WWW-Authenticate": challenge})


def forbidden(request: web.Request, reason: str) -> web.Response:
    """403 for a valid token whose scopes or grants do not cover the request (recorded with the request)."""
    note_refusal(request, reason)
    return outcome_response(403, "forbidden", reason,
                            headers={"WWW-Authenticate": f'{REALM}, error="insufficient_scope"'})


def note_refusal(request: web.Request, reason: str) -> None:
    record_of(request).refuse(reason)


def note_audit(request: web.Request, **detail: object) -> None:
    """Facts a handler adds to the request's audit record (a match's field contributions, say)."""
    record_of(request).note(**detail)


def note_disclosure(request: web.Request, withheld: list[dict], transformed: int) -> None:
    """What the disclosure filter withheld (with rule, element and code) or changed, for the request's audit record."""
    record_of(request).withheld(withheld, transformed)


class BearerAuth:
    def __init__(self, tokens: TokenService, directory: Directory, audit: AuditLog,
                 open_routes: frozenset[str] = frozenset()) -> None:
        self.tokens = tokens
        self.directory = directory
        self.audit = audit
        self.open_routes = open_routes

    async def caller_for(self, request: web.Request) -> Caller | str:
        """The caller, or why there is none, phrased for the client ("" when no token was sent)."""
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return ""
        try:
            checked = self.tokens.check(token.strip())
        except TokenInvalid as exc:
            return str(exc)
        client = self.directory.clients.get(checked.client_id)
        if client is None or not client.enabled or checked.issued_at < client.tokens_valid_after:
            return "the client of this access token is disabled"
        try:
            scopes = _scopes_of(checked.scope)
        except ScopeError:
            return "the access token carries scopes this server no longer grants"
        patients = None if client.unrestricted else await self.directory.patients_for(client.organization)
        return Caller(client, scopes, patients)

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        path = request.path
        if not (path == "/fhir" or path.startswith("/fhir/")):
            return await handler(request)
        record = request[RECORD_KEY] = RequestRecord(request.method + " " + request.path_qs[:2000])
        status = 500
        try:
            if (request.match_info.route.name or "").split(".")[0] not in self.open_routes:
                caller = await self.caller_for(request)
                if not isinstance(caller, Caller):
                    record.refuse(caller or "no bearer token")
                    status = 401
                    return unauthorized(caller or None)
                record.client_id, record.organization = caller.client.client_id, caller.client.organization
                request[CALLER_KEY] = caller
            response = await handler(request)
            status = response.status
            return response
        except Exception as exc:
            answer = answer_for(exc)
            if answer is None:
                raise
            if not record.refusal:
                record.refuse(str(exc))  # bad input or HAPI trouble, worded as the client was told
            status = answer.status
            return answer
        finally:
            self.audit.record(record.audit(status))
