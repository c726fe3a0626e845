"""HAPI down, slow or garbled: the client always gets an OperationOutcome, never a crash or a trace."""
from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from sidecar.app import create_app
from sidecar.config import Settings
from sidecar.devstack import free_port
from sidecar.logs import JsonFormatter
from sidecar.store.sqlite import SqliteStore
from tests.smart import bearer_headers, register_client

TOKEN_URL = "http://public.example/auth/token"


def settings_for(upstream: str, tmp_path: Path, read_timeout: float = 60.0) -> Settings:
    return Settings(upstream_url=upstream, public_url="http://public.example", data_dir=tmp_path,
                    upstream_read_timeout=read_timeout)


async def serve_raw(handler) -> tuple[asyncio.AbstractServer, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/fhir"


async def authorized_client(aiohttp_client, settings: Settings):
    """A test client of the app, and headers with an operator client's token."""
    operator = register_client(settings.data_dir, unrestricted=True)
    client = await aiohttp_client(create_app(settings))
    return client, await bearer_headers(client, TOKEN_URL, operator, post_to="/auth/token")


async def outcome_of(resp) -> dict:
    assert resp.headers["Content-Type"].startswith("application/fhir+json")
    body = await resp.json(content_type=None)
    assert body["resourceType"] == "OperationOutcome"
    return body["issue"][0]


async def test_hapi_unreachable_is_503_transient(aiohttp_client, tmp_path):
    client, auth = await authorized_client(aiohttp_client,
                                           settings_for(f"http://127.0.0.1:{free_port()}/fhir", tmp_path))
    resp = await client.get("/fhir/Patient?name=x", headers=auth)
    assert resp.status == 503
    assert (await outcome_of(resp))["code"] == "transient"


async def test_metadata_with_hapi_unreachable_is_503(aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(settings_for(f"http://127.0.0.1:{free_port()}/fhir", tmp_path)))
    resp = await client.get("/fhir/metadata")
    assert resp.status == 503


async def test_readiness_is_503_while_hapi_is_unreachable(aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(settings_for(f"http://127.0.0.1:{free_port()}/fhir", tmp_path)))
    assert (await client.get("/health/ready")).status == 503
    assert (await client.get("/health/live")).status == 200


async def test_hapi_silent_past_the_read_timeout_is_504(aiohttp_client, tmp_path):
    async def silent(reader, writer):
        await asyncio.sleep(5)
        writer.close()

    server, base = await serve_raw(silent)
    async with server:
        client, auth = await authorized_client(aiohttp_client, settings_for(base, tmp_path, read_timeout=0.3))
        resp = await client.get("/fhir/Patient", headers=auth)
        assert resp.status == 504
        assert (await outcome_of(resp))["code"] == "timeout"


async def test_garbage_instead_of_http_is_502(aiohttp_client, tmp_path):
    async def garbage(reader, writer):
        await reader.read(100)
        writer.write(b"THIS IS NOT HTTP\r\n\r\n")
        await writer.drain()
        writer.close()

    server, base = await serve_raw(garbage)
    async with server:
        client, auth = await authorized_client(aiohttp_client, settings_for(base, tmp_path))
        resp = await client.get("/fhir/Patient", headers=auth)
        assert resp.status == 502
        issue = await outcome_of(resp)
        assert issue["code"] == "exception" and "127.0.0.1" not in issue["diagnostics"]


async def test_capability_statement_that_is_not_json_is_502(aiohttp_client, tmp_path):
    async def html(reader, writer):
        await reader.read(1000)
        body = b"<html>proxy error</html>"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    server, base = await serve_raw(html)
    async with server:
        client = await aiohttp_client(create_app(settings_for(base, tmp_path)))
        resp = await client.get("/fhir/metadata")
        assert resp.status == 502


async def test_refused_routes_never_open_an_upstream_connection(aiohttp_client, tmp_path):
    connections = []

    async def record(reader, writer):
        connections.append(1)
        writer.close()

    server, base = await serve_raw(record)
    async with server:
        client, auth = await authorized_client(aiohttp_client, settings_for(base, tmp_path))
        for method, path in [("POST", "/fhir/Patient"), ("DELETE", "/fhir/Patient/1"), ("POST", "/fhir"),
                             ("GET", "/fhir/Patient/1/_history"), ("POST", "/fhir/$graphql")]:
            resp = await client.request(method, path, json={"resourceType": "Bundle"}, headers=auth)
            assert resp.status in (403, 405)
            await outcome_of(resp)
    assert connections == []


async def test_unknown_non_fhir_path_is_a_404_operation_outcome(aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(settings_for(f"http://127.0.0.1:{free_port()}/fhir", tmp_path)))
    resp = await client.get("/nothing-here")
    assert resp.status == 404
    await outcome_of(resp)


def test_log_records_are_json_with_the_request_id():
    from sidecar.logs import request_id

    token = request_id.set("rid-1")
    try:
        record = logging.LogRecord("sidecar.test", logging.INFO, __file__, 1, "hello %s", ("world",), None)
        record.status = 200
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id.reset(token)
    assert line["msg"] == "hello world" and line["request_id"] == "rid-1" and line["status"] == 200


@pytest.fixture(autouse=True)
def _quiet_logs(caplog):
    caplog.set_level(logging.WARNING)


async def test_hapi_trouble_is_audited_with_the_status_the_client_got(aiohttp_client, tmp_path):
    client, auth = await authorized_client(aiohttp_client,
                                           settings_for(f"http://127.0.0.1:{free_port()}/fhir", tmp_path))
    resp = await client.get("/fhir/Patient/p1", headers=auth)
    assert resp.status == 503
    await asyncio.sleep(0.3)  # audit records are written in batches
    store = SqliteStore(tmp_path)
    try:
        detail = store.scalar("SELECT detail FROM audit WHERE request LIKE 'GET /fhir/Patient/p1%'")
    finally:
        store.close()
    assert json.loads(detail)["status"] == 503
