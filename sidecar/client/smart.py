"""SMART Backend Services from the client's side: keys, signed client assertions, and the token request."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from sidecar.store.clients import ClientError

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True)
class ClientKey:
    """A client's signing key: `alg` is RS384 or ES384."""

    kid: str
    alg: str
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls, alg: str = "ES384", kid: str | None = None) -> "ClientKey":
        if alg == "RS384":
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif alg == "ES384":
            private = ec.generate_private_key(ec.SECP384R1())
        else:
            raise ValueError(f"unsupported client key algorithm {alg}")
        return cls(kid or uuid.uuid4().hex, alg, private)

    @classmethod
    def from_jwk(cls, jwk: dict) -> "ClientKey":
        alg = jwk.get("alg") or ("RS384" if jwk.get("kty") == "RSA" else "ES384")
        return cls(jwk["kid"], alg, jwt.PyJWK(jwk, algorithm=alg).key)

    def _jwk(self, key) -> dict:
        algorithm = RSAAlgorithm if self.alg.startswith("RS") else ECAlgorithm
        return {**algorithm.to_jwk(key, as_dict=True), "kid": self.kid, "alg": self.alg}

    def public_jwk(self) -> dict:
        return {**self._jwk(self.private.public_key()), "use": "sig", "key_ops": ["verify"]}

    def private_jwk(self) -> dict:
        return {**self._jwk(self.private), "key_ops": ["sign"]}

    def public_jwks(self) -> dict:
        return {"keys": [self.public_jwk()]}


def load_private_key(path: Path) -> ClientKey:
    """The first private key of a JWKS file (a partner's key stays in its file, the operator's key custody)."""
    try:
        jwks = orjson.loads(path.read_bytes())
        return ClientKey.from_jwk(next(k for k in jwks["keys"] if "d" in k))
    except (OSError, orjson.JSONDecodeError, KeyError, StopIteration, TypeError, ValueError) as exc:
        raise ClientError(f"{path} holds no private JWK (RS384 or ES384): {exc}") from exc


def client_assertion(client_id: str, token_url: str, key: ClientKey, lifetime: int = 300) -> str:
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": token_url, "exp": now + lifetime, "iat": now,
              "jti": uuid.uuid4().hex}
    return jwt.encode(claims, key.private, algorithm=key.alg, headers={"kid": key.kid, "typ": "JWT"})


def token_form(client_id: str, token_url: str, key: ClientKey, scope: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_assertion_type": JWT_BEARER,
            "client_assertion": client_assertion(client_id, token_url, key), "scope": scope}


class TokenRequestFailed(Exception):
    def __init__(self, status: int, body: dict) -> None:
        super().__init__(f"token request refused ({status}): {body}")
        self.status = status
        self.body = body


async def request_token(session: aiohttp.ClientSession, token_url: str, client_id: str, key: ClientKey,
                        scope: str) -> dict:
    """The token response (`access_token`, `expires_in`, `scope`...), or TokenRequestFailed."""
    async with session.post(token_url, data=token_form(client_id, token_url, key, scope),
                            headers={"Accept": "application/json"}) as resp:
        body = await resp.json(content_type=None)
        if resp.status != 200:
            raise TokenRequestFailed(resp.status, body)
        return body
