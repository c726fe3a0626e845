"""The aiohttp application: middlewares, routes and the objects that live as long as the app."""
from __future__ import annotations

import logging
import re
import time
import uuid

from aiohttp import web

from sidecar.capability import CapabilityService
from sidecar.config import Settings
from sidecar.fhir.outcome import outcome_response
from sidecar.health import live, ready_handler
from sidecar.logs import request_id
from sidecar.proxy.handler import ProxyHandler
from sidecar.proxy.rewrite import UrlMap
from sidecar.proxy.upstream import Upstream

log = logging.getLogger("sidecar.access")

_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,128}$")

REQUEST_ID_KEY = web.RequestKey("request_id", str)


@web.middleware
async def request_context(request: web.Request, handler) -> web.StreamResponse:
    """Give each request an id (the client's, if sane), log it once as JSON, and never let an error escape raw."""
    incoming = request.headers.get("X-Request-ID", "")
    rid = incoming if _CLIENT_REQUEST_ID.match(incoming) else uuid.uuid4().hex
    request[REQUEST_ID_KEY] = rid
    token = request_id.set(rid)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        return outcome_response(exc.status, "not-found" if exc.status == 404 else "processing",
                                exc.reason, headers={"X-Request-ID": rid})
    except Exception:
        log.exception("unhandled error")
        return outcome_response(500, "exception", "internal error; quote the X-Request-ID when reporting it",
                                headers={"X-Request-ID": rid})
    finally:
        log.info("request", extra={"method": request.method, "path": request.path, "status": status,
                                   "duration_ms": round((time.perf_counter() - started) * 1000, 2)})
        request_id.reset(token)


async def _stamp_request_id(request: web.Request, response: web.StreamResponse) -> None:
    if REQUEST_ID_KEY in request:
        response.headers["X-Request-ID"] = request[REQUEST_ID_KEY]


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[request_context])
    upstream = Upstream(settings)
    url_map = UrlMap.between(settings.upstream_base, settings.public_fhir_base)
    capability = CapabilityService(settings, upstream, url_map)
    proxy = ProxyHandler(upstream, url_map)

    async def lifecycle(app: web.Application):
        await upstream.start()
        yield
        await upstream.close()

    app.cleanup_ctx.append(lifecycle)
    app.on_response_prepare.append(_stamp_request_id)
    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready_handler(upstream))
    app.router.add_get("/fhir/metadata", capability.handle)
    app.router.add_route("*", "/fhir", proxy.handle)
    app.router.add_route("*", "/fhir/{tail:.*}", proxy.handle)
    return app
