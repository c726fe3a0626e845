"""The HRex 1.2.0 `.well-known/davinci-configuration` document: the payer's identifier and the PDex payer-to-payer
endpoints, each version on the public FHIR base."""
from __future__ import annotations

from aiohttp import web

from sidecar.config import Settings
from sidecar.discovery.davinci_configuration import davinci_configuration, davinci_configuration_handler

PUBLIC = "https://payer.example/p2p"


def test_pdex_2_2_and_2_1_payer_endpoints_name_the_public_fhir_base():
    document = davinci_configuration(Settings(public_url=PUBLIC + "/"))
    assert document["endpoints"] == {"davinci_pdex_payer_endpoint#2.2": f"{PUBLIC}/fhir",
                                     "davinci_pdex_payer_endpoint#2.1": f"{PUBLIC}/fhir"}


def test_the_identifier_is_the_first_namespaced_payer_identifier():
    settings = Settings(public_url=PUBLIC,
                        payer_identifiers="Organization/us, http://hl7.org/fhir/sid/us-npi|1234567893, urn:x|y")
    assert davinci_configuration(settings)["identifier"] == {"system": "http://hl7.org/fhir/sid/us-npi",
                                                             "value": "1234567893"}


def test_without_a_namespaced_payer_identifier_the_public_url_names_the_payer():
    settings = Settings(public_url=PUBLIC, payer_identifiers="Organization/us")
    assert davinci_configuration(settings)["identifier"] == {"system": "urn:ietf:rfc:3986", "value": PUBLIC}


async def test_the_document_is_cacheable_json_for_any_origin(aiohttp_client):
    app = web.Application()
    app.router.add_get("/.well-known/davinci-configuration", davinci_configuration_handler(Settings(public_url=PUBLIC)))
    client = await aiohttp_client(app)
    resp = await client.get("/.well-known/davinci-configuration")
    assert resp.status == 200 and resp.content_type == "application/json"
    assert resp.headers["Cache-Control"] == "public, max-age=3600"
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert (await resp.json())["endpoints"]["davinci_pdex_payer_endpoint#2.2"] == f"{PUBLIC}/fhir"
