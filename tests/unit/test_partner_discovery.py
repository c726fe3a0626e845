"""`partners add --discover`: a partner's FHIR base from its HRex davinci-configuration, looked for under the URL
given and then at the host root, with an error (and no partner stored) when there is none to be had."""
from __future__ import annotations

import orjson
import pytest
from aiohttp import web

from sidecar.cli import main
from sidecar.client.partner_discovery import DiscoveryFailed, discover, document_urls, payer_endpoint
from sidecar.client.smart import ClientKey
from sidecar.config import Settings
from sidecar.devstack import free_port
from sidecar.discovery.davinci_configuration import davinci_configuration
from sidecar.store.sqlite import SqliteStore
from sidecar.store.partners import all_partners

DOC = "https://b.example/.well-known/davinci-configuration"


def endpoints(**by_code: str) -> dict:
    return {"identifier": {"system": "urn:x", "value": "b"}, "endpoints": by_code}


def offered(*codes: str) -> dict:
    return {"identifier": {"system": "urn:x", "value": "b"},
            "endpoints": {code: f"https://b.example/{code.replace('#', '-')}" for code in codes}}


def test_the_newest_pdex_version_this_sidecar_speaks_wins():
    document = offered("davinci_pdex_payer_endpoint#2.1", "davinci_pdex_payer_endpoint#2.2",
                       "davinci_pdex_payer_endpoint#3.0", "davinci_pdex_payer_endpoint",
                       "davinci_crd_hook_endpoint#2.2")
    found = payer_endpoint(document, DOC)
    assert (found.code, found.fhir_base) == ("davinci_pdex_payer_endpoint#2.2",
                                             "https://b.example/davinci_pdex_payer_endpoint-2.2")


def test_a_payer_endpoint_in_another_version_is_taken_when_it_is_the_only_one():
    found = payer_endpoint(offered("davinci_pdex_payer_endpoint", "davinci_pdex_payer_endpoint#2.0"), DOC)
    assert found.code == "davinci_pdex_payer_endpoint#2.0"


def test_our_own_document_names_our_public_fhir_base():
    found = payer_endpoint(davinci_configuration(Settings(public_url="https://a.example")), DOC)
    assert (found.code, found.fhir_base) == ("davinci_pdex_payer_endpoint#2.2", "https://a.example/fhir")


@pytest.mark.parametrize("document, problem", [
    (offered("davinci_pdex_patient_endpoint#2.1", "davinci_crd_hook_endpoint#2.2"),
     "names no payer-to-payer endpoint"),
    (endpoints(**{"davinci_pdex_payer_endpoint#2.2": "/fhir"}), "names no payer-to-payer endpoint"),
    ({"identifier": {"system": "urn:x", "value": "b"}}, "has no `endpoints` object"),
])
def test_a_document_without_a_usable_payer_endpoint_is_refused(document, problem):
    with pytest.raises(DiscoveryFailed, match=problem):
        payer_endpoint(document, DOC)


def test_a_base_is_looked_up_under_itself_then_at_the_host_root():
    assert document_urls("https://b.example/p2p/fhir/") == [
        "https://b.example/p2p/fhir/.well-known/davinci-configuration", DOC]
    assert document_urls("https://b.example") == [DOC]
    assert document_urls(DOC) == [DOC]
    with pytest.raises(DiscoveryFailed, match="absolute http"):
        document_urls("b.example/fhir")


async def test_a_document_at_the_host_root_is_found_from_the_base(aiohttp_server):
    async def root(request: web.Request) -> web.Response:
        return web.json_response(endpoints(**{"davinci_pdex_payer_endpoint#2.1": "https://b.example/fhir"}))

    app = web.Application()
    app.router.add_get("/.well-known/davinci-configuration", root)
    server = await aiohttp_server(app)
    found = await discover(str(server.make_url("/fhir")))
    assert found.fhir_base == "https://b.example/fhir"
    assert found.document_url == str(server.make_url("/.well-known/davinci-configuration"))


async def test_an_answer_that_is_not_json_is_named(aiohttp_server):
    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>welcome</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/.well-known/davinci-configuration", html)
    server = await aiohttp_server(app)
    with pytest.raises(DiscoveryFailed, match="not JSON") as failed:
        await discover(str(server.make_url("/fhir")))
    assert "/fhir/.well-known/davinci-configuration answered 404" in str(failed.value)


def test_an_unreachable_partner_exits_1_and_stores_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SIDECAR_DATA_DIR", str(tmp_path))
    key_file = tmp_path / "private.jwks"
    key_file.write_bytes(orjson.dumps({"keys": [ClientKey.generate("ES384").private_jwk()]}))
    status = main(["partners", "add", "--name", "payer-b", "--discover", f"http://127.0.0.1:{free_port()}/fhir",
                   "--client-id", "us", "--private-jwks", str(key_file)])
    assert status == 1
    assert "unreachable" in capsys.readouterr().err
    assert all_partners(SqliteStore(tmp_path)) == []
