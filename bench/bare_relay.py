"""The floor for bench/proxy_overhead.py: the least an aiohttp relay can do, never deployed.

GET only, on the same pooled client and uvloop as the sidecar: forward the path and Accept header, answer HAPI's
status and body. No routes, tokens, audit, logs, header handling or URL rewriting. Its ratio to HAPI is what any
proxy built on aiohttp pays on this machine; the sidecar's distance from it is what the product adds.
Reads SIDECAR_UPSTREAM_URL, SIDECAR_HOST and SIDECAR_PORT.
"""
from __future__ import annotations

import os

import aiohttp
import uvloop
from aiohttp import web

UPSTREAM = os.environ["SIDECAR_UPSTREAM_URL"].rstrip("/")
SESSION = web.AppKey("session", aiohttp.ClientSession)


async def session(app: web.Application):
    app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
    yield
    await app[SESSION].close()


async def relay(request: web.Request) -> web.Response:
    query = "?" + request.query_string if request.query_string else ""
    async with request.app[SESSION].get(f"{UPSTREAM}/{request.match_info['tail']}{query}",
                                        headers={"Accept": request.headers.get("Accept", "*/*")}) as resp:
        return web.Response(status=resp.status, body=await resp.read(),
                            content_type=resp.content_type, charset=resp.charset)


async def live(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    app = web.Application()
    app.cleanup_ctx.append(session)
    app.router.add_get("/health/live", live)
    app.router.add_get("/fhir/{tail:.*}", relay)
    web.run_app(app, host=os.environ.get("SIDECAR_HOST", "127.0.0.1"), port=int(os.environ["SIDECAR_PORT"]),
                print=None, access_log=None, loop=uvloop.new_event_loop())


if __name__ == "__main__":
    main()
