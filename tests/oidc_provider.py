"""A small OpenID Connect provider for the tests (authorization code flow with PKCE), standing in for a payer's
identity provider: discovery, an authorization page where the test types who signs in, a token endpoint that
checks the client secret and the PKCE verifier, and ID tokens signed RS256 with pyjwt. It runs in its own thread
and event loop so a browser can use it while the tests run."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from sidecar.devstack import free_port


@dataclass
class OidcProvider:
    client_id: str = "member-page"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    port: int = field(default_factory=free_port)
    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537,
                                                                                    key_size=2048))
    codes: dict[str, dict] = field(default_factory=dict)
    # What a misbehaving or impersonated provider would send: claims replaced, or a key not in its JWKS.
    claims_override: dict = field(default_factory=dict)
    signing_key: rsa.RSAPrivateKey | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self.discovery)
        app.router.add_get("/authorize", self.authorize_page)
        app.router.add_post("/authorize", self.authorize)
        app.router.add_post("/token", self.token)
        app.router.add_get("/jwks", self.jwks)
        return app

    async def discovery(self, request: web.Request) -> web.Response:
        return web.json_response({"issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/authorize",
                                  "token_endpoint": f"{self.issuer}/token", "jwks_uri": f"{self.issuer}/jwks",
                                  "response_types_supported": ["code"], "subject_types_supported": ["public"],
                                  "id_token_signing_alg_values_supported": ["RS256"],
                                  "code_challenge_methods_supported": ["S256"]})

    async def authorize_page(self, request: web.Request) -> web.Response:
        hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                         for k, v in request.query.items())
        return web.Response(content_type="text/html", text=(
            '<!doctype html><html lang="en"><head><title>Test identity provider</title></head><body><main>'
            '<h1>Sign in</h1><form method="post" action="/authorize">' + hidden +
            '<label for="username">Username</label><input id="username" name="username">'
            '<button type="submit">Continue</button></form></main></body></html>'))

    async def authorize(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("client_id") != self.client_id or form.get("code_challenge_method") != "S256":
            raise web.HTTPBadRequest(text="unknown client or no PKCE")
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"sub": form["username"], "nonce": form.get("nonce"),
                            "challenge": form["code_challenge"], "redirect_uri": form["redirect_uri"]}
        raise web.HTTPFound(f"{form['redirect_uri']}?{urlencode({'code': code, 'state': form['state']})}")

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        auth = request.headers.get("Authorization", "")
        expected = "Basic " + base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if auth != expected:
            return web.json_response({"error": "invalid_client"}, status=401)
        grant = self.codes.pop(str(form.get("code")), None)
        verifier = str(form.get("code_verifier", ""))
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if grant is None or grant["challenge"] != challenge or grant["redirect_uri"] != form.get("redirect_uri"):
            return web.json_response({"error": "invalid_grant"}, status=400)
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": grant["sub"], "aud": self.client_id, "iat": now, "exp": now + 300,
                  "nonce": grant["nonce"], **self.claims_override}
        id_token = jwt.encode(claims, self.signing_key or self.key, algorithm="RS256", headers={"kid": "test-key"})
        return web.json_response({"access_token": secrets.token_urlsafe(16), "token_type": "Bearer",
                                  "id_token": id_token, "expires_in": 300})

    async def jwks(self, request: web.Request) -> web.Response:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return web.json_response({"keys": [{**public, "kid": "test-key", "use": "sig", "alg": "RS256"}]})

    def start(self) -> "OidcProvider":
        started = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            self._runner = web.AppRunner(self._app())
            self._loop.run_until_complete(self._runner.setup())
            self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
            started.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())

        threading.Thread(target=serve, name="oidc-provider", daemon=True).start()
        started.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
