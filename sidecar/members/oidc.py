"""OpenID Connect sign-in against the payer's identity provider: authorization code flow with PKCE (S256), state
and nonce; the provider found by discovery (`{issuer}/.well-known/openid-configuration`); ID tokens verified with
pyjwt's PyJWKClient (signature, issuer, audience, expiry, nonce)."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import aiohttp
import jwt

DISCOVERY_CACHE_SECONDS = 3600
ID_TOKEN_ALGORITHMS = ["RS256", "RS384", "ES256", "ES384", "PS256"]


class SignInFailed(Exception):
    """The identity provider's answer cannot be trusted or used; the message is for the log, not the member."""


@dataclass(frozen=True)
class Attempt:
    """What the session keeps between sending the member to the provider and their return."""
    state: str
    nonce: str
    verifier: str

    @classmethod
    def new(cls) -> "Attempt":
        return cls(secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(64))

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OidcClient:
    def __init__(self, issuer: str, client_id: str, client_secret: str, redirect_uri: str) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self._metadata: dict | None = None
        self._fetched_at = 0.0
        self._jwks: jwt.PyJWKClient | None = None

    async def metadata(self, session: aiohttp.ClientSession) -> dict:
        if self._metadata is None or time.monotonic() - self._fetched_at > DISCOVERY_CACHE_SECONDS:
            url = f"{self.issuer}/.well-known/openid-configuration"
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as resp:
                    document = await resp.json(content_type=None) if resp.status == 200 else None
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                raise SignInFailed(f"discovery at {url} failed: {exc!r}") from exc
            needed = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
            if not isinstance(document, dict) or any(not isinstance(document.get(k), str) for k in needed):
                raise SignInFailed(f"discovery at {url} gave no usable provider metadata")
            if document["issuer"].rstrip("/") != self.issuer:
                raise SignInFailed("the provider's metadata names another issuer")
            self._metadata, self._fetched_at = document, time.monotonic()
            self._jwks = jwt.PyJWKClient(document["jwks_uri"], cache_keys=True, lifespan=DISCOVERY_CACHE_SECONDS)
        return self._metadata

    async def authorization_url(self, session: aiohttp.ClientSession, attempt: Attempt) -> str:
        metadata = await self.metadata(session)
        query = urlencode({"response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_uri,
                           "scope": "openid", "state": attempt.state, "nonce": attempt.nonce,
                           "code_challenge": attempt.challenge, "code_challenge_method": "S256"})
        return f"{metadata['authorization_endpoint']}?{query}"

    async def subject(self, session: aiohttp.ClientSession, code: str, attempt: Attempt) -> str:
        """Redeem the code and return the verified ID token's `sub`."""
        metadata = await self.metadata(session)
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri,
                "code_verifier": attempt.verifier, "client_id": self.client_id}
        # client_secret_basic: id and secret form-encoded before Basic encoding (RFC 6749 §2.3.1).
        credentials = f"{quote(self.client_id, safe='')}:{quote(self.client_secret, safe='')}".encode()
        headers = {"Authorization": "Basic " + base64.b64encode(credentials).decode()} if self.client_secret else {}
        try:
            async with session.post(metadata["token_endpoint"], data=form, headers=headers,
                                    timeout=aiohttp.ClientTimeout(total=15)) as resp:
                answer = await resp.json(content_type=None)
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise SignInFailed(f"the token endpoint failed: {exc!r}") from exc
        if status != 200 or not isinstance(answer, dict) or not isinstance(answer.get("id_token"), str):
            raise SignInFailed(f"the token endpoint answered {status} without an ID token")
        loop = asyncio.get_running_loop()
        # PyJWKClient fetches the key set with blocking I/O: off the event loop.
        claims = await loop.run_in_executor(None, self._verify, answer["id_token"], metadata["issuer"])
        if not secrets.compare_digest(str(claims.get("nonce", "")), attempt.nonce):
            raise SignInFailed("the ID token's nonce is not this sign-in's")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise SignInFailed("the ID token has no subject")
        return subject

    def _verify(self, token: str, issuer: str) -> dict:
        assert self._jwks is not None
        try:
            key = self._jwks.get_signing_key_from_jwt(token)
            return jwt.decode(token, key.key, algorithms=ID_TOKEN_ALGORITHMS, audience=self.client_id,
                              issuer=issuer, options={"require": ["exp", "iat", "iss", "aud", "sub"]}, leeway=30)
        except jwt.PyJWTError as exc:
            raise SignInFailed(f"the ID token does not verify: {exc}") from exc
