"""The sidecar's access tokens: checked by signature, audience and expiry; keys rotate without breaking tokens."""
from __future__ import annotations

import time

import jwt
import pytest

from sidecar.auth.tokens import TokenInvalid, TokenService, create_signing_key, load_signing_keys
from sidecar.store.sqlite import SqliteStore


def service(store: SqliteStore, lifetime: int = 300) -> TokenService:
    tokens = TokenService("https://sidecar.example/auth", "https://sidecar.example/fhir", lifetime, clock_skew=5)
    tokens.use_keys(load_signing_keys(store))
    return tokens


def test_issued_token_checks_back_to_its_client_and_scope(tmp_path):
    tokens = service(SqliteStore(tmp_path))
    token, issued = tokens.issue("client-a", "system/*.read")
    checked = tokens.check(token)
    assert (checked.client_id, checked.scope) == ("client-a", "system/*.read")
    assert issued.expires_at - issued.issued_at == 300


def test_token_issued_before_rotation_stays_valid_and_new_tokens_use_the_new_key(tmp_path):
    store = SqliteStore(tmp_path)
    tokens = service(store)
    old, _ = tokens.issue("client-a", "system/*.read")
    new_kid = create_signing_key(store, retire_after=335)
    tokens.use_keys(load_signing_keys(store))
    assert tokens.check(old).client_id == "client-a"
    new, _ = tokens.issue("client-a", "system/*.read")
    assert jwt.get_unverified_header(new)["kid"] == new_kid


def test_keys_retired_longer_ago_than_a_token_lives_are_dropped(tmp_path):
    store = SqliteStore(tmp_path)
    tokens = service(store)
    old, _ = tokens.issue("client-a", "system/*.read")
    create_signing_key(store)
    store.execute("UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NOT NULL", [time.time() - 1000])
    create_signing_key(store, retire_after=335)
    tokens.use_keys(load_signing_keys(store))
    with pytest.raises(TokenInvalid, match="not issued by this server"):
        tokens.check(old)


def test_expired_token_is_refused_even_when_cached(tmp_path):
    store = SqliteStore(tmp_path)
    tokens = service(store, lifetime=1)
    token, _ = tokens.issue("client-a", "system/*.read")
    tokens.check(token)
    tokens.clock_skew = 0
    time.sleep(2.1)
    with pytest.raises(TokenInvalid, match="expired"):
        tokens.check(token)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "eyJhbGciOiJub25lIn0.e30."])
def test_garbage_is_refused_as_invalid(tmp_path, token):
    with pytest.raises(TokenInvalid):
        service(SqliteStore(tmp_path)).check(token)


def issued_by(store: SqliteStore, issuer: str, audience: str) -> str:
    """A token signed with the store's key ring by a service naming itself `issuer` and its API `audience`."""
    other = TokenService(issuer, audience, 300, clock_skew=5)
    other.use_keys(load_signing_keys(store))
    return other.issue("client-a", "system/*.read")[0]


def test_token_for_another_audience_is_refused(tmp_path):
    store = SqliteStore(tmp_path)
    mine = service(store)
    token = issued_by(store, "https://sidecar.example/auth", "https://other.example/fhir")
    with pytest.raises(TokenInvalid):
        mine.check(token)


def test_a_token_of_another_replica_sharing_the_store_is_accepted(tmp_path):
    store = SqliteStore(tmp_path)
    mine = service(store)
    token = issued_by(store, "https://replica-b.example/auth", "https://replica-b.example/fhir")
    mine.accept_public_urls({"https://replica-b.example"})
    assert mine.check(token).client_id == "client-a"
