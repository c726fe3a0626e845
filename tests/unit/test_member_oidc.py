"""The member page's OpenID Connect client accepts only an ID token the provider signed for this client and this
sign-in: anything else (another key, audience, issuer or nonce, an expired token, a wrong PKCE verifier) fails."""
from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from sidecar.members.oidc import Attempt, OidcClient, SignInFailed
from tests.oidc_provider import OidcProvider

REDIRECT = "https://payer.example/member/callback"


@pytest.fixture(scope="module")
def provider():
    started = OidcProvider().start()
    yield started
    started.stop()


@pytest.fixture(autouse=True)
def honest(provider):
    provider.claims_override, provider.signing_key = {}, None


async def code_for(session: aiohttp.ClientSession, client: OidcClient, attempt: Attempt, user: str) -> str:
    """What the browser does between the redirect to the provider and the callback."""
    url = await client.authorization_url(session, attempt)
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    async with session.post(url.split("?")[0], data={**query, "username": user}, allow_redirects=False) as resp:
        back = parse_qs(urlsplit(resp.headers["Location"]).query)
    assert back["state"] == [attempt.state]
    return back["code"][0]


async def sign_in(provider: OidcProvider, tamper=None, verifier_of=None) -> str:
    client = OidcClient(provider.issuer, provider.client_id, provider.client_secret, REDIRECT)
    attempt = Attempt.new()
    async with aiohttp.ClientSession() as session:
        code = await code_for(session, client, attempt, "member-7")
        if tamper:
            tamper(provider)
        return await client.subject(session, code, verifier_of or attempt)


async def test_an_honest_provider_gives_the_accounts_subject(provider):
    assert await sign_in(provider) == "member-7"


@pytest.mark.parametrize("tamper", [
    lambda p: setattr(p, "signing_key", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    lambda p: setattr(p, "claims_override", {"aud": "another-client"}),
    lambda p: setattr(p, "claims_override", {"iss": "https://elsewhere.example"}),
    lambda p: setattr(p, "claims_override", {"nonce": "replayed"}),
    lambda p: setattr(p, "claims_override", {"exp": int(time.time()) - 120}),
], ids=["another-key", "another-audience", "another-issuer", "another-nonce", "expired"])
async def test_an_id_token_not_made_for_this_sign_in_fails(provider, tamper):
    with pytest.raises(SignInFailed):
        await sign_in(provider, tamper)


async def test_a_code_redeemed_without_the_sign_ins_pkce_verifier_fails(provider):
    with pytest.raises(SignInFailed, match="without an ID token"):
        await sign_in(provider, verifier_of=Attempt.new())


async def test_a_provider_naming_another_issuer_in_its_metadata_is_not_used(provider):
    client = OidcClient(provider.issuer + "/tenant", provider.client_id, provider.client_secret, REDIRECT)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(SignInFailed):
            await client.authorization_url(session, Attempt.new())
