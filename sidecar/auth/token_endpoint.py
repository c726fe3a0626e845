"""`POST /auth/token`: SMART Backend Services (client_credentials with a private_key_jwt client assertion).

Checks follow SMART's client-confidential-asymmetric profile and RFC 7523 (shared/specs/smart-backend-and-bulk.md
§1.3-1.7): RS384/ES384 only, the key chosen by `kid` and key type from the client's registered JWKS, `iss` = `sub`
= client id, `aud` = this endpoint's public URL, `exp` at most five minutes ahead, each `jti` used once. Every
answer, issued or refused, is audited; a refusal issues nothing.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import jwt
from aiohttp import web

from sidecar.audit.chain import AuditLog, AuditRecord
from sidecar.auth.directory import Directory
from sidecar.auth.jwks import JwksCache, JwksUnavailable
from sidecar.auth.scopes import ScopeError, grant, parse_scopes
from sidecar.auth.tokens import TokenService
from sidecar.metrics.registry import Metrics
from sidecar.store.clients import Client
from sidecar.store.replay import remember_jti

log = logging.getLogger("sidecar.auth")

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = {"RS384": "RSA", "ES384": "EC"}
MAX_ASSERTION_LIFETIME = 300
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@dataclass
class OAuthError(Exception):
    error: str
    description: str
    status: int = 400

    def response(self) -> web.Response:
        return web.json_response({"error": self.error, "error_description": self.description},
                                 status=self.status, headers=_NO_STORE)


def _invalid_client(description: str) -> OAuthError:
    return OAuthError("invalid_client", description, 401)


class TokenEndpoint:
    def __init__(self, url: str, directory: Directory, jwks: JwksCache, tokens: TokenService, audit: AuditLog,
                 clock_skew: float, metrics: Metrics) -> None:
        self.url = url
        self.metrics = metrics
        self.directory = directory
        self.jwks = jwks
        self.tokens = tokens
        self.audit = audit
        self.clock_skew = clock_skew

    async def handle(self, request: web.Request) -> web.Response:
        claimed: dict = {}
        try:
            if request.content_type != "application/x-www-form-urlencoded":
                raise OAuthError("invalid_request", "send the token request as application/x-www-form-urlencoded")
            try:
                form = await request.post()
            except web.HTTPRequestEntityTooLarge:
                raise OAuthError("invalid_request", "the token request is too large", 413) from None
            except ValueError:
                raise OAuthError("invalid_request", "the token request is not a valid UTF-8 form") from None
            body, client, scope = await self._grant(form, claimed)
        except OAuthError as error:
            self.audit.record(AuditRecord("token", "refused", claimed.get("client_id"), claimed.get("organization"),
                                          "POST /auth/token", f"{error.error}: {error.description}"))
            log.info("token refused", extra={"error": error.error, "reason": error.description,
                                             "client_id": claimed.get("client_id")})
            self.metrics.token_refusals.labels(error.error).inc()
            return error.response()
        self.audit.record(AuditRecord("token", "allowed", client.client_id, client.organization, "POST /auth/token",
                                      detail={"scope": scope}))
        self.metrics.tokens_issued.inc()
        return web.json_response(body, headers=_NO_STORE)

    async def _grant(self, form, claimed: dict) -> tuple[dict, Client, str]:
        grant_type = form.get("grant_type")
        if not grant_type:
            raise OAuthError("invalid_request", "grant_type is required")
        if grant_type != "client_credentials":
            raise OAuthError("unsupported_grant_type", "only client_credentials is supported")
        if form.get("client_assertion_type") != JWT_BEARER:
            raise _invalid_client(f"client_assertion_type must be {JWT_BEARER}")
        assertion = form.get("client_assertion")
        if not isinstance(assertion, str) or not assertion:
            raise OAuthError("invalid_request", "client_assertion is required")
        scope_text = form.get("scope")
        if not isinstance(scope_text, str) or not scope_text.strip():
            raise OAuthError("invalid_request", "scope is required")
        client = await self.authenticate(assertion, claimed)
        try:
            requested = parse_scopes(scope_text)
        except ScopeError as exc:
            raise OAuthError("invalid_scope", str(exc)) from None
        granted = grant(requested, parse_scopes(client.scopes))
        if not granted:
            raise OAuthError("invalid_scope", "none of the requested scopes is allowed for this client")
        scope = " ".join(s.render() for s in granted)
        token, issued = self.tokens.issue(client.client_id, scope)
        body = {"access_token": token, "token_type": "bearer", "expires_in": int(issued.expires_at - issued.issued_at),
                "scope": scope}
        return body, client, scope

    async def authenticate(self, assertion: str, claimed: dict) -> Client:
        """The registered, enabled client that signed this assertion, or `invalid_client`."""
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _invalid_client("the client assertion is not a well-formed JWT") from None
        alg, kid, iss = header.get("alg"), header.get("kid"), unverified.get("iss")
        if alg not in ASSERTION_ALGORITHMS:
            raise _invalid_client(f"assertion algorithm {alg!r} is not accepted; use RS384 or ES384")
        if not isinstance(kid, str) or not kid:
            raise _invalid_client("the assertion header needs a kid")
        if not isinstance(iss, str):
            raise _invalid_client("the assertion needs iss")
        claimed["client_id"] = iss
        client = self.directory.clients.get(iss)
        if client is None:
            raise _invalid_client("unknown client")
        claimed["organization"] = client.organization
        if not client.enabled:
            raise _invalid_client("the client is disabled")
        jku = header.get("jku")
        if jku is not None and jku != client.jwks_url:
            raise _invalid_client("jku is not the JWKS URL registered for this client")
        try:
            keys = await self.jwks.keys_for(client, kid)
        except JwksUnavailable as exc:
            raise _invalid_client(str(exc)) from None
        matching = [k for k in keys if k.get("kid") == kid and k.get("kty") == ASSERTION_ALGORITHMS[alg]]
        if len(matching) != 1:
            raise _invalid_client(f"no single registered {ASSERTION_ALGORITHMS[alg]} key has kid {kid!r}")
        try:
            key = jwt.PyJWK(matching[0], algorithm=alg).key
            claims = jwt.decode(assertion, key, algorithms=[alg], audience=self.url, issuer=client.client_id,
                                leeway=self.clock_skew, options={"require": ["iss", "sub", "aud", "exp", "jti"]})
        except jwt.ExpiredSignatureError:
            raise _invalid_client("the client assertion has expired") from None
        except jwt.InvalidAudienceError:
            raise _invalid_client(f"aud must be the token endpoint {self.url}") from None
        except jwt.InvalidSignatureError:
            raise _invalid_client("the client assertion's signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise _invalid_client(f"the client assertion is not valid: {exc}") from None
        if claims["sub"] != claims["iss"]:
            raise _invalid_client("sub must equal iss (the client id)")
        exp = claims["exp"]
        if not isinstance(exp, (int, float)) or exp > time.time() + MAX_ASSERTION_LIFETIME + self.clock_skew:
            raise _invalid_client("exp must be at most five minutes ahead")
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti:
            raise _invalid_client("jti must be a non-empty string")
        if not await self.directory.store.run(remember_jti, self.directory.store, client.client_id, jti, float(exp)):
            raise _invalid_client("this client assertion (jti) was already used")
        return client
