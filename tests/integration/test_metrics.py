"""The metrics listener against real HAPI: the counters move with what partners do, and partners never read them."""
from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sidecar.client.smart import ClientKey, token_form
from tests.smart import bearer_headers

pytestmark = pytest.mark.hapi

FHIR_JSON = {"Accept": "application/fhir+json"}
MATCH_SCOPE = "system/*.read system/Patient.$member-match"


async def scrape(http, sidecar) -> dict[tuple[str, tuple], float]:
    async with http.get(sidecar.metrics_url) as resp:
        assert resp.status == 200
        text = await resp.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def moved(before: dict, after: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def nobody(unique: str) -> dict:
    """A $member-match request for a person this payer has never covered."""
    member = {"resourceType": "Patient", "id": "1", "name": [{"family": f"Nobody{unique}", "given": ["Ann"]}],
              "birthDate": "1901-02-03", "gender": "female"}
    coverage = {"resourceType": "Coverage", "id": "9", "status": "active", "beneficiary": {"reference": "Patient/1"},
                "payor": [{"display": "an old payer"}], "subscriberId": unique}
    return {"resourceType": "Parameters", "parameter": [{"name": "MemberPatient", "resource": member},
                                                        {"name": "CoverageToMatch", "resource": coverage}]}


async def test_requests_tokens_and_matches_move_the_counters(anonymous, sidecar, register, token_url, unique):
    before = await scrape(anonymous, sidecar)
    partner = await register(scopes=MATCH_SCOPE)
    auth = await bearer_headers(anonymous, token_url, partner, scope=MATCH_SCOPE)
    async with anonymous.get(f"{sidecar.fhir_base}/Patient", params={"identifier": f"urn:t:{unique}|1"},
                             headers={**auth, **FHIR_JSON}) as resp:
        assert resp.status == 200
    stranger = token_form("client-never-registered", token_url, ClientKey.generate("ES384"), "system/*.read")
    async with anonymous.post(token_url, data=stranger) as resp:
        assert resp.status == 401
    async with anonymous.post(f"{sidecar.fhir_base}/Patient/$member-match", json=nobody(unique),
                              headers={**auth, **FHIR_JSON}) as resp:
        assert resp.status == 422
    after = await scrape(anonymous, sidecar)
    assert moved(before, after, "pdex_sidecar_requests_total", route="proxy", status="200") >= 1
    assert moved(before, after, "pdex_sidecar_request_duration_seconds_count", route="proxy") >= 1
    assert moved(before, after, "pdex_sidecar_requests_total", route="member-match", status="422") >= 1
    assert moved(before, after, "pdex_sidecar_tokens_issued_total") >= 1
    assert moved(before, after, "pdex_sidecar_token_refusals_total", error="invalid_client") >= 1
    assert moved(before, after, "pdex_sidecar_member_matches_total", operation="member-match",
                 outcome="not-found") >= 1


async def test_no_label_carries_a_requested_path(anonymous, sidecar, unique):
    async with anonymous.get(f"{sidecar.public_url}/nothing-{unique}") as resp:
        assert resp.status == 404
    seen = await scrape(anonymous, sidecar)
    assert not [key for key in seen if unique in str(key)]
    assert moved({}, seen, "pdex_sidecar_requests_total", route="unmatched", status="404") >= 1


async def test_a_partner_token_cannot_read_the_metrics(anonymous, sidecar, register, token_url):
    partner = await register(scopes="system/*.read")
    auth = await bearer_headers(anonymous, token_url, partner)
    for url in (f"{sidecar.public_url}/metrics", f"{sidecar.fhir_base}/metrics"):
        async with anonymous.get(url, headers=auth) as resp:
            text = await resp.text()
            assert resp.status in (400, 404), (url, resp.status)
            assert "pdex_sidecar_" not in text
