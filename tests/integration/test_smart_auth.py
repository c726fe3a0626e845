"""SMART Backend Services at the sidecar: the token endpoint, and bearer tokens on every FHIR request."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jws as jwcrypto_jws
from jwt.utils import base64url_decode, base64url_encode

from sidecar.client.smart import JWT_BEARER, ClientKey, client_assertion
from sidecar.store.sqlite import SqliteStore
from tests.smart import bearer_headers

pytestmark = pytest.mark.hapi

FHIR_JSON = {"Accept": "application/fhir+json"}


def cli(sidecar, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SIDECAR_DATA_DIR=str(sidecar.data_dir))
    return subprocess.run([sys.executable, "-m", "sidecar", *args], env=env, capture_output=True, text=True)


def claims_for(client_id: str, token_url: str, **overrides) -> dict:
    now = int(time.time())
    return {"iss": client_id, "sub": client_id, "aud": token_url, "exp": now + 240, "jti": uuid.uuid4().hex,
            **overrides}


def sign(claims: dict, key: ClientKey, alg: str | None = None, kid: str | None = None) -> str:
    return jwt.encode(claims, key.private, algorithm=alg or key.alg, headers={"kid": kid or key.kid})


def form(assertion: str, scope: str = "system/*.read", **overrides) -> dict:
    return {"grant_type": "client_credentials", "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion, "scope": scope, **overrides}


async def post_token(http, token_url: str, data: dict) -> tuple[int, dict, dict]:
    async with http.post(token_url, data=data) as resp:
        return resp.status, dict(resp.headers), await resp.json(content_type=None)


def hs256_with_public_key_as_secret(claims: dict, key: ClientKey) -> str:
    public_pem = key.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo)
    secret = jwcrypto_jwk.JWK(kty="oct", k=base64url_encode(public_pem).decode())
    token = jwcrypto_jws.JWS(json.dumps(claims).encode())
    token.add_signature(secret, alg="HS256", protected=json.dumps({"alg": "HS256", "kid": key.kid, "typ": "JWT"}))
    return token.serialize(compact=True)


def tampered(token: str, **changes) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64url_decode(payload))
    claims.update(changes)
    return ".".join([header, base64url_encode(json.dumps(claims).encode()).decode(), signature])


def _now_plus(seconds: int) -> int:
    return int(time.time()) + seconds


def _valid(c, u, **overrides) -> dict:
    return form(client_assertion(c.client_id, u, c.key), **overrides)


# Each case: builder(client, token_url) -> form data, then status, OAuth error, and part of its description.
NEGATIVE_ASSERTIONS = [
    pytest.param(lambda c, u: form(jwt.encode(claims_for(c.client_id, u), None, algorithm="none",
                                              headers={"kid": c.key.kid})),
                 401, "invalid_client", "algorithm 'none'", id="alg none"),
    pytest.param(lambda c, u: form(hs256_with_public_key_as_secret(claims_for(c.client_id, u), c.key)),
                 401, "invalid_client", "algorithm 'HS256'", id="HS256 keyed with the public key"),
    pytest.param(lambda c, u: form(sign(claims_for(c.client_id, u), c.key, kid="not-a-registered-kid")),
                 401, "invalid_client", "has kid 'not-a-registered-kid'", id="unknown kid"),
    pytest.param(lambda c, u: form(sign(claims_for(c.client_id, u, aud=u.replace("/auth/token", "/fhir")), c.key)),
                 401, "invalid_client", "aud must be the token endpoint", id="aud is the FHIR base"),
    pytest.param(lambda c, u: form(sign(claims_for(c.client_id, u, sub="someone-else"), c.key)),
                 401, "invalid_client", "sub must equal iss", id="iss differs from sub"),
    pytest.param(lambda c, u: form(sign(claims_for(c.client_id, u, exp=_now_plus(600)), c.key)),
                 401, "invalid_client", "five minutes ahead", id="exp ten minutes ahead"),
    pytest.param(lambda c, u: form(sign(claims_for(c.client_id, u, exp=_now_plus(-120)), c.key)),
                 401, "invalid_client", "has expired", id="expired"),
    pytest.param(lambda c, u: form(tampered(client_assertion(c.client_id, u, c.key), exp=_now_plus(60))),
                 401, "invalid_client", "signature does not verify", id="tampered payload"),
    pytest.param(lambda c, u: form(sign(claims_for(c.client_id, u), ClientKey.generate("ES384"), kid=c.key.kid)),
                 401, "invalid_client", "signature does not verify", id="signed by an unregistered key"),
    pytest.param(lambda c, u: form(sign(claims_for("nobody-we-know", u), c.key)),
                 401, "invalid_client", "unknown client", id="unregistered client"),
    pytest.param(lambda c, u: _valid(c, u, client_assertion_type="not_an_assertion_type"),
                 401, "invalid_client", "client_assertion_type must be", id="wrong client_assertion_type"),
    pytest.param(lambda c, u: _valid(c, u, grant_type="password"),
                 400, "unsupported_grant_type", "only client_credentials", id="unsupported grant_type"),
    pytest.param(lambda c, u: _valid(c, u, scope="system/Observation.read"),
                 400, "invalid_scope", "none of the requested scopes", id="scope the client may not have"),
    pytest.param(lambda c, u: _valid(c, u, scope="system/Patient.rs?identifier=x|1"),
                 400, "invalid_scope", "constrained scopes", id="constrained v2 scope"),
    pytest.param(lambda c, u: _valid(c, u, scope=""),
                 400, "invalid_request", "scope is required", id="no scope"),
]


@pytest.mark.parametrize("build, status, error, fragment", NEGATIVE_ASSERTIONS)
async def test_bad_token_request_is_refused_with_the_oauth_error_and_no_token(anonymous, register, token_url,
                                                                             build, status, error, fragment):
    client = await register(scopes="system/Patient.read")
    got_status, headers, body = await post_token(anonymous, token_url, build(client, token_url))
    assert (got_status, body.get("error")) == (status, error), body
    assert fragment in body["error_description"]
    assert "access_token" not in body
    assert headers["Cache-Control"] == "no-store"


async def test_rs256_signature_is_refused_even_with_the_registered_rsa_key(anonymous, register, token_url):
    client = await register(alg="RS384", scopes="system/Patient.read")
    status, _, body = await post_token(anonymous, token_url,
                                       form(sign(claims_for(client.client_id, token_url), client.key, alg="RS256")))
    assert (status, body["error"]) == (401, "invalid_client") and "access_token" not in body


async def test_replayed_assertion_is_refused(anonymous, register, token_url):
    client = await register(scopes="system/Patient.read")
    data = form(client_assertion(client.client_id, token_url, client.key), scope="system/Patient.read")
    first, _, _ = await post_token(anonymous, token_url, data)
    second, _, body = await post_token(anonymous, token_url, data)
    assert first == 200
    assert (second, body["error"]) == (401, "invalid_client") and "access_token" not in body


async def test_disabled_client_gets_no_token(anonymous, register, token_url, sidecar):
    client = await register(scopes="system/Patient.read")
    assert cli(sidecar, "clients", "disable", client.client_id).returncode == 0
    await asyncio.sleep(0.3)
    status, _, body = await post_token(anonymous, token_url,
                                       form(client_assertion(client.client_id, token_url, client.key)))
    assert (status, body["error"]) == (401, "invalid_client") and "access_token" not in body


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
async def test_rs384_and_es384_clients_get_short_lived_tokens(anonymous, register, token_url, alg):
    client = await register(alg=alg, scopes="system/*.read")
    status, headers, body = await post_token(anonymous, token_url,
                                             form(client_assertion(client.client_id, token_url, client.key)))
    assert status == 200, body
    assert body["token_type"] == "bearer" and body["expires_in"] == 300 and body["scope"] == "system/*.read"
    assert headers["Cache-Control"] == "no-store" and headers["Pragma"] == "no-cache"


async def test_a_token_comes_without_a_refresh_token_and_the_refresh_token_grant_is_unsupported(anonymous, register,
                                                                                                   token_url):
    client = await register(scopes="system/*.read")
    status, _, body = await post_token(anonymous, token_url,
                                       form(client_assertion(client.client_id, token_url, client.key)))
    assert status == 200 and set(body) == {"access_token", "token_type", "expires_in", "scope"}
    status, _, body = await post_token(anonymous, token_url, {"grant_type": "refresh_token", "refresh_token": "x"})
    assert (status, body["error"]) == (400, "unsupported_grant_type") and "access_token" not in body


BULK_2_1 = "http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/bulk-member-match"
BULK_2_2 = "http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/BulkMemberMatch"


@pytest.mark.parametrize("requested, registered, granted", [
    (BULK_2_2, "system/Group.$bulk-member-match", BULK_2_2),
    (BULK_2_1, "system/Group.$bulk-member-match", BULK_2_1),
    ("system/Group.$bulk-member-match", BULK_2_2, "system/Group.$bulk-member-match"),
    (f"{BULK_2_2} system/*.read", f"{BULK_2_1} system/*.rs", f"{BULK_2_2} system/*.read"),
    ("system/*.rs", "system/*.read", "system/*.rs"),
    ("system/*.read", "system/*.rs", "system/*.read"),
    ("system/*.*", "system/*.read", "system/*.read"),
    ("system/*.read", "system/Patient.read system/Coverage.rs", "system/Patient.read system/Coverage.read"),
    ("system/Patient.read system/Observation.read", "system/Patient.rs", "system/Patient.read"),
])
async def test_granted_scope_is_requested_within_registered_in_the_syntax_asked(anonymous, register, token_url,
                                                                                requested, registered, granted):
    client = await register(scopes=registered)
    status, _, body = await post_token(anonymous, token_url,
                                       form(client_assertion(client.client_id, token_url, client.key), scope=requested))
    assert status == 200, body
    assert body["scope"] == granted


async def test_jwks_url_client_rotates_its_key_without_a_sidecar_restart(anonymous, register, token_url):
    first, second = ClientKey.generate("ES384"), ClientKey.generate("RS384")
    published = {"jwks": first.public_jwks()}

    async def serve_jwks(request: web.Request) -> web.Response:
        return web.json_response(published["jwks"], headers={"Cache-Control": "max-age=300"})

    app = web.Application()
    app.router.add_get("/jwks.json", serve_jwks)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        client = await register(jwks_url=f"http://127.0.0.1:{port}/jwks.json", key=first, scopes="system/*.read")
        status, _, body = await post_token(anonymous, token_url,
                                           form(client_assertion(client.client_id, token_url, first)))
        assert status == 200, body
        published["jwks"] = second.public_jwks()
        await asyncio.sleep(1.1)  # unknown kids trigger a re-fetch at most once a second
        status, _, body = await post_token(anonymous, token_url,
                                           form(client_assertion(client.client_id, token_url, second)))
        assert status == 200, body
    finally:
        await runner.cleanup()


async def test_jku_other_than_the_registered_url_is_refused(anonymous, register, token_url):
    client = await register(scopes="system/*.read")
    assertion = jwt.encode(claims_for(client.client_id, token_url), client.key.private, algorithm=client.key.alg,
                           headers={"kid": client.key.kid, "jku": "https://attacker.example/jwks.json"})
    status, _, body = await post_token(anonymous, token_url, form(assertion))
    assert (status, body["error"]) == (401, "invalid_client")


# --- the resource side -----------------------------------------------------------------------------------------


def sidecar_signing_key(sidecar) -> tuple[str, ec.EllipticCurvePrivateKey]:
    store = SqliteStore(sidecar.data_dir)
    try:
        key = store.one("SELECT kid, private_pem FROM signing_keys WHERE retired_at IS NULL")
        kid, pem = key["kid"], key["private_pem"]
    finally:
        store.close()
    return kid, serialization.load_pem_private_key(pem.encode(), password=None)


def access_token_like_the_sidecars(sidecar, client_id: str, key=None, kid=None, **overrides) -> str:
    own_kid, own_key = sidecar_signing_key(sidecar)
    now = int(time.time())
    claims = {"iss": f"{sidecar.public_url}/auth", "sub": client_id, "aud": sidecar.fhir_base, "iat": now,
              "exp": now + 300, "jti": uuid.uuid4().hex, "scope": "system/*.read", **overrides}
    return jwt.encode(claims, key or own_key, algorithm="ES256", headers={"kid": kid or own_kid})


async def fhir_get(http, url: str, token: str | None = None) -> tuple[int, dict, dict]:
    headers = dict(FHIR_JSON)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with http.get(url, headers=headers) as resp:
        return resp.status, dict(resp.headers), await resp.json(content_type=None)


async def test_request_without_token_is_401_with_a_bearer_challenge(anonymous, sidecar):
    status, headers, body = await fhir_get(anonymous, f"{sidecar.fhir_base}/Patient")
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert body["resourceType"] == "OperationOutcome"


async def test_expired_access_token_is_401(anonymous, sidecar, operator):
    token = access_token_like_the_sidecars(sidecar, operator.client_id, iat=int(time.time()) - 900,
                                           exp=int(time.time()) - 600)
    status, headers, body = await fhir_get(anonymous, f"{sidecar.fhir_base}/Patient", token)
    assert status == 401 and 'error="invalid_token"' in headers["WWW-Authenticate"]
    assert "expired" in body["issue"][0]["diagnostics"]


async def test_access_token_signed_by_another_key_is_401(anonymous, sidecar, operator):
    own_kid, _ = sidecar_signing_key(sidecar)
    forged = access_token_like_the_sidecars(sidecar, operator.client_id, key=ec.generate_private_key(ec.SECP256R1()),
                                            kid=own_kid)
    status, _, body = await fhir_get(anonymous, f"{sidecar.fhir_base}/Patient", forged)
    assert status == 401 and body["resourceType"] == "OperationOutcome"


async def test_token_of_a_disabled_client_stops_working_at_once(anonymous, register, token_url, sidecar):
    client = await register(scopes="system/*.read", unrestricted=True)
    auth = await bearer_headers(anonymous, token_url, client)
    async with anonymous.get(f"{sidecar.fhir_base}/Patient?_count=1", headers=auth) as resp:
        assert resp.status == 200
    assert cli(sidecar, "clients", "disable", client.client_id).returncode == 0
    await asyncio.sleep(0.3)
    async with anonymous.get(f"{sidecar.fhir_base}/Patient?_count=1", headers=auth) as resp:
        assert resp.status == 401
    assert cli(sidecar, "clients", "enable", client.client_id).returncode == 0
    await asyncio.sleep(0.3)
    async with anonymous.get(f"{sidecar.fhir_base}/Patient?_count=1", headers=auth) as resp:
        assert resp.status == 401, "re-enabling a client does not revive the tokens it had before"


async def test_scope_of_another_resource_type_is_403(anonymous, register, token_url, sidecar, seed, unique):
    client = await register(scopes="system/Patient.read", unrestricted=True)
    auth = await bearer_headers(anonymous, token_url, client, scope="system/Patient.read")
    async with anonymous.get(f"{sidecar.fhir_base}/Observation?_count=1", headers={**auth, **FHIR_JSON}) as resp:
        assert resp.status == 403
        body = await resp.json(content_type=None)
        assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == "forbidden"
        assert 'error="insufficient_scope"' in resp.headers["WWW-Authenticate"]
    async with anonymous.get(f"{sidecar.fhir_base}/Patient?_count=1", headers={**auth, **FHIR_JSON}) as resp:
        assert resp.status == 200


async def test_included_resources_outside_the_scopes_are_left_out(anonymous, register, token_url, sidecar, seed,
                                                                  unique):
    patient = await seed.create({"resourceType": "Patient", "identifier": [{"system": f"urn:t:{unique}",
                                                                             "value": "1"}]})
    await seed.create({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                       "subject": {"reference": f"Patient/{patient['id']}"}})
    client = await register(scopes="system/Patient.read", unrestricted=True)
    auth = await bearer_headers(anonymous, token_url, client, scope="system/Patient.read")
    url = f"{sidecar.fhir_base}/Patient?_id={patient['id']}&_revinclude=Observation:subject"
    async with anonymous.get(url, headers={**auth, **FHIR_JSON}) as resp:
        assert resp.status == 200
        bundle = await resp.json(content_type=None)
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Patient"]


async def test_key_rotation_keeps_issued_tokens_valid_and_signs_new_ones_with_the_new_key(anonymous, register,
                                                                                          token_url, sidecar):
    client = await register(scopes="system/*.read", unrestricted=True)
    before = await bearer_headers(anonymous, token_url, client)
    rotated = cli(sidecar, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    new_kid = rotated.stdout.strip()
    await asyncio.sleep(0.3)
    after = await bearer_headers(anonymous, token_url, client)
    assert jwt.get_unverified_header(after["Authorization"].split()[1])["kid"] == new_kid
    for auth in (before, after):
        async with anonymous.get(f"{sidecar.fhir_base}/Patient?_count=1", headers=auth) as resp:
            assert resp.status == 200


@pytest.mark.parametrize("body, content_type, status, error", [
    (b'{"grant_type": "client_credentials"}', "application/json", 400, "invalid_request"),
    (b"grant_type=client_credentials&client_assertion_type=" + JWT_BEARER.encode() +
     b"&client_assertion=not.a.jwt&scope=system/*.read", "application/x-www-form-urlencoded", 401, "invalid_client"),
    (b"grant_type=client_credentials&client_assertion=" + b"A" * 3_000_000, "application/x-www-form-urlencoded",
     413, "invalid_request"),
    (b"\xff\xfe garbage", "application/x-www-form-urlencoded", 400, "invalid_request"),
])
async def test_malformed_or_oversized_token_request_gets_an_oauth_error(anonymous, token_url, body, content_type,
                                                                        status, error):
    async with anonymous.post(token_url, data=body, headers={"Content-Type": content_type}) as resp:
        assert resp.status == status
        assert (await resp.json(content_type=None))["error"] == error
