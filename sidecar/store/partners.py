"""The partner registry: other payers this payer pulls members' histories from.

A partner's private key stays in its JWKS file (mode 0600, the operator's key custody); the registry keeps where it
is. `identifiers` are the names this payer's own data gives the partner (in `Coverage.payor` and in the source
actor of the Consents members gave us): `Organization/x`, `system|value`, or a display name.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from sidecar.store.clients import ClientError
from sidecar.store.db import Store

DEFAULT_SCOPES = "system/*.read system/Group.$bulk-member-match system/Patient.$member-match"


@dataclass(frozen=True)
class Partner:
    name: str
    fhir_base: str
    client_id: str
    private_jwks_file: str
    identifiers: tuple[str, ...]
    scopes: str

    @classmethod
    def from_row(cls, row: dict) -> "Partner":
        return cls(row["name"], row["fhir_base"], row["client_id"], row["private_jwks_file"],
                   tuple(orjson.loads(row["identifiers"])), row["scopes"])

    def names(self) -> frozenset[str]:
        return frozenset((self.name, *self.identifiers))


def add_partner(store: Store, name: str, fhir_base: str, client_id: str, private_jwks_file: Path,
                identifiers: list[str], scopes: str = DEFAULT_SCOPES) -> Partner:
    parts = urlsplit(fhir_base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ClientError(f"--fhir-base must be an absolute http(s) URL, got {fhir_base!r}")
    row = {"name": name, "fhir_base": fhir_base.rstrip("/"), "client_id": client_id,
           "private_jwks_file": str(private_jwks_file.resolve()), "identifiers": orjson.dumps(identifiers).decode(),
           "scopes": " ".join(scopes.split()), "created_at": datetime.now(timezone.utc).isoformat()}
    if not store.insert("partners", row, conflict="(name) DO NOTHING"):
        raise ClientError(f"partner {name} is already registered")
    return Partner.from_row(row)


def get_partner(store: Store, name: str) -> Partner:
    row = store.one("SELECT * FROM partners WHERE name = ?", [name])
    if row is None:
        raise ClientError(f"no partner named {name}; add it with `pdex-sidecar partners add`")
    return Partner.from_row(row)


def all_partners(store: Store) -> list[Partner]:
    return [Partner.from_row(row) for row in store.query("SELECT * FROM partners ORDER BY name")]
