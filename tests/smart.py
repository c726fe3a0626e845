"""Test helpers: register SMART clients straight in a sidecar's store and get tokens the way clients do."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from sidecar.client.smart import ClientKey, token_form
from sidecar.store.clients import add_client
from sidecar.store.db import open_store


@dataclass(frozen=True)
class Registered:
    client_id: str
    key: ClientKey
    organization: str


def register_client(data_dir: Path, *, scopes: str = "system/*.read", unrestricted: bool = False,
                    alg: str = "ES384", organization: str | None = None, jwks_url: str | None = None,
                    key: ClientKey | None = None, store_url: str = "") -> Registered:
    key = key or ClientKey.generate(alg)
    client_id = f"client-{uuid.uuid4().hex[:12]}"
    organization = organization or f"Organization/{client_id}"
    store = open_store(store_url, data_dir)
    try:
        if jwks_url:
            add_client(store, client_id, organization, scopes, jwks_url=jwks_url, unrestricted=unrestricted)
        else:
            add_client(store, client_id, organization, scopes, jwks=key.public_jwks(), unrestricted=unrestricted)
    finally:
        store.close()
    return Registered(client_id, key, organization)


async def bearer_headers(http, token_url: str, client: Registered, scope: str = "system/*.read",
                         post_to: str | None = None) -> dict[str, str]:
    """Authorization headers with a fresh token. `http` is an aiohttp session, or a test client with `post_to`
    the relative path of the token endpoint whose public URL is `token_url`."""
    form = token_form(client.client_id, token_url, client.key, scope)
    async with http.post(post_to or token_url, data=form) as resp:
        body = await resp.json(content_type=None)
        assert resp.status == 200, body
    return {"Authorization": f"Bearer {body['access_token']}"}
