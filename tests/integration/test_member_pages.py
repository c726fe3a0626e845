"""The members' pages over HTTP against real HAPI: opt-in at the new payer writes what `pull` sends, withdrawal
stops it, forms without the session's CSRF token change nothing, and the former members' sign-in says nothing
about which answer was wrong. (tests/integration/test_member_browser.py walks the same paths in Chromium.)"""
from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import subprocess
import sys
from datetime import date

import aiohttp
import pytest

from sidecar.client.local_fhir import LocalFhir
from sidecar.client.member_requests import member_requests
from sidecar.devstack import SidecarProcess, free_port
from sidecar.store.sqlite import SqliteStore
from sidecar.store.partners import get_partner
from tests.conftest import THIS_PAYER
from tests.integration.test_profiles import HREX_CONSENT, assert_conforms
from tests.member_stack import PARTNER_A, PARTNER_A_ID, RECIPIENT_NAME, fhir_get, former_member, new_member

pytestmark = pytest.mark.hapi


async def audited(data_dir, condition: str, patient_id: str) -> list[str]:
    """The details of this member's audit records meeting `condition`, once the server's audit writer has caught
    up."""
    store = SqliteStore(data_dir)
    try:
        for _ in range(50):
            details = [row["detail"] for row in store.query(
                f"SELECT detail FROM audit WHERE {condition} AND detail LIKE ?", [f'%"{patient_id}"%'])]
            if details:
                return details
            await asyncio.sleep(0.1)
        return []
    finally:
        store.close()


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


@pytest.fixture
async def browser_like():
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def sign_in(session: aiohttp.ClientSession, sidecar, login: str) -> tuple[int, str]:
    async with session.get(f"{sidecar.public_url}/member/sign-in") as resp:
        assert resp.status == 200 and "Test identity provider" in await resp.text()
        provider_form = dict(resp.url.query)
        authorize = str(resp.url.with_query(None))
    async with session.post(authorize, data={**provider_form, "username": login}) as resp:
        assert str(resp.url).startswith(f"{sidecar.public_url}/member/")
        return resp.status, await resp.text()


async def signed_in_page(session: aiohttp.ClientSession, sidecar, login: str) -> str:
    status, page = await sign_in(session, sidecar, login)
    assert status == 200, page
    return page


OPT_IN = {"plan": PARTNER_A, "member_id": "A-778899", "start": "2021-03-01", "end": "2025-12-31",
          "confirm": "yes", "policy": "sensitive"}


async def test_an_opt_in_writes_the_hrex_consent_and_prior_coverage_that_pull_sends(
        hapi, member_sidecar, browser_like):
    member = await new_member(hapi)
    page = await signed_in_page(browser_like, member_sidecar, member.login)
    async with browser_like.post(f"{member_sidecar.public_url}/member/opt-in",
                                 data={**OPT_IN, "csrf": csrf_of(page)}) as resp:
        assert resp.status == 200
        assert 'data-state="requested"' in await resp.text()
    consents = await fhir_get(hapi, "Consent", patient=f"Patient/{member.patient_id}")
    consent = consents["entry"][0]["resource"]
    actors = {a["role"]["coding"][0]["code"]: a["reference"] for a in consent["provision"]["actor"]}
    assert consent["status"] == "active"
    assert consent["policy"][0]["uri"].endswith("#sensitive")
    assert actors["performer"]["identifier"] == dict(zip(("system", "value"), PARTNER_A_ID.split("|")))
    assert actors["IRCP"]["identifier"] == dict(zip(("system", "value"), THIS_PAYER.split("|")))
    assert consent["provision"]["period"]["start"] == date.today().isoformat()
    store = SqliteStore(member_sidecar.data_dir)
    try:
        partner = get_partner(store, PARTNER_A)
    finally:
        store.close()
    async with aiohttp.ClientSession() as session:
        [queued] = await member_requests(LocalFhir(session, hapi.base_url), partner, [member.patient_id])
    assert queued.problem() is None
    assert queued.coverage_to_match["identifier"][0]["value"] == "A-778899"
    assert queued.coverage_to_match["period"] == {"start": "2021-03-01", "end": "2025-12-31"}


async def test_withdrawing_marks_the_consent_inactive_so_no_pull_sends_the_member(hapi, member_sidecar,
                                                                                   browser_like):
    member = await new_member(hapi)
    page = await signed_in_page(browser_like, member_sidecar, member.login)
    async with browser_like.post(f"{member_sidecar.public_url}/member/opt-in",
                                 data={**OPT_IN, "csrf": csrf_of(page)}) as resp:
        page = await resp.text()
    optin = re.search(r'name="optin" value="(\d+)"', page).group(1)
    async with browser_like.post(f"{member_sidecar.public_url}/member/withdraw",
                                 data={"optin": optin, "csrf": csrf_of(page)}) as resp:
        assert 'data-state="withdrawn"' in await resp.text()
    consents = await fhir_get(hapi, "Consent", patient=f"Patient/{member.patient_id}")
    assert [e["resource"]["status"] for e in consents["entry"]] == ["inactive"]


async def test_a_form_without_the_sessions_csrf_token_changes_nothing(hapi, member_sidecar, browser_like):
    member = await new_member(hapi)
    await signed_in_page(browser_like, member_sidecar, member.login)
    async with browser_like.post(f"{member_sidecar.public_url}/member/opt-in",
                                 data={**OPT_IN, "csrf": "forged"}) as resp:
        assert resp.status == 403
    consents = await fhir_get(hapi, "Consent", patient=f"Patient/{member.patient_id}")
    assert consents.get("total", 0) == 0 and "entry" not in consents


async def test_an_account_linked_to_no_member_is_not_signed_in(member_sidecar, browser_like):
    status, page = await sign_in(browser_like, member_sidecar, "nobody-we-know")
    assert status == 403 and "not linked to a membership" in page
    async with browser_like.get(f"{member_sidecar.public_url}/member/") as resp:
        assert "Sign in to choose" in await resp.text()


async def test_a_forged_callback_is_refused(member_sidecar, browser_like):
    async with browser_like.get(f"{member_sidecar.public_url}/member/callback",
                                params={"code": "x", "state": "y"}) as resp:
        assert resp.status == 400


async def former_sign_in(session: aiohttp.ClientSession, sidecar, **answers: str) -> tuple[int, str]:
    async with session.get(f"{sidecar.public_url}/member/former") as resp:
        csrf = csrf_of(await resp.text())
    async with session.post(f"{sidecar.public_url}/member/former/sign-in", data={**answers, "csrf": csrf}) as resp:
        return resp.status, await resp.text()


def answers_of(former, **changed: str) -> dict[str, str]:
    return {"given": former.given, "family": former.family, "birth_date": former.birth_date,
            "member_id": former.member_id, "postal_code": former.postal_code, **changed}


def failure_of(page: str) -> str:
    return re.search(r'role="alert"><p>([^<]+)</p>', page).group(1)


async def test_a_wrong_answer_says_nothing_about_which_field_was_wrong(hapi, member_sidecar, browser_like):
    former = await former_member(hapi, member_sidecar)
    answers = [answers_of(former, postal_code="62705"), answers_of(former, birth_date="1971-07-15"),
               answers_of(former, given="Gracie")]
    results = [await former_sign_in(browser_like, member_sidecar, **a) for a in answers]
    assert {status for status, _ in results} == {401}
    assert len({failure_of(page) for _, page in results}) == 1
    details = await audited(member_sidecar.data_dir, "request = 'former-sign-in' AND decision = 'refused'",
                            former.patient_id)
    assert any('"postal_code"' in detail for detail in details)  # the audit says which; the member is not told


async def test_a_former_member_sees_who_received_their_data_and_withdraws_like_consent_revoke(
        hapi, member_sidecar, browser_like):
    former = await former_member(hapi, member_sidecar)
    status, page = await former_sign_in(browser_like, member_sidecar, **answers_of(former))
    assert status == 200 and RECIPIENT_NAME in page
    assert page.count(" UTC") == 1  # the export of their Group; not the other Group's
    async with browser_like.post(f"{member_sidecar.public_url}/member/former/withdraw",
                                 data={"csrf": csrf_of(page)}) as resp:
        assert "stopped on" in await resp.text()
    store = SqliteStore(member_sidecar.data_dir)
    try:
        revoked = store.scalar("SELECT revoked_at FROM grants WHERE patient_id = ?", [former.patient_id])
    finally:
        store.close()
    assert revoked is not None
    assert len(await audited(member_sidecar.data_dir, "decision = 'consent-revoked'", former.patient_id)) == 1
    consent = await fhir_get(hapi, former.consent)
    assert consent["status"] == "inactive"


async def test_trying_member_ids_one_after_another_is_throttled(hapi, member_sidecar, browser_like):
    former = await former_member(hapi, member_sidecar)
    for n in range(3):
        status, _ = await former_sign_in(browser_like, member_sidecar, **answers_of(former, member_id=f"GUESS-{n}"))
        assert status == 401
    status, page = await former_sign_in(browser_like, member_sidecar, **answers_of(former))
    assert status == 429 and "Too many attempts" in page


async def test_asking_the_same_plan_twice_is_refused_while_the_first_request_stands(hapi, member_sidecar,
                                                                                     browser_like):
    member = await new_member(hapi)
    page = await signed_in_page(browser_like, member_sidecar, member.login)
    for expected in (200, 422):
        async with browser_like.post(f"{member_sidecar.public_url}/member/opt-in",
                                     data={**OPT_IN, "csrf": csrf_of(page)}) as resp:
            assert resp.status == expected
            page = await resp.text()
    assert "You already asked this plan" in page
    consents = await fhir_get(hapi, "Consent", patient=f"Patient/{member.patient_id}")
    assert len(consents["entry"]) == 1


async def test_the_pages_keep_out_of_frames_and_caches_and_send_no_referrer(member_sidecar, browser_like):
    async with browser_like.get(f"{member_sidecar.public_url}/member") as resp:
        assert str(resp.url).endswith("/member/")
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["Cache-Control"] == "no-store"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
        cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/member/" in cookie


async def test_a_member_cannot_withdraw_another_members_request(hapi, member_sidecar):
    owner, other = await new_member(hapi), await new_member(hapi)
    jar = {}
    for who in (owner, other):
        jar[who] = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        page = await signed_in_page(jar[owner], member_sidecar, owner.login)
        async with jar[owner].post(f"{member_sidecar.public_url}/member/opt-in",
                                   data={**OPT_IN, "csrf": csrf_of(page)}) as resp:
            optin = re.search(r'name="optin" value="(\d+)"', await resp.text()).group(1)
        page = await signed_in_page(jar[other], member_sidecar, other.login)
        async with jar[other].post(f"{member_sidecar.public_url}/member/withdraw",
                                   data={"optin": optin, "csrf": csrf_of(page)}) as resp:
            assert resp.status == 404
    finally:
        for session in jar.values():
            await session.close()
    consents = await fhir_get(hapi, "Consent", patient=f"Patient/{owner.patient_id}")
    assert [e["resource"]["status"] for e in consents["entry"]] == ["active"]


async def test_the_consent_and_prior_coverage_the_page_writes_conform_to_hrex_and_r4(hapi, member_sidecar,
                                                                                   browser_like, validator):
    member = await new_member(hapi)
    page = await signed_in_page(browser_like, member_sidecar, member.login)
    async with browser_like.post(f"{member_sidecar.public_url}/member/opt-in",
                                 data={**OPT_IN, "csrf": csrf_of(page)}) as resp:
        assert resp.status == 200
    consent = (await fhir_get(hapi, "Consent", patient=f"Patient/{member.patient_id}"))["entry"][0]["resource"]
    coverages = await fhir_get(hapi, "Coverage", beneficiary=f"Patient/{member.patient_id}")
    [prior] = [e["resource"] for e in coverages["entry"] if e["resource"]["payor"][0].get("display") == PARTNER_A]
    assert_conforms(validator, consent, HREX_CONSENT)
    assert_conforms(validator, prior)


async def test_a_plan_that_is_not_a_partner_is_recorded_for_member_services_and_reported(hapi, member_sidecar,
                                                                                         browser_like):
    member = await new_member(hapi)
    page = await signed_in_page(browser_like, member_sidecar, member.login)
    async with browser_like.post(f"{member_sidecar.public_url}/member/opt-in", data={
            **OPT_IN, "plan": "other", "other_plan": "Tiny Mutual Co-op", "csrf": csrf_of(page)}) as resp:
        assert 'data-state="with member services"' in await resp.text()
    consent = (await fhir_get(hapi, "Consent", patient=f"Patient/{member.patient_id}"))["entry"][0]["resource"]
    source = [a["reference"] for a in consent["provision"]["actor"] if a["role"]["coding"][0]["code"] == "performer"]
    assert source == [{"display": "Tiny Mutual Co-op"}]
    reported = subprocess.run([sys.executable, "-m", "sidecar", "report"], capture_output=True, text=True,
                              env={**os.environ, "SIDECAR_DATA_DIR": str(member_sidecar.data_dir)}, timeout=60)
    [row] = [r for r in csv.DictReader(io.StringIO(reported.stdout)) if r["member"] == member.patient_id]
    assert row["partner"] == "other: Tiny Mutual Co-op" and row["requested"] == ""


async def test_with_hapi_unreachable_the_pages_say_try_later_and_nothing_is_signed_in(tmp_path, browser_like):
    down = SidecarProcess(f"http://127.0.0.1:{free_port()}/fhir", tmp_path).start()
    try:
        async with browser_like.get(f"{down.public_url}/member/former") as resp:
            csrf = csrf_of(await resp.text())
        async with browser_like.post(f"{down.public_url}/member/former/sign-in", data={
                "given": "Grace", "family": "Leaver", "birth_date": "1971-07-14", "member_id": "X1",
                "postal_code": "62704", "csrf": csrf}) as resp:
            assert resp.status == 503 and "Please try again later" in await resp.text()
        async with browser_like.get(f"{down.public_url}/member/former") as resp:
            assert "Former members: see who received your records" in await resp.text()
    finally:
        down.stop()
