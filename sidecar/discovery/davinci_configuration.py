"""HRex 1.2.0 endpoint discovery: `.well-known/davinci-configuration`, the payer's identifier and the Da Vinci
endpoints this deployment offers (HRex's `HRexWellknownDefinition` logical model: `identifier` and `endpoints`, a
map from endpoint code to URL).

HRex names endpoints by the FHIR base each IG's API lives at, per version (`davinci_pdex_payer_endpoint#2.1`);
`$member-match`, `$bulk-member-match`, the exports and SMART discovery all live under that base, so the base is
all a partner needs. HRex lists PDex payer codes up to `#2.1` and makes codes for later final versions valid by
the same convention, hence `#2.2`.
"""
from __future__ import annotations

from aiohttp import web

from sidecar.config import Settings

PAYER_ENDPOINT = "davinci_pdex_payer_endpoint"
# Decision 1: certified against PDex 2.2.0, and PDex 2.1.0 partners keep working on the same base.
PDEX_VERSIONS = ("2.2", "2.1")
URI_SYSTEM = "urn:ietf:rfc:3986"
# The document changes only when the deployment's settings do; HRex asks that a published one stay valid an hour.
CACHE_SECONDS = 3600


def payer_identifier(settings: Settings) -> dict:
    """The first `system|value` of `payer_identifiers` (HRex requires a namespaced identifier); until one is set,
    the payer's public URL names it."""
    for item in settings.payer_identifiers.split(","):
        system, bar, value = item.strip().partition("|")
        if bar and system and value:
            return {"system": system, "value": value}
    return {"system": URI_SYSTEM, "value": settings.public_base}


def davinci_configuration(settings: Settings) -> dict:
    return {"identifier": payer_identifier(settings),
            "endpoints": {f"{PAYER_ENDPOINT}#{version}": settings.public_fhir_base for version in PDEX_VERSIONS}}


def davinci_configuration_handler(settings: Settings):
    document = davinci_configuration(settings)
    headers = {"Access-Control-Allow-Origin": "*", "Cache-Control": f"public, max-age={CACHE_SECONDS}"}

    async def handle(request: web.Request) -> web.Response:
        return web.json_response(document, headers=headers)

    return handle
