"""The members' pages in a real browser (Debian's headless Chromium driven by Selenium, never a downloaded
browser), at a phone's width, against real HAPI. Every page visited is checked with axe-core for WCAG 2.1 A/AA
violations, must not scroll sideways, and is kept as a screenshot in test-artifacts/screenshots/."""
from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Iterator

import pytest

from sidecar.devstack import REPO_ROOT, SidecarProcess
from sidecar.store.sqlite import SqliteStore
from sidecar.store.partners import DEFAULT_SCOPES, add_partner
from tests.conftest import THIS_PAYER
from tests.integration.test_member_match import NPI
from tests.member_stack import LOGIN_SYSTEM, PARTNER_A, RECIPIENT_NAME, fhir_post, former_member, new_member
from tests.names import letters
from tests.smart import register_client

pytestmark = pytest.mark.hapi

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
AXE = REPO_ROOT / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
PHONE = (390, 844)
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """One Chromium for the whole run (starting one costs seconds)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (scripts/install-python test installs it)")
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (scripts/install-browser-tests "
                    "installs them as root)")
    if not AXE.exists():
        pytest.skip("axe-core is not installed (scripts/install-browser-tests runs npm ci in tests/browser)")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never fetch a browser or driver
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--window-size={PHONE[0]},{PHONE[1]}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    driver.implicitly_wait(5)  # elements of a page still loading
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Pages:
    """The browser as one test uses it: a fresh session, and every page looked at the same way."""

    def __init__(self, driver, base: str, test: str) -> None:
        self.driver = driver
        self.base = base
        self.test = test
        self.seen = 0
        driver.delete_all_cookies()

    def open(self, path: str) -> None:
        self.driver.get(f"{self.base}{path}")

    def look(self, name: str) -> str:
        """Screenshot, axe-core and the phone-width check of the page shown; its text."""
        self.seen += 1
        # The whole page, at the phone's width: the window is made as tall as the page for the picture.
        height = self.driver.execute_script("return document.documentElement.scrollHeight;")
        self.driver.set_window_size(PHONE[0], max(PHONE[1], height))
        self.driver.save_screenshot(str(SCREENSHOTS / f"{self.test}-{self.seen:02d}-{name}.png"))
        self.driver.set_window_size(*PHONE)
        self.driver.execute_script(AXE.read_text())
        result = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "axe.run(document, {runOnly: {type: 'tag', values: arguments[0]}})"
            ".then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
            " nodes: v.nodes.map(n => n.target.join(' '))}))))"
            ".catch(e => done([{id: 'axe-failed', help: String(e)}]));", WCAG_21_AA)
        assert result == [], f"{name}: accessibility violations: {json.dumps(result, indent=1)}"
        overflow = self.driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;")
        assert overflow <= 0, f"{name}: the page scrolls sideways by {overflow}px at a phone's width"
        return self.driver.find_element("tag name", "body").text

    def type(self, field: str, text: str) -> None:
        element = self.driver.find_element("id", field)
        element.clear()
        element.send_keys(text)

    def set_date(self, field: str, day: str) -> None:
        # A date input's typed form depends on the browser's locale; its value does not.
        self.driver.execute_script("arguments[0].value = arguments[1];", self.driver.find_element("id", field), day)

    def click(self, css: str) -> None:
        self.driver.find_element("css selector", css).click()

    def press(self, label: str) -> None:
        """Press a button or link that loads a page, and wait until the old page is gone (a click returns before
        the navigation it starts)."""
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.support.wait import WebDriverWait

        # A mark on the old page's window: a new document gets a new window object, without it. (Watching an
        # element go stale instead fails now and then: Chrome answers "Node ... does not belong to the document"
        # while the old page is torn down.)
        self.driver.execute_script("window.leftBehind = true;")
        self.driver.find_element("xpath", f"//button[normalize-space()='{label}'] | //a[normalize-space()='{label}']"
                                 ).click()

        def new_page_loaded(driver) -> bool:
            try:
                return driver.execute_script(
                    "return window.leftBehind === undefined && document.readyState === 'complete';")
            except WebDriverException:  # asked while the old document was going away
                return False

        WebDriverWait(self.driver, 20).until(new_page_loaded)


def hapi_json(url: str) -> dict:
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": "application/fhir+json"}),
                                timeout=30) as resp:
        return json.load(resp)


def test_a_member_signs_in_opts_in_sees_the_consent_in_hapi_and_withdraws(browser, hapi, member_sidecar):
    member = asyncio.run(new_member(hapi))
    pages = Pages(browser, member_sidecar.public_url, "new-payer")
    pages.open("/member/")
    assert "It is your choice" in pages.look("welcome")
    pages.press("Sign in to choose")
    pages.type("username", member.login)
    pages.press("Continue")
    assert "Ask a previous plan" in pages.look("signed-in")
    pages.press("Ask my previous plan")
    assert "Please fix 5 problems" in pages.look("form-errors")
    pages.driver.find_element("css selector", f"#plan option[value='{PARTNER_A}']").click()
    pages.type("member_id", "A-5551234")
    pages.set_date("start", "2020-05-01")
    pages.click("label[for=confirm]")
    pages.click("label[for=policy-regular]")
    pages.press("Ask my previous plan")
    text = pages.look("requested")
    assert f"{PARTNER_A}, asked on" in text and "Status: requested" in text
    bundle = hapi_json(f"{member_sidecar.upstream_url}/Consent?patient=Patient/{member.patient_id}")
    [consent] = [e["resource"] for e in bundle["entry"]]
    assert consent["status"] == "active" and consent["policy"][0]["uri"].endswith("#regular")
    pages.press(f"Stop asking {PARTNER_A}")
    assert "Status: withdrawn" in pages.look("withdrawn")
    consent = hapi_json(f"{member_sidecar.upstream_url}/Consent/{consent['id']}")
    assert consent["status"] == "inactive"


def test_the_opt_in_form_is_reachable_with_the_keyboard_alone_skip_link_first(browser, hapi, member_sidecar):
    from selenium.webdriver.common.keys import Keys

    member = asyncio.run(new_member(hapi))
    pages = Pages(browser, member_sidecar.public_url, "keyboard")
    pages.open("/member/sign-in")
    pages.type("username", member.login)
    pages.press("Continue")
    body = pages.driver.find_element("tag name", "body")
    body.send_keys(Keys.TAB)
    first = pages.driver.switch_to.active_element
    assert first.text == "Skip to main content" and first.value_of_css_property("left") != "-999px"
    reached: list[str] = []
    for _ in range(40):
        pages.driver.switch_to.active_element.send_keys(Keys.TAB)
        focused = pages.driver.switch_to.active_element
        name = focused.get_attribute("id") or focused.text
        if name and name not in reached:
            reached.append(name)
    fields = ["plan", "other_plan", "member_id", "start", "end", "confirm", "policy-regular",
              "Ask my previous plan", "Sign out"]
    assert [name for name in reached if name in fields] == fields


def former_answers(pages: Pages, former, **changed: str) -> None:
    answers = {"given": former.given, "family": former.family, "member_id": former.member_id,
               "postal_code": former.postal_code, **changed}
    for field, value in answers.items():
        pages.type(field, value)
    pages.set_date("birth_date", changed.get("birth_date", former.birth_date))
    pages.press("Sign in")


def test_a_former_member_is_refused_on_a_wrong_answer_then_sees_who_received_their_data_and_withdraws(
        browser, hapi, member_sidecar):
    former = asyncio.run(former_member(hapi, member_sidecar))
    pages = Pages(browser, member_sidecar.public_url, "former-member")
    pages.open("/member/former")
    pages.look("sign-in")
    former_answers(pages, former, postal_code="10001")
    assert "We could not confirm these details" in pages.look("wrong-answer")
    former_answers(pages, former)
    text = pages.look("recipients")
    assert RECIPIENT_NAME in text and "UTC" in text
    pages.press("Stop sending my records")
    assert "stopped on" in pages.look("withdrawn")
    consent = hapi_json(f"{member_sidecar.upstream_url}/{former.consent}")
    assert consent["status"] == "inactive"


def test_a_former_member_guessing_member_ids_is_throttled(browser, hapi, member_sidecar):
    former = asyncio.run(former_member(hapi, member_sidecar))
    pages = Pages(browser, member_sidecar.public_url, "former-throttle")
    pages.open("/member/former")
    for guess in ("111", "222", "333"):
        former_answers(pages, former, member_id=guess)
    former_answers(pages, former)
    assert "Too many attempts" in pages.look("throttled")


def test_a_member_who_opts_in_is_pulled_from_the_previous_payer_and_sees_data_received_on_time(
        browser, hapi, sidecar, peer_hapi, oidc, tmp_path_factory):
    """End to end across two payers: the member opts in on payer B's page, B's `pull` asks payer A (this run's
    sidecar) for her, A matches her and exports, B ingests; B's page says data received and `report` on time."""
    run = uuid.uuid4().hex[:8]
    demographics = {"name": [{"family": f"Optin{letters(run)}", "given": ["Rosa"]}], "birthDate": "1979-09-09",
                    "gender": "female"}
    at_a = asyncio.run(fhir_post(hapi, {"resourceType": "Patient", **demographics}))
    subject = {"reference": f"Patient/{at_a['id']}"}
    asyncio.run(fhir_post(hapi, {"resourceType": "Coverage", "status": "active", "beneficiary": subject,
                                 "identifier": [{"value": f"A-{run}"}], "payor": [{"display": "Payer A"}]}))
    asyncio.run(fhir_post(hapi, {"resourceType": "Observation", "status": "final", "code": {"text": f"bp {run}"},
                                 "subject": subject, "effectiveDateTime": date.today().isoformat()}))
    npi_b = str(uuid.uuid4().int)[:10]
    client = register_client(sidecar.data_dir, scopes=DEFAULT_SCOPES, organization=f"{NPI}|{npi_b}")
    data_b = tmp_path_factory.mktemp("payer-b-members")
    key_file = data_b / "at-a.jwks"
    key_file.write_text(json.dumps({"keys": [client.key.private_jwk()]}))
    partner = f"Payer A {run}"
    store = SqliteStore(data_b)
    try:
        add_partner(store, partner, sidecar.fhir_base, client.client_id, key_file, [THIS_PAYER])
    finally:
        store.close()
    env_b = {"SIDECAR_PAYER_IDENTIFIERS": f"{NPI}|{npi_b}", "SIDECAR_MEMBER_OIDC_ISSUER": oidc.issuer,
             "SIDECAR_MEMBER_OIDC_CLIENT_ID": oidc.client_id, "SIDECAR_MEMBER_OIDC_CLIENT_SECRET": oidc.client_secret,
             "SIDECAR_MEMBER_OIDC_SUBJECT_SYSTEM": LOGIN_SYSTEM}
    payer_b = SidecarProcess(peer_hapi.base_url, data_b, extra_env=env_b).start()
    try:
        login = f"rosa-{run}"
        at_b = asyncio.run(fhir_post(peer_hapi, {"resourceType": "Patient", **demographics,
                                                 "identifier": [{"system": LOGIN_SYSTEM, "value": login}]}))
        asyncio.run(fhir_post(peer_hapi, {"resourceType": "Coverage", "status": "active",
                                          "beneficiary": {"reference": f"Patient/{at_b['id']}"},
                                          "period": {"start": (date.today() - timedelta(days=2)).isoformat()},
                                          "payor": [{"display": "Payer B"}]}))
        pages = Pages(browser, payer_b.public_url, "two-payers")
        pages.open("/member/sign-in")
        pages.type("username", login)
        pages.press("Continue")
        pages.driver.find_element("css selector", f"#plan option[value='{partner}']").click()
        pages.type("member_id", f"A-{run}")
        pages.set_date("start", "2019-01-01")
        pages.set_date("end", (date.today() - timedelta(days=3)).isoformat())
        pages.click("label[for=confirm]")
        pages.click("label[for=policy-regular]")
        pages.press("Ask my previous plan")
        assert "Status: requested" in pages.look("requested")
        env = {**os.environ, "SIDECAR_UPSTREAM_URL": peer_hapi.base_url, "SIDECAR_DATA_DIR": str(data_b), **env_b}
        pulled = subprocess.run([sys.executable, "-m", "sidecar", "pull", "--partner", partner], env=env,
                                capture_output=True, text=True, timeout=600)
        assert pulled.returncode == 0, pulled.stderr[-2000:]
        pages.open("/member/")
        assert "Status: data received" in pages.look("data-received")
        reported = subprocess.run([sys.executable, "-m", "sidecar", "report"], env=env, capture_output=True,
                                  text=True, timeout=60)
        [row] = [r for r in csv.DictReader(io.StringIO(reported.stdout)) if r["member"] == at_b["id"]]
        assert row["requested"] and row["data_received"] and row["last_pull"] and row["request_late"] == ""
        assert row["coverage_start"] == (date.today() - timedelta(days=2)).isoformat()
    finally:
        payer_b.stop()
