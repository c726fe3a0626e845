"""The metrics listener: `GET /metrics` on its own host and port, apart from the public listener.

Partners reach the public listener only; this one is bound to `metrics_host:metrics_port` (loopback by default) and
serves nothing else, so no token decides who reads it: the network does (README "Metrics").
"""
from __future__ import annotations

import logging
from typing import AsyncIterator, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sidecar.config import Settings
from sidecar.metrics.registry import Metrics
from sidecar.metrics.store_gauges import StoreGauges

log = logging.getLogger("sidecar.metrics")


def metrics_app(metrics: Metrics, gauges: StoreGauges) -> web.Application:
    async def scrape(request: web.Request) -> web.Response:
        await gauges.refresh()
        return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    return app


def metrics_listener(settings: Settings, app: web.Application) -> Callable[[web.Application],
                                                                           AsyncIterator[None]]:
    """A cleanup context for the public app that runs `app` on the metrics host and port while it runs."""
    async def listen(_: web.Application) -> AsyncIterator[None]:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, settings.metrics_host, settings.metrics_port).start()
        log.info("metrics listening", extra={"listen": f"{settings.metrics_host}:{settings.metrics_port}"})
        yield
        await runner.cleanup()

    return listen
