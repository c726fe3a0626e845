"""A download that breaks half-way resumes where it stopped (Range), instead of starting over or giving up."""
from __future__ import annotations

import aiohttp
from aiohttp import web

from sidecar.client.connection import PartnerConnection
from sidecar.client.smart import ClientKey

CONTENT = b"".join(b'{"resourceType":"Observation","id":"o%d"}\n' % n for n in range(5000))


async def test_a_broken_download_resumes_from_where_it_stopped(aiohttp_server, tmp_path):
    source = tmp_path / "served.ndjson"
    source.write_bytes(CONTENT)
    ranges: list[str | None] = []

    async def serve(request: web.Request) -> web.StreamResponse:
        ranges.append(request.headers.get("Range"))
        if len(ranges) == 1:  # the first attempt dies half-way through the body
            response = web.StreamResponse(headers={"Content-Length": str(len(CONTENT))})
            await response.prepare(request)
            await response.write(CONTENT[:len(CONTENT) // 2])
            request.transport.close()
            return response
        return web.FileResponse(source)

    app = web.Application()
    app.router.add_get("/file", serve)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session:
        connection = PartnerConnection(session, str(server.make_url("/fhir")), "us", ClientKey.generate(), "x",
                                       retries=2, backoff=0.01)
        target = tmp_path / "downloaded.ndjson"
        await connection.download(str(server.make_url("/file")), target, authorized=False)
    assert target.read_bytes() == CONTENT
    assert ranges[0] is None and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-"
