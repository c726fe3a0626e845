"""SMART discovery: `.well-known/smart-configuration` and the security section of the CapabilityStatement."""
from __future__ import annotations

from aiohttp import web

from sidecar.auth.scopes import OPERATION_ALIASES
from sidecar.config import Settings

OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def token_url(settings: Settings) -> str:
    return f"{settings.public_base}/auth/token"


def smart_configuration(settings: Settings) -> dict:
    return {
        "token_endpoint": token_url(settings),
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": ["system/*.rs", "system/*.read", "system/Patient.$member-match",
                             "system/Group.$bulk-member-match", *OPERATION_ALIASES],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
    }


def smart_configuration_handler(settings: Settings):
    document = smart_configuration(settings)

    async def handle(request: web.Request) -> web.Response:
        return web.json_response(document, headers={"Access-Control-Allow-Origin": "*"})

    return handle


def advertise_smart_security(statement: dict, settings: Settings) -> None:
    """CapabilityStatement `rest.security`: SMART-on-FHIR service and the token URL (for legacy clients)."""
    security = {
        "cors": True,
        "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                 "code": "SMART-on-FHIR"}],
                     "text": "SMART Backend Services (private_key_jwt, client_credentials)"}],
        "extension": [{"url": OAUTH_URIS, "extension": [{"url": "token", "valueUri": token_url(settings)}]}],
        "description": "Every request needs a bearer token from the token endpoint, except metadata and discovery.",
    }
    for rest in statement.get("rest", []):
        rest["security"] = security
