"""Reading a request body: whole with a size limit (without trusting Content-Length alone), or as a search form."""
from __future__ import annotations

from aiohttp import web


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
    pass


async def form_pairs(request: web.Request) -> list[tuple[str, str]]:
    """A POSTed search form's text fields; BadForm when it is not valid UTF-8."""
    try:
        form = await request.post()
    except ValueError as exc:
        raise BadForm("the search form is not valid UTF-8") from exc
    return [(k, v) for k, v in form.items() if isinstance(v, str)]
