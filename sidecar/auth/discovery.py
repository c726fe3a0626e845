"""SMART discovery: `.well-known/smart-configuration` and the security section of the CapabilityStatement.

Both say exactly what the token endpoint does: `client_credentials` with a `private_key_jwt` assertion, access
tokens only. No refresh token is issued (SMART Backend Services; RFC 6749 §4.4.3: a refresh token SHOULD NOT be
included), so no `refresh_token` grant and no `permission-offline` capability are advertised: a client whose token
expires signs a new assertion, and its jobs' status and files accept any token of the same client.

The CapabilityStatement carries no SMART `oauth-uris` extension: its definition requires `authorize` and `token`,
and this server has no authorization endpoint. SMART 2 clients discover the token endpoint from
smart-configuration (the CapabilityStatement route is deprecated); the security description names it for people.
"""
from __future__ import annotations

from aiohttp import web

from sidecar.auth.scopes import MATCH_GROUPS_SCOPE, OPERATION_ALIASES
from sidecar.config import Settings


def token_url(settings: Settings) -> str:
    return f"{settings.public_base}/auth/token"


def smart_configuration(settings: Settings) -> dict:
    return {
        "token_endpoint": token_url(settings),
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": ["system/*.rs", "system/*.read", "system/Patient.$member-match",
                             "system/Group.$bulk-member-match", *OPERATION_ALIASES, MATCH_GROUPS_SCOPE],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
    }


def smart_configuration_handler(settings: Settings):
    document = smart_configuration(settings)

    async def handle(request: web.Request) -> web.Response:
        return web.json_response(document, headers={"Access-Control-Allow-Origin": "*"})

    return handle


def advertise_smart_security(statement: dict, settings: Settings) -> None:
    """CapabilityStatement `rest.security`: the SMART-on-FHIR service, described as what it is."""
    security = {
        "cors": True,
        "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                 "code": "SMART-on-FHIR"}],
                     "text": "SMART Backend Services (private_key_jwt, client_credentials)"}],
        "description": f"Every request except metadata and discovery needs a bearer access token from "
                       f"{token_url(settings)} (client_credentials with a private_key_jwt assertion; see "
                       f"{settings.public_fhir_base}/.well-known/smart-configuration). No refresh tokens are issued: "
                       "ask for a new access token when one expires.",
    }
    for rest in statement.get("rest", []):
        rest["security"] = security
