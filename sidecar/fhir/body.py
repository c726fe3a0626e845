"""Reading a request body: whole with a size limit (without trusting Content-Length alone), or as a search form."""
from __future__ import annotations

from urllib.parse import parse_qsl

from aiohttp import web

SEARCH_FORM = "application/x-www-form-urlencoded"
MAX_FORM = 256 * 1024
MAX_FORM_FIELDS = 1000


class BodyTooLarge(Exception):
    pass


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The whole body; BodyTooLarge past `limit` bytes (checked as it streams, so a lying header does not help)."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge()
    data = bytearray()
    async for chunk in request.content.iter_chunked(1 << 16):
        data += chunk
        if len(data) > limit:
            raise BodyTooLarge()
    return bytes(data)


class BadForm(Exception):
    """A POSTed search body that cannot be read as a search form; `status` is what the client is told."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


async def form_pairs(request: web.Request) -> list[tuple[str, str]]:
    """A POSTed search's fields. FHIR defines `_search` bodies as URL-encoded forms only; anything else (multipart,
    JSON, another charset, bytes that are not UTF-8) is refused rather than guessed at, so no body is half-read
    into a wider search. An empty body is an empty form whatever its type."""
    try:
        data = await read_limited(request, MAX_FORM)
    except BodyTooLarge as exc:
        raise BadForm("the search form is too large", 413) from exc
    if not data.strip():
        return []
    if request.content_type != SEARCH_FORM:
        raise BadForm(f"a _search body must be {SEARCH_FORM}, not {request.content_type[:80]}", 415)
    if (request.charset or "utf-8").lower() not in ("utf-8", "utf8"):
        raise BadForm(f"a _search form must be UTF-8, not {request.charset[:40]}", 415)
    try:
        return parse_qsl(data.decode("utf-8").rstrip(), keep_blank_values=True, strict_parsing=True, errors="strict",
                         max_num_fields=MAX_FORM_FIELDS)
    except UnicodeDecodeError as exc:
        raise BadForm("the search form is not valid UTF-8") from exc
    except ValueError as exc:
        raise BadForm("the search form is not a valid name=value&… form") from exc
