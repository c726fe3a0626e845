"""The demo data set that `scripts/up` loads: HAPI accepts it, and loading it again duplicates nothing."""
from __future__ import annotations

import pytest

from sidecar.demo.data import MEMBER_ID_SYSTEM, MEMBERS
from sidecar.demo.load import load_demo_data

pytestmark = pytest.mark.hapi


async def test_demo_load_is_idempotent(hapi, seed):
    await load_demo_data(hapi.base_url)
    _, first = await seed.get("Patient", identifier=f"{MEMBER_ID_SYSTEM}|", _summary="count")
    await load_demo_data(hapi.base_url)
    _, second = await seed.get("Patient", identifier=f"{MEMBER_ID_SYSTEM}|", _summary="count")
    assert first["total"] == second["total"] == len(MEMBERS)


async def test_demo_member_is_readable_through_the_sidecar_with_claims_and_prior_auth(hapi, http, sidecar):
    await load_demo_data(hapi.base_url)
    async with http.get(f"{sidecar.fhir_base}/ExplanationOfBenefit", params={"patient": "demo-m1"},
                        headers={"Accept": "application/fhir+json"}) as resp:
        assert resp.status == 200
        bundle = await resp.json(content_type=None)
    assert {e["resource"]["use"] for e in bundle["entry"]} == {"claim", "preauthorization"}
