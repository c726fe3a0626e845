"""A POSTed `_search` body is read as a URL-encoded UTF-8 form or refused with a 4xx, never a 500."""
from __future__ import annotations

import pytest
from aiohttp import web

from sidecar.fhir.body import BadForm, form_pairs


async def echo(request: web.Request) -> web.Response:
    try:
        return web.json_response(await form_pairs(request))
    except BadForm as exc:
        return web.json_response({"refused": str(exc)}, status=exc.status)


@pytest.fixture
async def client(aiohttp_client):
    app = web.Application()
    app.router.add_post("/_search", echo)
    return await aiohttp_client(app)


async def post(client, data: bytes, content_type: str | None) -> tuple[int, object]:
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.post("/_search", data=data, headers=headers)
    return response.status, await response.json()


async def test_a_urlencoded_form_gives_its_fields_in_order(client):
    assert await post(client, b"code=match&_id=a%2Cb", "application/x-www-form-urlencoded") == (
        200, [["code", "match"], ["_id", "a,b"]])


async def test_an_empty_body_is_an_empty_form_whatever_its_type(client):
    assert await post(client, b"", None) == (200, [])


async def test_a_multipart_body_is_415(client):
    body = b'--b\r\nContent-Disposition: form-data; name="code"\r\n\r\nmatch\r\n--b--\r\n'
    status, answer = await post(client, body, "multipart/form-data; boundary=b")
    assert status == 415 and "application/x-www-form-urlencoded" in answer["refused"]


async def test_a_multipart_body_with_a_broken_boundary_is_415(client):
    assert (await post(client, b"--nope\r\n\r\ncode", "multipart/form-data; boundary=other"))[0] == 415


async def test_a_json_body_is_415(client):
    assert (await post(client, b'{"code": "match"}', "application/fhir+json"))[0] == 415


async def test_a_form_in_another_charset_is_415(client):
    status, answer = await post(client, b"code=match", "application/x-www-form-urlencoded; charset=latin-1")
    assert status == 415 and "UTF-8" in answer["refused"]


@pytest.mark.parametrize("body", [b"code=\xff\xfe", b"code=%ff%fe"], ids=["raw", "percent-encoded"])
async def test_a_form_that_is_not_utf8_is_400(client, body):
    status, answer = await post(client, body, "application/x-www-form-urlencoded")
    assert status == 400 and "UTF-8" in answer["refused"]


async def test_a_field_without_a_value_is_400(client):
    assert (await post(client, b"code", "application/x-www-form-urlencoded"))[0] == 400


async def test_a_form_past_the_size_limit_is_413(client):
    assert (await post(client, b"code=" + b"x" * 300_000, "application/x-www-form-urlencoded"))[0] == 413
