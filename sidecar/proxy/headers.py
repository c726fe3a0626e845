"""Which headers the relay passes on: RFC 7230 §6.1 hop-by-hop headers never, nor those the proxy computes itself."""
from __future__ import annotations

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
    "transfer-encoding", "upgrade", "proxy-connection",
})
NOT_FORWARDED_UPSTREAM = HOP_BY_HOP | {"host", "content-length", "accept-encoding", "authorization", "cookie",
                                       "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto",
                                       "x-forwarded-port", "x-forwarded-prefix", "forwarded", "x-request-id"}
NOT_RETURNED = HOP_BY_HOP | {"content-length", "content-encoding", "server", "x-powered-by", "set-cookie"}
