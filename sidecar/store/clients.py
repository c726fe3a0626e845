"""The client registry: who may ask for tokens, with which keys, for which organization and scopes."""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

import orjson

from sidecar.store.db import Store


class ClientError(ValueError):
    """A registration that cannot be accepted; the message says why."""


@dataclass(frozen=True)
class Client:
    client_id: str
    organization: str
    scopes: str
    jwks: dict | None
    jwks_url: str | None
    unrestricted: bool
    enabled: bool
    tokens_valid_after: float

    @classmethod
    def from_row(cls, row: dict) -> "Client":
        return cls(row["client_id"], row["organization"], row["scopes"],
                   orjson.loads(row["jwks"]) if row["jwks"] else None, row["jwks_url"],
                   bool(row["unrestricted"]), bool(row["enabled"]), row["tokens_valid_after"])


def _now_text() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def public_keys_only(jwks: dict) -> dict:
    """Keep the public, signing-capable keys of a JWKS: a private member or a `sign`-only key is dropped.

    Key files often hold a private and a public entry under one kid; registering both would make kid lookups
    ambiguous, and the server has no business keeping a client's private key.
    """
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list):
        raise ClientError("a JWKS must be a JSON object with a 'keys' array")
    private_members = {"d", "p", "q", "dp", "dq", "qi", "k"}
    public = []
    for key in keys:
        if not isinstance(key, dict) or "kid" not in key or key.get("kty") not in ("RSA", "EC"):
            raise ClientError("every key needs 'kid' and 'kty' RSA or EC")
        if "sign" in key.get("key_ops", []) and "verify" not in key.get("key_ops", []):
            continue
        public.append({k: v for k, v in key.items() if k not in private_members and k != "key_ops"})
    if not public:
        raise ClientError("the JWKS holds no public key")
    return {"keys": public}


def add_client(store: Store, client_id: str, organization: str, scopes: str, *, jwks: dict | None = None,
               jwks_url: str | None = None, unrestricted: bool = False) -> Client:
    if (jwks is None) == (jwks_url is None):
        raise ClientError("give exactly one of a JWKS or a JWKS URL")
    if jwks_url is not None and not jwks_url.startswith(("https://", "http://")):
        raise ClientError("the JWKS URL must be http(s)")
    if not scopes.strip():
        raise ClientError("a client needs at least one scope")
    row = {"client_id": client_id, "organization": organization, "scopes": " ".join(scopes.split()),
           "jwks": orjson.dumps(public_keys_only(jwks)).decode() if jwks is not None else None,
           "jwks_url": jwks_url, "unrestricted": int(unrestricted), "enabled": 1, "tokens_valid_after": 0,
           "created_at": _now_text(), "updated_at": _now_text()}
    if not store.insert("clients", row, conflict="(client_id) DO NOTHING"):
        raise ClientError(f"client {client_id} is already registered")
    return Client.from_row(row)


def get_client(store: Store, client_id: str) -> Client | None:
    row = store.one("SELECT * FROM clients WHERE client_id = ?", [client_id])
    return Client.from_row(row) if row else None


def all_clients(store: Store) -> list[Client]:
    return [Client.from_row(row) for row in store.query("SELECT * FROM clients ORDER BY client_id")]


def remove_client(store: Store, client_id: str) -> None:
    store.execute("DELETE FROM clients WHERE client_id = ?", [client_id])


def set_enabled(store: Store, client_id: str, enabled: bool) -> Client:
    """Disable (tokens issued so far die with it, even after re-enabling) or enable a client."""
    if get_client(store, client_id) is None:
        raise ClientError(f"no client {client_id}")
    changes: dict = {"enabled": int(enabled), "updated_at": _now_text()}
    if not enabled:
        changes["tokens_valid_after"] = time.time()
    assignments = ", ".join(f"{name} = ?" for name in changes)
    store.execute(f"UPDATE clients SET {assignments} WHERE client_id = ?", [*changes.values(), client_id])
    return get_client(store, client_id)
