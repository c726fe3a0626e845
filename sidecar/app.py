"""The aiohttp application: middlewares, routes and the objects that live as long as the app."""
from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import time
from pathlib import Path

from aiohttp import web

from sidecar.audit.chain import AuditLog, AuditRecord
from sidecar.auth.directory import Directory
from sidecar.auth.discovery import advertise_smart_security, smart_configuration_handler, token_url
from sidecar.auth.jwks import JwksCache
from sidecar.auth.middleware import BearerAuth
from sidecar.auth.token_endpoint import TokenEndpoint
from sidecar.auth.tokens import TokenService, audience_of, issuer_of
from sidecar.capability import CapabilityService
from sidecar.config import Settings
from sidecar.discovery.davinci_configuration import davinci_configuration_handler
from sidecar.fhir.boundary import answer_for
from sidecar.fhir.outcome import outcome_response
from sidecar.health import live, ready_handler
from sidecar.logs import flush_every, request_id
from sidecar.disclosure.answers import AnswerFilter
from sidecar.export.handlers import ExportKickoff
from sidecar.export.job import ExportJob
from sidecar.gate.gate import DisclosureGate
from sidecar.gate.pages import PageLinks
from sidecar.gate.reader import PartnerReader
from sidecar.gate.table import OPEN_ROUTES, PROXY_ROUTE_KEY, authorize, refused_route, register, resolve_proxied
from sidecar.hapi.client import HapiClient
from sidecar.jobs.handlers import JobHandlers
from sidecar.jobs.runner import JobRunner
from sidecar.matching.bulk import BulkMemberMatch, advertise_bulk_member_match
from sidecar.matching.groups import PartnerGroups
from sidecar.matching.operation import MemberMatch, advertise_member_match
from sidecar.matching.name_frequency import RosterNames
from sidecar.metrics.labels import route_label
from sidecar.metrics.listener import metrics_app
from sidecar.metrics.registry import Metrics
from sidecar.metrics.store_gauges import StoreGauges
from sidecar.matching.scoring import Scorer, load_nicknames, load_weights
from sidecar.members.pages import MemberPages
from sidecar.provenance.transmitter import payer_reference
from sidecar.proxy.routes import Refusal
from sidecar.proxy.handler import ProxyHandler
from sidecar.proxy.rewrite import UrlMap
from sidecar.store.db import Store, open_store
from sidecar.store.public_urls import announce
from sidecar.store.secrets import shared_secret

log = logging.getLogger("sidecar.access")

_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,128}$")

REQUEST_ID_KEY = web.RequestKey("request_id", str)
METRICS_KEY = web.AppKey("metrics", Metrics)
METRICS_APP_KEY = web.AppKey("metrics_app", web.Application)
LOG_FLUSH_SECONDS = 0.2
# Request ids: a random prefix per process and a counter, unique across replicas without a urandom call (a system
# call) per request.
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(1)


@web.middleware
async def request_context(request: web.Request, handler) -> web.StreamResponse:
    """Give each request an id (the client's, if sane), log it once as JSON, and be the one error boundary: bad
    input is a 400, HAPI trouble a 502/503/504 without HAPI's text, anything else a 500 naming only the request id."""
    incoming = request.headers.get("X-Request-ID", "")
    rid = incoming if _CLIENT_REQUEST_ID.match(incoming) else f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"
    request[REQUEST_ID_KEY] = rid
    token = request_id.set(rid)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except Exception as exc:
        answer = answer_for(exc)
        if answer is not None:
            status = answer.status
            return answer
        log.exception("unhandled error")
        return outcome_response(500, "exception", "internal error; quote the X-Request-ID when reporting it",
                                headers={"X-Request-ID": rid})
    finally:
        seconds = time.perf_counter() - started
        log.info("request", extra={"method": request.method, "path": request.path, "status": status,
                                   "duration_ms": round(seconds * 1000, 2)})
        metrics = request.app.get(METRICS_KEY)
        if metrics is not None:
            metrics.observe_request(route_label(request), status, seconds)
        request_id.reset(token)


async def _stamp_request_id(request: web.Request, response: web.StreamResponse) -> None:
    if REQUEST_ID_KEY in request:
        response.headers["X-Request-ID"] = request[REQUEST_ID_KEY]


def create_app(settings: Settings, store: Store | None = None) -> web.Application:
    store = store or open_store(settings.store_url, settings.data_dir)
    audit = AuditLog(store)
    announce(store, settings.public_base)
    tokens = TokenService(issuer=issuer_of(settings.public_base), audience=audience_of(settings.public_base),
                          lifetime=settings.access_token_lifetime, clock_skew=settings.clock_skew_seconds)
    directory = Directory(store, tokens, settings.state_refresh_seconds)
    jwks = JwksCache(settings.jwks_cache_seconds)
    bearer = BearerAuth(tokens, directory, audit, OPEN_ROUTES)
    metrics = Metrics()
    token_endpoint = TokenEndpoint(token_url(settings), directory, jwks, tokens, audit, settings.clock_skew_seconds,
                                   metrics)

    app = web.Application(middlewares=[request_context, bearer.middleware, authorize])
    app[METRICS_KEY] = metrics
    gauges = StoreGauges(store)
    metrics.registry.register(gauges)
    app[METRICS_APP_KEY] = metrics_app(metrics, gauges)
    upstream = HapiClient(settings, metrics)
    url_map = UrlMap.between(settings.upstream_base, settings.public_fhir_base)
    capability = CapabilityService(settings, upstream, url_map)
    capability.contributors.append(advertise_smart_security)
    disclosure = AnswerFilter.configured(settings, upstream.by_ids)
    links = PageLinks(shared_secret(store, "page-links", PageLinks.new_key).encode())
    reader = PartnerReader(upstream, url_map, DisclosureGate(disclosure), links, capability.search_catalog,
                           settings.public_fhir_base, payer_reference(settings))
    proxy = ProxyHandler(upstream, url_map, reader)
    weights = load_weights(Path(settings.match_weights_file) if settings.match_weights_file else None)
    roster_names = RosterNames(upstream, settings.match_name_frequency_seconds)
    metrics.roster_names.set_function(lambda: roster_names.frequencies.people)
    scorer = Scorer(weights, load_nicknames(), roster_names.frequencies)
    member_match = MemberMatch(settings, upstream, store, directory, scorer, metrics, roster_names)
    capability.contributors.append(advertise_member_match)
    runner = JobRunner(settings, store)
    job_handlers = JobHandlers(settings, store, runner)
    export_job = ExportJob(settings, store, upstream, disclosure, runner, metrics)
    export_kickoff = ExportKickoff(settings, store, runner, export_job.hapi)
    bulk_match = BulkMemberMatch(settings, store, runner, member_match, metrics)
    capability.contributors.append(advertise_bulk_member_match)

    async def through_proxy(request: web.Request) -> web.StreamResponse:
        # An operator's Group requests are ordinary proxied reads and searches.
        decision = resolve_proxied(request)
        if isinstance(decision, Refusal):
            return refused_route(request, decision)
        request[PROXY_ROUTE_KEY] = decision
        return await proxy.handle(request)

    groups = PartnerGroups(settings, store, upstream, through_proxy)

    async def lifecycle(app: web.Application):
        await upstream.start()
        await jwks.start()
        await directory.start()
        await audit.start()
        audit.record(AuditRecord("server", "started", detail={"public_url": settings.public_url}))
        await runner.start()
        log_flusher = asyncio.create_task(flush_every(LOG_FLUSH_SECONDS), name="log-flush")
        yield
        log_flusher.cancel()
        await roster_names.close()
        await runner.close()
        await directory.close()
        await audit.close()
        await jwks.close()
        await upstream.close()
        store.close()

    app.cleanup_ctx.append(lifecycle)
    app.on_response_prepare.append(_stamp_request_id)
    discovery = smart_configuration_handler(settings)
    app.router.add_get("/health/live", live, name="health-live")
    app.router.add_get("/health/ready", ready_handler(upstream, store), name="health-ready")
    app.router.add_get("/.well-known/smart-configuration", discovery, name="root-smart-configuration")
    davinci = davinci_configuration_handler(settings)
    app.router.add_get("/.well-known/davinci-configuration", davinci, name="root-davinci-configuration")
    app.router.add_post("/auth/token", token_endpoint.handle, name="token")
    register(app, {
        "metadata": capability.handle, "smart-configuration": discovery, "davinci-configuration": davinci,
        "member-match": member_match.handle, "bulk-member-match": bulk_match.kickoff,
        "davinci-data-export": export_kickoff.handle, "group-export": export_kickoff.handle,
        "patient-export": export_kickoff.handle, "bulk-status": job_handlers.status, "bulk-cancel": job_handlers.delete,
        "bulk-file": job_handlers.file, "group-search": groups.search, "group-search-post": groups.search,
        "group-read": groups.read, "proxy-base": proxy.handle, "proxy": proxy.handle,
    })
    # Members' pages: their own sub-application and session auth; the /fhir middlewares leave /member alone.
    MemberPages(settings, store, upstream, audit, directory, scorer).install(app)
    return app
