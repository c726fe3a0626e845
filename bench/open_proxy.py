"""The proxy without its authorization layer: bench/auth.py's baseline, never deployed.

Every request is treated as the payer's own unrestricted client with all scopes, so the answers stream through
exactly as they do for such a client behind a token check; the difference between the two is the token check.
Reads the same SIDECAR_* settings as `pdex-sidecar serve`.
"""
from __future__ import annotations

import uvloop
from aiohttp import web

from sidecar.gate.caller import CALLER_KEY, Caller
from sidecar.app import request_context
from sidecar.auth.scopes import ScopeSet
from sidecar.config import load_settings
from sidecar.disclosure.answers import AnswerFilter
from sidecar.capability import CapabilityService
from sidecar.gate.gate import DisclosureGate
from sidecar.gate.pages import PageLinks
from sidecar.gate.reader import PartnerReader
from sidecar.hapi.client import HapiClient
from sidecar.gate.table import PROXY_ROUTE_KEY, resolve_proxied
from sidecar.metrics.registry import Metrics
from sidecar.proxy.handler import ProxyHandler
from sidecar.proxy.routes import Refusal
from sidecar.proxy.rewrite import UrlMap
from sidecar.store.clients import Client

EVERYONE = Caller(Client("open", "Organization/open", "system/*.*", {"keys": []}, None, True, True, 0),
                  ScopeSet.parse("system/*.*"), None)


@web.middleware
async def no_authorization(request: web.Request, handler):
    """Every caller may do everything: the route is resolved (as the table's authorize does) but nothing checked."""
    request[CALLER_KEY] = EVERYONE
    if "tail" not in request.match_info:
        return await handler(request)
    decision = resolve_proxied(request)
    if isinstance(decision, Refusal):
        return web.Response(status=decision.status)
    request[PROXY_ROUTE_KEY] = decision
    return await handler(request)


def main() -> None:
    settings = load_settings()
    upstream = HapiClient(settings, Metrics())
    url_map = UrlMap.between(settings.upstream_base, settings.public_fhir_base)
    gate = DisclosureGate(AnswerFilter.configured(settings, upstream.by_ids))
    reader = PartnerReader(upstream, url_map, gate, PageLinks(PageLinks.new_key().encode()),
                           CapabilityService(settings, upstream, url_map).search_catalog, settings.public_fhir_base)
    proxy = ProxyHandler(upstream, url_map, reader)

    async def lifecycle(app: web.Application):
        await upstream.start()
        yield
        await upstream.close()

    async def live(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(middlewares=[request_context, no_authorization])
    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/health/live", live)
    app.router.add_route("*", "/fhir/{tail:.*}", proxy.handle)
    web.run_app(app, host=settings.host, port=settings.port, print=None, access_log=None,
                loop=uvloop.new_event_loop())


if __name__ == "__main__":
    main()
