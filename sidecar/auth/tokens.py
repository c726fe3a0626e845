"""The sidecar's access tokens: ES256 JWTs signed by its own key ring, checked on every FHIR request.

The ring lives in the store: the newest key signs, retired keys keep verifying until every token they signed has
expired (`keys rotate` retires the current key). A checked token is cached until it expires, so the signature is
verified once per token, not once per request; the client's current state is still consulted on every request.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sidecar.store.db import Store

ALGORITHM = "ES256"
_KEYS_LOCK = "signing-keys"


def _new_key() -> tuple[str, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return uuid.uuid4().hex, pem


def create_signing_key(store: Store, retire_after: float | None = None) -> str:
    """Add a new signing key and retire the others; keys retired longer than `retire_after` ago are deleted."""
    kid, pem = _new_key()
    now = time.time()
    with store.transaction(lock=_KEYS_LOCK):
        store.execute("UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL", [now])
        if retire_after is not None:
            store.execute("DELETE FROM signing_keys WHERE retired_at < ?", [now - retire_after])
        store.insert("signing_keys", {"kid": kid, "private_pem": pem, "created_at": now})
    return kid


def create_first_signing_key(store: Store) -> None:
    """The ring's first key, made by whichever replica starts first (the others find it and use it)."""
    kid, pem = _new_key()
    with store.transaction(lock=_KEYS_LOCK):
        if store.scalar("SELECT COUNT(*) FROM signing_keys") == 0:
            store.insert("signing_keys", {"kid": kid, "private_pem": pem, "created_at": time.time()})


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: ec.EllipticCurvePrivateKey
    retired_at: float | None


def load_signing_keys(store: Store) -> list[SigningKey]:
    """The ring, newest first; a first start creates the first key."""
    rows = store.query("SELECT kid, private_pem, retired_at FROM signing_keys ORDER BY created_at DESC")
    if not rows:
        create_first_signing_key(store)
        return load_signing_keys(store)
    return [SigningKey(row["kid"], serialization.load_pem_private_key(row["private_pem"].encode(), password=None),
                       row["retired_at"]) for row in rows]


class TokenInvalid(Exception):
    """The bearer token cannot be accepted; the message is safe to show the client."""


@dataclass(frozen=True)
class AccessToken:
    client_id: str
    scope: str
    issued_at: float
    expires_at: float
    kid: str


def issuer_of(public_base: str) -> str:
    return f"{public_base}/auth"


def audience_of(public_base: str) -> str:
    return f"{public_base}/fhir"


class TokenService:
    def __init__(self, issuer: str, audience: str, lifetime: int, clock_skew: float) -> None:
        self.issuer = issuer
        self.audience = audience
        self.lifetime = lifetime
        self.clock_skew = clock_skew
        # The other replicas' names for the service (`accept_public_urls`): their tokens are valid here too.
        self._issuers = {issuer}
        self._audiences = {audience}
        self._signing: SigningKey | None = None
        self._verifying: dict[str, ec.EllipticCurvePublicKey] = {}
        self._checked: dict[str, AccessToken] = {}

    def accept_public_urls(self, public_bases: set[str]) -> None:
        self._issuers = {self.issuer, *map(issuer_of, public_bases)}
        self._audiences = {self.audience, *map(audience_of, public_bases)}

    def use_keys(self, keys: list[SigningKey]) -> None:
        self._signing = next(k for k in keys if k.retired_at is None)
        self._verifying = {k.kid: k.private.public_key() for k in keys}
        self._checked = {t: a for t, a in self._checked.items() if a.kid in self._verifying}

    def issue(self, client_id: str, scope: str) -> tuple[str, AccessToken]:
        assert self._signing is not None, "use_keys() first"
        now = time.time()
        claims = {"iss": self.issuer, "sub": client_id, "aud": self.audience, "iat": int(now),
                  "exp": int(now) + self.lifetime, "jti": uuid.uuid4().hex, "scope": scope}
        token = jwt.encode(claims, self._signing.private, algorithm=ALGORITHM, headers={"kid": self._signing.kid})
        return token, AccessToken(client_id, scope, claims["iat"], claims["exp"], self._signing.kid)

    def check(self, token: str) -> AccessToken:
        now = time.time()
        cached = self._checked.get(token)
        if cached is not None:
            if cached.expires_at + self.clock_skew < now:
                del self._checked[token]
                raise TokenInvalid("the access token has expired")
            return cached
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise TokenInvalid("the access token is malformed") from None
        key = self._verifying.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise TokenInvalid("the access token was not issued by this server")
        try:
            claims = jwt.decode(token, key, algorithms=[ALGORITHM], audience=self._audiences, issuer=self._issuers,
                                leeway=self.clock_skew, options={"require": ["exp", "iat", "sub", "scope"]})
        except jwt.ExpiredSignatureError:
            raise TokenInvalid("the access token has expired") from None
        except jwt.PyJWTError:
            raise TokenInvalid("the access token is not valid") from None
        checked = AccessToken(claims["sub"], claims["scope"], float(claims["iat"]), float(claims["exp"]), kid)
        if len(self._checked) > 50_000:
            self._checked = {t: a for t, a in self._checked.items() if a.expires_at > now}
        self._checked[token] = checked
        return checked
