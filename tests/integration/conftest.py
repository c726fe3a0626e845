"""Fixtures of the members' pages: the test identity provider, and a sidecar configured with it and two partner
payers."""
from __future__ import annotations

from typing import Iterator

import pytest

from sidecar.devstack import HapiServer, SidecarProcess
from sidecar.store.sqlite import SqliteStore
from sidecar.store.partners import add_partner
from tests.conftest import STATE_REFRESH_SECONDS, THIS_PAYER
from tests.member_stack import LOGIN_SYSTEM, PARTNER_A, PARTNER_A_ID, PARTNER_B
from tests.oidc_provider import OidcProvider


@pytest.fixture(scope="session")
def oidc() -> Iterator[OidcProvider]:
    provider = OidcProvider().start()
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture(scope="session")
def member_sidecar(hapi: HapiServer, oidc: OidcProvider, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[SidecarProcess]:
    data = tmp_path_factory.mktemp("member-sidecar")
    store = SqliteStore(data)
    key = data / "unused-key.jwks"
    key.write_text('{"keys": []}')
    add_partner(store, PARTNER_A, "https://payer-a.example/fhir", "us-at-a", key, [PARTNER_A_ID])
    add_partner(store, PARTNER_B, "https://payer-b.example/fhir", "us-at-b", key, [])
    store.close()
    process = SidecarProcess(hapi.base_url, data, extra_env={
        "SIDECAR_STATE_REFRESH_SECONDS": str(STATE_REFRESH_SECONDS), "SIDECAR_PAYER_IDENTIFIERS": THIS_PAYER,
        "SIDECAR_MEMBER_OIDC_ISSUER": oidc.issuer, "SIDECAR_MEMBER_OIDC_CLIENT_ID": oidc.client_id,
        "SIDECAR_MEMBER_OIDC_CLIENT_SECRET": oidc.client_secret,
        "SIDECAR_MEMBER_OIDC_SUBJECT_SYSTEM": LOGIN_SYSTEM,
        # Every test signs in from 127.0.0.1: the failure-rate rule would throttle the whole run. The rule
        # these tests try is the card-variant one.
        "SIDECAR_MATCH_FAILURE_FLOOR": "100000"}).start()
    try:
        yield process
    finally:
        process.stop()
