"""The route table: every `/fhir` route the sidecar serves, with its interaction and what its token must allow.

`register` is the only way a `/fhir` route is added, and `authorize` is the default-deny middleware that applies
the table before any handler runs: a route outside the table is a 404, an open route needs no token, every other
route needs the scope its entry declares (403 otherwise). The catch-all proxy route is resolved here too
(`sidecar.proxy.routes.resolve`), so its reads, searches, pages and `$everything` are authorized per interaction
and type before the proxy sees them; the resolved route travels with the request (`PROXY_ROUTE_KEY`).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Awaitable, Callable

from aiohttp import web

from sidecar.gate.caller import CALLER_KEY, Caller
from sidecar.audit.request_record import record_of
from sidecar.auth.middleware import forbidden, note_refusal
from sidecar.export.handlers import PARTNER_EXPORT_TYPES
from sidecar.fhir.outcome import outcome_response
from sidecar.proxy.routes import Refusal, Route, resolve

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PROXY_ROUTE_KEY = web.RequestKey("proxy_route", Route)


class Needs(Enum):
    OPEN = "no token"
    OPERATION = "the operation's scope"
    READ = "read of the type"
    SEARCH = "search of the type"
    EXPORT = "read of an exportable type"
    OWNER = "a token of the client that started the job (others get 404)"
    RESOLVED = "per resolved interaction: read, search, page or $everything of the type"


@dataclass(frozen=True)
class FhirRoute:
    name: str
    methods: tuple[str, ...]
    path: str
    interaction: str
    needs: Needs
    resource_type: str | None = None
    operation: str | None = None


ROUTES: tuple[FhirRoute, ...] = (
    FhirRoute("metadata", ("GET",), "/fhir/metadata", "capabilities", Needs.OPEN),
    FhirRoute("smart-configuration", ("GET",), "/fhir/.well-known/smart-configuration", "discovery", Needs.OPEN),
    FhirRoute("davinci-configuration", ("GET",), "/fhir/.well-known/davinci-configuration", "discovery",
              Needs.OPEN),
    FhirRoute("member-match", ("POST",), "/fhir/Patient/$member-match", "operation", Needs.OPERATION, "Patient",
              "$member-match"),
    FhirRoute("bulk-member-match", ("POST",), "/fhir/Group/$bulk-member-match", "operation", Needs.OPERATION,
              "Group", "$bulk-member-match"),
    FhirRoute("davinci-data-export", ("GET", "POST"), "/fhir/Group/{group:[A-Za-z0-9.-]{1,64}}/$davinci-data-export",
              "export", Needs.EXPORT, "Group"),
    FhirRoute("group-export", ("GET", "POST"), "/fhir/Group/{group:[A-Za-z0-9.-]{1,64}}/$export", "export",
              Needs.EXPORT, "Group"),
    FhirRoute("patient-export", ("GET", "POST"), "/fhir/Patient/$export", "export", Needs.EXPORT, "Patient"),
    FhirRoute("bulk-status", ("GET",), "/fhir/bulk-status/{job}", "job-status", Needs.OWNER),
    FhirRoute("bulk-cancel", ("DELETE",), "/fhir/bulk-status/{job}", "job-cancel", Needs.OWNER),
    FhirRoute("bulk-file", ("GET",), "/fhir/bulk-files/{job}/{file}", "job-file", Needs.OWNER),
    FhirRoute("group-search", ("GET",), "/fhir/Group", "search-type", Needs.SEARCH, "Group"),
    FhirRoute("group-search-post", ("POST",), "/fhir/Group/_search", "search-type", Needs.SEARCH, "Group"),
    FhirRoute("group-read", ("GET",), "/fhir/Group/{id:[A-Za-z0-9.-]{1,64}}", "read", Needs.READ, "Group"),
    FhirRoute("proxy-base", ("*",), "/fhir", "proxied", Needs.RESOLVED),
    FhirRoute("proxy", ("*",), "/fhir/{tail:.*}", "proxied", Needs.RESOLVED),
)
_BY_NAME = {route.name: route for route in ROUTES}
OPEN_ROUTES = frozenset(route.name for route in ROUTES if route.needs is Needs.OPEN)


def register(app: web.Application, handlers: dict[str, Handler]) -> None:
    """Add every table route with its handler; a handler for a route not in the table, or a route without one,
    is a programming error caught at start-up."""
    if set(handlers) != set(_BY_NAME):
        raise ValueError(f"route table and handlers differ: {sorted(set(handlers) ^ set(_BY_NAME))}")
    for route in ROUTES:
        for method in route.methods:
            suffix = "any" if method == "*" else method.lower()
            app.router.add_route(method, route.path, handlers[route.name], name=f"{route.name}.{suffix}")


def table_route(request: web.Request) -> FhirRoute | None:
    return _BY_NAME.get(route_name(request))


def route_name(request: web.Request) -> str:
    """The table name of the route a request matched ("" for routes outside the table)."""
    return (request.match_info.route.name or "").split(".")[0]


def resolve_proxied(request: web.Request) -> Route | Refusal:
    """What a request below the FHIR base is, as `sidecar.proxy.routes` resolves it (from its decoded path)."""
    segments = [s for s in request.path.removeprefix("/fhir").split("/") if s]
    return resolve(request.method, segments, request.query)


def refused_route(request: web.Request, decision: Refusal) -> web.Response:
    note_refusal(request, decision.reason)
    headers = {"Allow": ", ".join(decision.allow)} if decision.allow else None
    return outcome_response(decision.status, decision.code, decision.reason, headers=headers)


def _exportable(caller: Caller) -> bool:
    return caller.scopes.allows_any_type("r") if not caller.is_partner else any(
        caller.scopes.allows(t, "r") for t in PARTNER_EXPORT_TYPES)


def scope_refusal(caller: Caller, route: Route) -> str | None:
    """Why the caller's token does not cover a resolved proxy route, or None when it does."""
    if route.interaction == "capabilities":
        return None
    if route.interaction == "page":
        return None if caller.scopes.allows_any_type("s") else "the access token grants no search scope"
    resource_type = route.resource_type or ""
    # A Binary leaves only with a released DocumentReference that points to it (the reader checks that).
    binary_read = resource_type == "Binary" and route.interaction == "read"
    if not caller.may_use_type(resource_type) and not binary_read:
        return f"{resource_type} is not available to partner clients"
    permission = "s" if route.interaction == "search-type" else "r"
    if not caller.scopes.allows(resource_type, permission):
        verb = "read" if permission == "r" else "search"
        return f"the access token's scopes do not allow {verb} of {resource_type}"
    return None


def _refusal(caller: Caller, route: FhirRoute) -> str | None:
    if route.needs is Needs.OPERATION:
        allowed = caller.scopes.allows_operation(route.resource_type or "", route.operation or "")
        return None if allowed else f"the access token's scopes do not allow {route.operation}"
    if route.needs is Needs.READ and not caller.scopes.allows(route.resource_type or "", "r"):
        return f"the access token's scopes do not allow reading {route.resource_type}"
    if route.needs is Needs.SEARCH and not caller.scopes.allows(route.resource_type or "", "s"):
        return f"the access token's scopes do not allow searching {route.resource_type}"
    if route.needs is Needs.EXPORT and not _exportable(caller):
        return "the access token's scopes allow reading no exportable type"
    return None


@web.middleware
async def authorize(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Default deny: apply the table's entry for the request's route before its handler runs."""
    if not (request.path == "/fhir" or request.path.startswith("/fhir/")):
        return await handler(request)
    route = table_route(request)
    if route is None:
        return outcome_response(404, "not-found", "unknown path")
    if route.needs is Needs.OPEN:
        return await handler(request)
    caller: Caller = request[CALLER_KEY]
    record = record_of(request)
    record.route, record.interaction = route.name, route.interaction
    if route.needs is Needs.RESOLVED:
        decision = resolve_proxied(request)
        if isinstance(decision, Refusal):
            return refused_route(request, decision)
        record.interaction = decision.interaction
        refusal = scope_refusal(caller, decision)
        if refusal:
            return forbidden(request, refusal)
        request[PROXY_ROUTE_KEY] = decision
        return await handler(request)
    refusal = _refusal(caller, route)
    if refusal:
        return forbidden(request, refusal)
    return await handler(request)
