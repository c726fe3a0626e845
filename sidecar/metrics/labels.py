"""The `route` label of a request: bounded, whatever path a client sends."""
from __future__ import annotations

from aiohttp import web

UNMATCHED = "unmatched"


def route_label(request: web.Request) -> str:
    """The route table's name (`proxy`, `member-match`...) or another named route's; for an unnamed route its
    pattern (`/member/sign-in`); `unmatched` for a path no route has (never the path itself)."""
    info = request.match_info
    if info.http_exception is not None:
        return UNMATCHED
    route = info.route
    if route.name:
        return route.name.split(".")[0]
    return route.resource.canonical if route.resource is not None else UNMATCHED
