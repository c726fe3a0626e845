"""A partner payer's token reaches only the members granted to its organization, whatever the route."""
from __future__ import annotations

import asyncio
import time
from datetime import date, timedelta

import pytest

from sidecar.store.sqlite import SqliteStore
from sidecar.store.grants import Grant, add_grant
from tests.smart import bearer_headers

pytestmark = pytest.mark.hapi

FHIR_JSON = {"Accept": "application/fhir+json"}
RECENT = (date.today() - timedelta(days=30)).isoformat()  # inside the five-year window


def code(unique: str, value: str) -> dict:
    return {"coding": [{"system": f"urn:t:{unique}", "code": value}]}


async def member_with_observations(seed, unique: str, n: int, observations: int = 2) -> str:
    patient = await seed.create({"resourceType": "Patient", "identifier": [{"system": f"urn:t:{unique}",
                                                                             "value": str(n)}],
                                 "name": [{"family": f"Partner{n}"}]})
    for i in range(observations):
        await seed.create({"resourceType": "Observation", "status": "final", "code": code(unique, str(i)),
                           "effectiveDateTime": RECENT,
                           "subject": {"reference": f"Patient/{patient['id']}"}})
    return patient["id"]


def grant(sidecar, organization: str, patient_id: str) -> None:
    store = SqliteStore(sidecar.data_dir)
    try:
        add_grant(store, Grant(organization, patient_id, "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-"
                               "hrex-consent.html#regular", None, time.time() - 1, None))
    finally:
        store.close()


@pytest.fixture
async def partner(register, anonymous, token_url):
    client = await register(scopes="system/*.read")
    return client, await bearer_headers(anonymous, token_url, client)


async def get(http, url: str, auth: dict, **params) -> tuple[int, dict]:
    async with http.get(url, headers={**auth, **FHIR_JSON}, params=params) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_partner_without_matched_members_sees_no_member_data(anonymous, sidecar, seed, unique, partner):
    _, auth = partner
    member = await member_with_observations(seed, unique, 1)
    status, bundle = await get(anonymous, f"{sidecar.fhir_base}/Patient", auth, identifier=f"urn:t:{unique}|")
    assert status == 200 and bundle.get("entry") is None and "total" not in bundle
    status, outcome = await get(anonymous, f"{sidecar.fhir_base}/Patient/{member}", auth)
    assert status == 404 and outcome["resourceType"] == "OperationOutcome"
    status, bundle = await get(anonymous, f"{sidecar.fhir_base}/Observation", auth, code=f"urn:t:{unique}|0")
    assert status == 200 and bundle.get("entry") is None


async def test_partner_reads_its_granted_member_and_nothing_of_another(anonymous, sidecar, seed, unique, partner):
    client, auth = partner
    mine = await member_with_observations(seed, unique, 1)
    other = await member_with_observations(seed, unique, 2)
    grant(sidecar, client.organization, mine)
    await asyncio.sleep(0.3)

    status, patient = await get(anonymous, f"{sidecar.fhir_base}/Patient/{mine}", auth)
    assert status == 200 and patient["id"] == mine
    status, outcome = await get(anonymous, f"{sidecar.fhir_base}/Patient/{other}", auth)
    assert status == 404 and outcome["issue"][0]["code"] == "not-found"

    status, bundle = await get(anonymous, f"{sidecar.fhir_base}/Patient", auth, identifier=f"urn:t:{unique}|")
    assert [e["resource"]["id"] for e in bundle["entry"]] == [mine] and "total" not in bundle

    status, bundle = await get(anonymous, f"{sidecar.fhir_base}/Observation", auth, patient=other)
    assert status == 200 and bundle.get("entry") is None

    status, bundle = await get(anonymous, f"{sidecar.fhir_base}/Observation", auth, code=f"urn:t:{unique}|0,urn:t:{unique}|1")
    assert {e["resource"]["subject"]["reference"] for e in bundle["entry"]} == {f"Patient/{mine}"}
    assert len(bundle["entry"]) == 2


async def test_partner_cannot_read_another_members_resource_by_id(anonymous, sidecar, seed, unique, partner, http):
    client, auth = partner
    mine = await member_with_observations(seed, unique, 1, observations=0)
    other = await member_with_observations(seed, unique, 2, observations=1)
    grant(sidecar, client.organization, mine)
    await asyncio.sleep(0.3)
    _, found = await seed.get("Observation", patient=other)
    observation_id = found["entry"][0]["resource"]["id"]
    status, outcome = await get(anonymous, f"{sidecar.fhir_base}/Observation/{observation_id}", auth)
    assert status == 404
    missing_status, missing = await get(anonymous, f"{sidecar.fhir_base}/Observation/no-such-id", auth)
    assert missing_status == 404
    assert outcome["issue"][0]["diagnostics"].replace(observation_id, "X") == \
        missing["issue"][0]["diagnostics"].replace("no-such-id", "X"), "refused and missing look the same"


async def test_included_resources_of_other_members_are_left_out(anonymous, sidecar, seed, unique, partner):
    client, auth = partner
    mine = await member_with_observations(seed, unique, 1, observations=1)
    other = await member_with_observations(seed, unique, 2, observations=0)
    # An observation of this member that names the other member as its performer.
    await seed.create({"resourceType": "Observation", "status": "final", "code": code(unique, "perf"),
                       "effectiveDateTime": RECENT,
                       "subject": {"reference": f"Patient/{mine}"},
                       "performer": [{"reference": f"Patient/{other}"}]})
    _, direct = await seed.get("Observation", code=f"urn:t:{unique}|perf", _include="Observation:performer")
    assert len(direct["entry"]) == 2, "HAPI itself includes the other member"
    grant(sidecar, client.organization, mine)
    await asyncio.sleep(0.3)
    status, bundle = await get(anonymous, f"{sidecar.fhir_base}/Observation", auth, code=f"urn:t:{unique}|perf",
                               _include="Observation:performer")
    assert status == 200
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Observation"]


async def test_partner_pages_only_through_its_own_searches(anonymous, sidecar, seed, unique, partner, http):
    client, auth = partner
    mine = await member_with_observations(seed, unique, 1, observations=5)
    grant(sidecar, client.organization, mine)
    await asyncio.sleep(0.3)
    seen, url = [], f"{sidecar.fhir_base}/Observation?patient={mine}&_count=2"
    while url:
        status, page = await get(anonymous, url, auth)
        assert status == 200
        seen += [e["resource"]["id"] for e in page["entry"]]
        url = next((link["url"] for link in page.get("link", []) if link["relation"] == "next"), None)
    assert len(set(seen)) == 5

    async with http.get(f"{sidecar.fhir_base}/Observation?_count=1", headers=FHIR_JSON) as resp:
        operators = await resp.json(content_type=None)
    next_page = next(link["url"] for link in operators["link"] if link["relation"] == "next")
    status, outcome = await get(anonymous, next_page, auth)
    assert status == 404 and outcome["resourceType"] == "OperationOutcome"


async def test_partner_may_not_reverse_chain_or_reach_internal_types(anonymous, sidecar, partner):
    _, auth = partner
    status, _ = await get(anonymous, f"{sidecar.fhir_base}/Organization", auth, **{"_has:Patient:organization:name": "x"})
    assert status == 400
    status, outcome = await get(anonymous, f"{sidecar.fhir_base}/AuditEvent", auth)
    assert status == 403 and outcome["resourceType"] == "OperationOutcome"
    status, outcome = await get(anonymous, f"{sidecar.fhir_base}/Binary/abc", auth)
    assert status == 404, "a Binary no released DocumentReference points to does not exist for a partner"
    status, bundle = await get(anonymous, f"{sidecar.fhir_base}/Group", auth)
    assert status == 200 and bundle["entry"] == [], "Groups: only a partner's own Member Match Groups, here none"


async def test_partner_search_form_that_is_not_utf8_is_400(anonymous, sidecar, partner):
    _, auth = partner
    async with anonymous.post(f"{sidecar.fhir_base}/Patient/_search", data=b"name=\xff\xfe",
                              headers={**auth, "Content-Type": "application/x-www-form-urlencoded"}) as resp:
        assert resp.status == 400
        assert (await resp.json(content_type=None))["resourceType"] == "OperationOutcome"
