"""The HAPI client's one translation point: transport trouble and unusable answers become a typed HapiError."""
from __future__ import annotations

import ast
import asyncio
import logging
from pathlib import Path

import pytest

import sidecar.hapi.errors
from sidecar.config import Settings
from sidecar.devstack import free_port
from sidecar.fhir.hapi_trouble import status_and_code
from sidecar.hapi.client import HapiClient
from sidecar.hapi.errors import HapiError, HapiErrorKind
from sidecar.metrics.registry import Metrics


async def started_client(base: str, tmp_path: Path, read_timeout: float = 60.0) -> HapiClient:
    client = HapiClient(Settings(upstream_url=base, public_url="http://public.example", data_dir=tmp_path,
                                 upstream_read_timeout=read_timeout), Metrics())
    await client.start()
    return client


async def serve_raw(answer: bytes, delay: float = 0.0) -> tuple[asyncio.AbstractServer, str]:
    """A server that reads the request, waits `delay`, sends `answer` as it is and hangs up."""
    async def handle(reader, writer):
        await reader.read(1000)
        await asyncio.sleep(delay)
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/fhir"


def http_answer(status: str, body: bytes, content_type: str = "application/fhir+json") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body)


async def kind_of_search_failure(base: str, tmp_path: Path, read_timeout: float = 60.0) -> HapiError:
    client = await started_client(base, tmp_path, read_timeout)
    try:
        with pytest.raises(HapiError) as caught:
            await client.search("Patient", {"name": "x"})
        return caught.value
    finally:
        await client.close()


async def test_connection_refused_is_unavailable(tmp_path):
    error = await kind_of_search_failure(f"http://127.0.0.1:{free_port()}/fhir", tmp_path)
    assert error.kind is HapiErrorKind.UNAVAILABLE and error.transient


async def test_silence_past_the_read_timeout_is_a_timeout(tmp_path):
    server, base = await serve_raw(b"", delay=5)
    async with server:
        error = await kind_of_search_failure(base, tmp_path, read_timeout=0.3)
    assert error.kind is HapiErrorKind.TIMEOUT and error.transient


async def test_an_answer_that_is_not_http_is_malformed(tmp_path):
    server, base = await serve_raw(b"THIS IS NOT HTTP\r\n\r\n")
    async with server:
        error = await kind_of_search_failure(base, tmp_path)
    assert error.kind is HapiErrorKind.MALFORMED and not error.transient


async def test_a_body_cut_short_while_read_in_the_block_is_malformed(tmp_path):
    server, base = await serve_raw(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{\"resourceType\"")
    async with server:
        client = await started_client(base, tmp_path)
        try:
            with pytest.raises(HapiError) as caught:
                async with client.request("GET", f"{base}/Patient") as resp:
                    await resp.read()
        finally:
            await client.close()
    assert caught.value.kind is HapiErrorKind.MALFORMED


async def test_a_search_answer_that_is_not_json_is_malformed(tmp_path):
    server, base = await serve_raw(http_answer("200 OK", b"<html>proxy error</html>", "text/html"))
    async with server:
        error = await kind_of_search_failure(base, tmp_path)
    assert error.kind is HapiErrorKind.MALFORMED


async def test_a_search_hapi_fails_is_refused_without_hapis_words(tmp_path, caplog):
    caplog.set_level(logging.WARNING, "sidecar.hapi")
    outcome = b'{"resourceType":"OperationOutcome","issue":[{"diagnostics":"HHH000001 database at db.internal"}]}'
    server, base = await serve_raw(http_answer("500 Server Error", outcome))
    async with server:
        error = await kind_of_search_failure(base, tmp_path)
    assert error.kind is HapiErrorKind.REFUSED and not error.transient
    assert "HHH000001" not in error.reason and "127.0.0.1" not in error.reason
    assert any("HHH000001" in getattr(record, "answer", "") for record in caplog.records)


@pytest.mark.parametrize("kind, status, code", [
    (HapiErrorKind.UNAVAILABLE, 503, "transient"), (HapiErrorKind.TIMEOUT, 504, "timeout"),
    (HapiErrorKind.MALFORMED, 502, "exception"), (HapiErrorKind.REFUSED, 502, "exception")])
def test_each_kind_is_told_to_a_client_as_its_status_and_issue_code(kind, status, code):
    assert status_and_code(HapiError(kind)) == (status, code)


def test_the_error_module_knows_nothing_of_aiohttp():
    tree = ast.parse(Path(sidecar.hapi.errors.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(name.startswith("aiohttp") for name in imported)


async def counted_errors(base: str, tmp_path: Path) -> dict[str, float]:
    client = await started_client(base, tmp_path)
    try:
        with pytest.raises(HapiError):
            await client.search("Patient", {"name": "x"})
    finally:
        await client.close()
    return {kind: value for kind in ("unavailable", "server-error", "malformed")
            if (value := client.metrics.registry.get_sample_value("pdex_sidecar_hapi_errors_total",
                                                                  {"kind": kind}))}


async def test_hapi_unreachable_is_counted_as_unavailable(tmp_path):
    assert await counted_errors(f"http://127.0.0.1:{free_port()}/fhir", tmp_path) == {"unavailable": 1}


async def test_a_5xx_answer_is_counted_as_a_server_error(tmp_path):
    server, base = await serve_raw(http_answer("500 Server Error", b"{}"))
    async with server:
        assert await counted_errors(base, tmp_path) == {"server-error": 1}
