"""SMART Backend Services: discovery, the token endpoint, and the assertions it must refuse
(SMART App Launch 2.x Backend Services; client-confidential-asymmetric; RFC 7523; RFC 6749 §5)."""
from __future__ import annotations

import time
import uuid

import jwt

from sidecar.client.smart import JWT_BEARER, ClientKey
from sidecar.conformance.context import PARTNER_SCOPE, Context
from sidecar.conformance.model import Group, Skip

GROUP = Group("smart", "SMART Backend Services authorization",
              "SMART App Launch Backend Services (discovery, token request, client-confidential-asymmetric "
              "assertion checks); RFC 6749 §5.1/§5.2; PDex §1.6 / §5 (scopes, SMART Backend Services)")
OAUTH_ERRORS = {"invalid_client", "invalid_grant", "invalid_request", "unauthorized_client"}


def assertion(client_id: str, token_url: str, key: ClientKey, **changes) -> str:
    """A client assertion signed with pyjwt; `changes` alter claims (None removes one) or, as `headers`, `kid`,
    `alg` and `signer`, how it is signed."""
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": token_url, "exp": now + 240, "iat": now,
              "jti": uuid.uuid4().hex}
    alg, kid, signer = changes.pop("alg", key.alg), changes.pop("kid", key.kid), changes.pop("signer", key.private)
    for claim, value in changes.items():
        if value is None:
            claims.pop(claim, None)
        else:
            claims[claim] = value
    return jwt.encode(claims, None if alg == "none" else signer, algorithm=alg, headers={"kid": kid, "typ": "JWT"})


async def post_assertion(ctx: Context, signed: str, scope: str = "system/*.read"):
    token_url = await ctx.token_url()
    return await ctx.request("POST", token_url, headers={"Accept": "application/json"},
                             form={"grant_type": "client_credentials", "client_assertion_type": JWT_BEARER,
                                   "client_assertion": signed, "scope": scope})


@GROUP.check("discovery", "GET .well-known/smart-configuration (application/json) names the token endpoint, "
                          "client_credentials, private_key_jwt, RS384 or ES384 and client-confidential-asymmetric")
async def discovery(ctx: Context) -> None:
    answer = await ctx.request("GET", ".well-known/smart-configuration", headers={"Accept": "application/json"})
    config = ctx.fhir(answer, 200)
    ctx.expect(str(config.get("token_endpoint", "")).startswith("http"), "token_endpoint SHALL be an absolute URL")
    ctx.expect("client_credentials" in config.get("grant_types_supported", []),
               "grant_types_supported SHALL include client_credentials")
    ctx.expect("private_key_jwt" in config.get("token_endpoint_auth_methods_supported", []),
               "token_endpoint_auth_methods_supported SHALL include private_key_jwt")
    algs = set(config.get("token_endpoint_auth_signing_alg_values_supported", []))
    ctx.expect(algs & {"RS384", "ES384"}, "token_endpoint_auth_signing_alg_values_supported SHALL include RS384 "
                                          "or ES384")
    ctx.expect(any(s.startswith("system/") for s in config.get("scopes_supported", ["system/"])),
               "scopes_supported lists no system/ scope")
    ctx.expect("client-confidential-asymmetric" in config.get("capabilities", []),
               "capabilities (REQUIRED) SHALL include client-confidential-asymmetric")
    ctx.expect(answer.header("Content-Type").startswith("application/json"),
               "smart-configuration SHALL be served as application/json")


@GROUP.check("token", "a valid client assertion gets a bearer access token (token_type, expires_in, scope; "
                      "Cache-Control: no-store)")
async def token(ctx: Context) -> None:
    key = ctx.target.client.key
    answer = await post_assertion(ctx, assertion(ctx.target.client.client_id, await ctx.token_url(), key),
                                  PARTNER_SCOPE)
    body = ctx.fhir(answer, 200)
    ctx.expect(body.get("access_token"), f"no access_token for a valid {key.alg} assertion")
    ctx.expect(str(body.get("token_type", "")).lower() == "bearer", "token_type SHALL be bearer")
    ctx.expect(isinstance(body.get("expires_in"), int), "expires_in SHALL be given (seconds)")
    ctx.expect(isinstance(body.get("scope"), str) and body["scope"], "scope SHALL be given")
    ctx.expect("no-store" in answer.header("Cache-Control"), "a token response SHALL carry Cache-Control: no-store")


@GROUP.check("token-other-algorithm", "the other of RS384 and ES384 gets a token too (the second client's key)",
             required=False)
async def other_algorithm(ctx: Context) -> None:
    client, second = ctx.target.client, ctx.target.second
    if second is None or second.key.alg == client.key.alg:
        raise Skip(f"needs a second client whose key is not {client.key.alg}")
    answer = await post_assertion(ctx, assertion(second.client_id, await ctx.token_url(), second.key))
    ctx.expect(answer.status == 200 and (answer.json() or {}).get("access_token"),
               f"a valid {second.key.alg} assertion got {answer.status}")


@GROUP.check("bearer-required", "a FHIR search without a token gets 401, with one gets 200")
async def bearer_required(ctx: Context) -> None:
    answer = await ctx.request("GET", "Coverage", params={"_count": "1"})
    ctx.expect(answer.status == 401, f"a request without a token got {answer.status}, not 401")
    answer = await ctx.request("GET", "Coverage", params={"_count": "1"}, bearer=await ctx.token())
    ctx.fhir(answer, 200, "Bundle")


def _refusal(name: str, title: str, **changes):
    async def refused(ctx: Context) -> None:
        client = ctx.target.client
        token_url = await ctx.token_url()
        bad = {k: v() if callable(v) else v for k, v in changes.items()}
        if bad.get("aud") == "WRONG":
            bad["aud"] = token_url + "/elsewhere"
        if bad.get("signer") == "OTHER":
            bad["signer"] = ClientKey.generate(client.key.alg).private
        if bad.get("alg") == "HS256":
            bad["signer"] = "a-shared-secret-the-server-never-issued-0123456789"
        signed = assertion(client.client_id, token_url, client.key, **bad)
        answer = await post_assertion(ctx, signed)
        body = answer.json() if isinstance(answer.json(), dict) else {}
        ctx.expect(answer.status in (400, 401), f"a bad assertion ({title}) got {answer.status}, not 400/401")
        ctx.expect(body.get("error") in OAUTH_ERRORS, "the refusal SHALL be an OAuth error (RFC 6749 §5.2)")
        ctx.expect("access_token" not in body, "a refused assertion got an access token")
    GROUP.check(name, f"refused: {title}")(refused)


_refusal("wrong-aud", "aud is not the token endpoint", aud="WRONG")
_refusal("expired", "exp in the past", exp=lambda: int(time.time()) - 600, iat=lambda: int(time.time()) - 900)
_refusal("exp-too-far", "exp more than five minutes ahead", exp=lambda: int(time.time()) + 3600)
_refusal("alg-none", "alg none (unsigned)", alg="none")
_refusal("alg-hmac", "alg HS256 (a shared secret)", alg="HS256")
_refusal("unknown-kid", "kid names no registered key", kid="pdex-conformance-unknown-kid")
_refusal("bad-signature", "signed by another key under the registered kid", signer="OTHER")
_refusal("iss-not-sub", "iss differs from sub", sub="someone-else")
_refusal("no-jti", "no jti", jti=None)


def writes(scope: str) -> list[str]:
    """The scopes granting a write: v1 `write` or `*`, v2 permissions with c, u or d."""
    found = []
    for one in scope.split():
        permission = one.rsplit(".", 1)[-1].split("?")[0]
        if permission in ("write", "*") or (set(permission) <= set("cruds") and set(permission) & set("cud")):
            found.append(one)
    return found


@GROUP.check("scope-not-widened", "asking for system/*.write gets invalid_scope or a token without write access")
async def scope_not_widened(ctx: Context) -> None:
    client = ctx.target.client
    answer = await post_assertion(ctx, assertion(client.client_id, await ctx.token_url(), client.key),
                                  "system/*.write")
    body = answer.json() if isinstance(answer.json(), dict) else {}
    if answer.status == 200:
        ctx.expect(not writes(str(body.get("scope", ""))), f"granted {body.get('scope')!r} to a partner client")
    else:
        ctx.expect(answer.status == 400 and body.get("error") == "invalid_scope",
                   f"got {answer.status} {body.get('error')}, not 400 invalid_scope")


@GROUP.check("token-lifetime", "an access token lives at most five minutes (expires_in ≤ 300)", required=False)
async def token_lifetime(ctx: Context) -> None:
    client = ctx.target.client
    answer = await post_assertion(ctx, assertion(client.client_id, await ctx.token_url(), client.key))
    expires = (answer.json() or {}).get("expires_in")
    ctx.expect(isinstance(expires, int) and 0 < expires <= 300, f"expires_in is {expires}")


@GROUP.check("replayed-jti", "refused: an assertion whose jti was already used")
async def replayed(ctx: Context) -> None:
    client = ctx.target.client
    signed = assertion(client.client_id, await ctx.token_url(), client.key)
    first = await post_assertion(ctx, signed)
    ctx.fhir(first, 200)
    again = await post_assertion(ctx, signed)
    ctx.expect(again.status in (400, 401), f"the same assertion a second time got {again.status}, not 400/401")
    ctx.expect((again.json() or {}).get("error") in OAUTH_ERRORS, "the refusal SHALL be an OAuth error")


@GROUP.check("unknown-client", "refused: an assertion from a client that is not registered")
async def unknown_client(ctx: Context) -> None:
    stranger = ClientKey.generate("ES384")
    answer = await post_assertion(ctx, assertion(f"pdex-conformance-{uuid.uuid4().hex[:8]}",
                                                 await ctx.token_url(), stranger))
    ctx.expect(answer.status in (400, 401) and (answer.json() or {}).get("error") == "invalid_client",
               f"an unknown client got {answer.status}, not invalid_client")


@GROUP.check("unsupported-grant", "refused: grant_type other than client_credentials (unsupported_grant_type)")
async def unsupported_grant(ctx: Context) -> None:
    answer = await ctx.request("POST", await ctx.token_url(), headers={"Accept": "application/json"},
                               form={"grant_type": "password", "username": "a", "password": "b"})
    ctx.expect(answer.status == 400 and (answer.json() or {}).get("error") in ("unsupported_grant_type",
                                                                               "invalid_request"),
               f"grant_type=password got {answer.status}, not 400 unsupported_grant_type")
