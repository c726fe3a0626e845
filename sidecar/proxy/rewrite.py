"""Keep the upstream host from ever reaching a client.

HAPI is told the public address through X-Forwarded-* headers and mostly emits public URLs itself; this module
rewrites whatever upstream URL remains, in headers and, chunk by chunk, in text bodies, so that bodies keep
streaming with flat memory.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

# Response headers whose values may carry upstream URLs.
URL_HEADERS = ("location", "content-location", "link")

_TEXT_TYPES = ("json", "xml", "ndjson", "text/", "html")


def is_text_content(content_type: str) -> bool:
    ct = content_type.lower()
    return any(marker in ct for marker in _TEXT_TYPES)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class UrlMap:
    """Upstream → public replacements, most specific first: the FHIR base, then the bare origin."""

    pairs: tuple[tuple[bytes, bytes], ...]

    @classmethod
    def between(cls, upstream_fhir_base: str, public_fhir_base: str) -> "UrlMap":
        up, pub = upstream_fhir_base.rstrip("/"), public_fhir_base.rstrip("/")
        pairs = [(up, pub)]
        if _origin(up) != _origin(pub):
            pairs.append((_origin(up), _origin(pub)))
        return cls(tuple((a.encode(), b.encode()) for a, b in pairs))

    def text(self, value: str) -> str:
        for old, new in self.pairs:
            value = value.replace(old.decode(), new.decode())
        return value

    def bytes(self, data: bytes) -> bytes:
        for old, new in self.pairs:
            data = data.replace(old, new)
        return data

    def stream(self) -> "StreamRewriter":
        return StreamRewriter(self)


class StreamRewriter:
    """Replaces the map's patterns in a byte stream fed in arbitrary chunks.

    It holds back at most the longest pattern's length minus one byte, so a pattern split across two chunks is
    still found, and memory stays flat whatever the body's size.
    """

    def __init__(self, url_map: UrlMap) -> None:
        self._map = url_map
        self._pairs = url_map.pairs
        self._keep = max(len(old) for old, _ in self._pairs) - 1
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._pending + chunk
        if len(data) <= self._keep:
            self._pending = data
            return b""
        # Everything but the last `keep` bytes can go, except that a match starting before the cut must go whole:
        # push the cut past such matches until none straddles it.
        cut, moved = len(data) - self._keep, True
        while moved:
            moved = False
            for old, _ in self._pairs:
                start = data.find(old, max(0, cut - len(old) + 1), cut + len(old) - 1)
                if start != -1 and start < cut < start + len(old):
                    cut, moved = start + len(old), True
        head, self._pending = data[:cut], data[cut:]
        return self._map.bytes(head)

    def flush(self) -> bytes:
        data, self._pending = self._pending, b""
        return self._map.bytes(data)
