"""Through the sidecar against real HAPI: a member with ten years of history, disclosed to a partner holding a
`#regular` consent and to one holding a `#sensitive` consent. Each resource's fate is written in
tests/ten_year_member.py; these tests assert the exact set that leaves, by search (paged), by read and by
`_include`/`_revinclude`, and the exact non-financial form of each claim.
"""
from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from dataclasses import dataclass

import orjson
import pytest

from sidecar.store.sqlite import SqliteStore
from sidecar.store.grants import Grant, add_grant
from tests.integration.test_discovery_and_audit import audit_rows
from tests.smart import Registered, bearer_headers, register_client
from tests.ten_year_member import REGULAR, RELEASED, SENSITIVE, STRIPPED, WITHHELD, TenYearMember, resolve

pytestmark = pytest.mark.hapi

FHIR_JSON = {"Accept": "application/fhir+json"}
CONSENT = "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-hrex-consent.html#"
POLICIES = [REGULAR, SENSITIVE]


@dataclass
class Loaded:
    member: TenYearMember
    ids: dict[str, str]
    """fixture key → `Type/id` in HAPI"""
    clients: dict[str, Registered]

    @property
    def patient_id(self) -> str:
        return self.ids["patient"].split("/")[1]

    def key_of(self, resource: dict) -> str:
        return {ref: key for key, ref in self.ids.items()}[f"{resource['resourceType']}/{resource['id']}"]


@pytest.fixture(scope="module")
def history(hapi, sidecar) -> Loaded:
    member = TenYearMember(uuid.uuid4().hex)
    request = urllib.request.Request(hapi.base_url, data=json.dumps(member.transaction()).encode(), method="POST",
                                     headers={"Content-Type": "application/fhir+json", **FHIR_JSON})
    with urllib.request.urlopen(request, timeout=120) as response:
        answer = json.load(response)
    ids = {key: "/".join(entry["response"]["location"].split("/")[:2])
           for key, entry in zip(member.keys_in_order(), answer["entry"])}
    clients = {}
    store = SqliteStore(sidecar.data_dir)
    try:
        for policy in POLICIES:
            clients[policy] = register_client(sidecar.data_dir)
            add_grant(store, Grant(clients[policy].organization, ids["patient"].split("/")[1], CONSENT + policy,
                                   None, time.time() - 1, None))
    finally:
        store.close()
    time.sleep(0.3)  # the server notices new clients within state_refresh_seconds
    return Loaded(member, ids, clients)


async def partner_headers(anonymous, token_url: str, history: Loaded, policy: str) -> dict[str, str]:
    return {**FHIR_JSON, **await bearer_headers(anonymous, token_url, history.clients[policy])}


async def search_all(http, headers: dict, url: str, **params: str) -> list[dict]:
    """Every entry of a search, following `next` links page by page."""
    entries: list[dict] = []
    next_url: str | None = url
    while next_url:
        async with http.get(next_url, headers=headers, params=params) as resp:
            bundle = await resp.json(content_type=None)
            assert resp.status == 200, bundle
        assert "total" not in bundle, "a total would count what was withheld"
        entries += bundle.get("entry", [])
        next_url = next((link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None)
        params = {}
    return entries


def comparable(resource: dict) -> dict:
    """A resource without what HAPI adds on storage (id, version, timestamps)."""
    out = {k: v for k, v in resource.items() if k != "id"}
    meta = {k: v for k, v in out.get("meta", {}).items() if k not in ("versionId", "lastUpdated", "source")}
    if meta:
        out["meta"] = meta
    else:
        out.pop("meta", None)
    return orjson.loads(orjson.dumps(out))


@pytest.mark.parametrize("policy", POLICIES)
async def test_paged_searches_disclose_exactly_the_expected_member_data(anonymous, sidecar, token_url, history, policy):
    headers = await partner_headers(anonymous, token_url, history, policy)
    types = sorted({entry.resource["resourceType"] for entry in history.member.members})
    disclosed: set[str] = set()
    for resource_type in types:
        parameter = "_id" if resource_type == "Patient" else "patient"
        for entry in await search_all(anonymous, headers, f"{sidecar.fhir_base}/{resource_type}",
                                      **{parameter: history.patient_id, "_count": "4"}):
            disclosed.add(history.key_of(entry["resource"]))
    expected = {e.key for e in history.member.members if e.expected(policy) != WITHHELD}
    assert sorted(disclosed) == sorted(expected)


@pytest.mark.parametrize("policy", POLICIES)
async def test_claims_leave_in_their_exact_non_financial_form(anonymous, sidecar, token_url, history, policy):
    headers = await partner_headers(anonymous, token_url, history, policy)
    urns = {history.member.urns[key]: ref for key, ref in history.ids.items()}
    entries = await search_all(anonymous, headers, f"{sidecar.fhir_base}/ExplanationOfBenefit",
                               patient=history.patient_id)
    found = {history.key_of(e["resource"]): e["resource"] for e in entries}
    claims = [e for e in history.member.members if e.expected(policy) == STRIPPED]
    assert claims and all(c.key in found for c in claims)
    for claim in claims:
        assert comparable(found[claim.key]) == resolve(claim.stripped, urns), claim.key
        async with anonymous.get(f"{sidecar.fhir_base}/{history.ids[claim.key]}", headers=headers) as resp:
            assert comparable(await resp.json(content_type=None)) == resolve(claim.stripped, urns), claim.key


@pytest.mark.parametrize("policy", POLICIES)
async def test_reads_disclose_exactly_the_expected_resources(anonymous, sidecar, token_url, history, policy):
    headers = await partner_headers(anonymous, token_url, history, policy)
    expected = {e.key: e.expected(policy) for e in [*history.member.members, *history.member.provenances]}
    expected.update({r.key: r.read for r in history.member.references})
    answered = {}
    for key in expected:
        async with anonymous.get(f"{sidecar.fhir_base}/{history.ids[key]}", headers=headers) as resp:
            body = await resp.json(content_type=None)
            answered[key] = WITHHELD if resp.status == 404 else RELEASED
            assert resp.status in (200, 404), body
            if resp.status == 404:
                assert body["issue"][0]["diagnostics"] == f"{history.ids[key]} is not available"
    assert answered == {k: WITHHELD if v == WITHHELD else RELEASED for k, v in expected.items()}


@pytest.mark.parametrize("policy, search, include, expected", [
    (REGULAR, "Encounter", {"_include": "Encounter:service-provider"}, {"org_clinic"}),
    (SENSITIVE, "Encounter", {"_include": "Encounter:service-provider"}, {"org_clinic", "org_part2"}),
    (REGULAR, "MedicationDispense", {"_include": "MedicationDispense:medication"}, {"med_lisinopril"}),
    (SENSITIVE, "MedicationDispense", {"_include": "MedicationDispense:medication"}, {"med_lisinopril", "med_bup"}),
    (REGULAR, "DocumentReference", {"_include": "DocumentReference:custodian"}, {"org_clinic"}),
    (SENSITIVE, "DocumentReference", {"_include": "DocumentReference:custodian"}, {"org_clinic", "org_part2"}),
    (REGULAR, "Observation", {"_revinclude": "Provenance:target"}, {"provenance_lab"}),
    (REGULAR, "DocumentReference", {"_revinclude": "Provenance:target"}, set()),
    (SENSITIVE, "DocumentReference", {"_revinclude": "Provenance:target"}, {"provenance_part2"}),
])
async def test_included_resources_follow_the_data_that_is_released(anonymous, sidecar, token_url, history, policy,
                                                                   search, include, expected):
    headers = await partner_headers(anonymous, token_url, history, policy)
    entries = await search_all(anonymous, headers, f"{sidecar.fhir_base}/{search}", patient=history.patient_id,
                               **include)
    included = {history.key_of(e["resource"]) for e in entries if e.get("search", {}).get("mode") == "include"}
    matched = {history.key_of(e["resource"]) for e in entries if e.get("search", {}).get("mode") == "match"}
    assert included == expected
    released = {e.key for e in history.member.members if e.expected(policy) != WITHHELD
                and e.resource["resourceType"] == search}
    assert matched == released


async def test_withholding_is_silent_to_the_partner_and_explained_in_the_audit_log(anonymous, sidecar, token_url,
                                                                                   history):
    headers = await partner_headers(anonymous, token_url, history, REGULAR)
    async with anonymous.get(f"{sidecar.fhir_base}/Condition", headers=headers,
                             params={"patient": history.patient_id}) as resp:
        text = await resp.text()
    assert "F10" not in text and "B20" not in text and "withheld" not in text.lower()
    await asyncio.sleep(0.3)  # audit records are written in batches
    rows = audit_rows(sidecar, "client_id = ? AND request LIKE ?", history.clients[REGULAR].client_id,
                      "GET /fhir/Condition?%")
    detail = json.loads(rows[-1]["detail"])
    explained = {(w["resource"], w["rule"], w.get("code")) for w in detail["withheld"]}
    assert (history.ids["condition_alcohol"], "sensitive-code:sud",
            "http://hl7.org/fhir/sid/icd-10-cm|F10.20") in explained
    assert (history.ids["condition_9y"], "five-year-lookback", history.member.members[
        [e.key for e in history.member.members].index("condition_9y")].resource["onsetDateTime"]) in explained
    assert detail["withheld_count"] == len(detail["withheld"]) == 3
