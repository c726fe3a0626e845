"""The streaming proxy against the real HAPI: same data as HAPI gives, public URLs only, default deny."""
from __future__ import annotations

import hashlib
import os
import threading
import time

import psutil
import pytest

pytestmark = pytest.mark.hapi

FHIR_JSON = {"Accept": "application/fhir+json"}


def patient(unique: str, n: int) -> dict:
    return {"resourceType": "Patient", "identifier": [{"system": f"urn:test:{unique}", "value": str(n)}],
            "name": [{"family": f"Proxy{n}", "given": ["Test"]}], "birthDate": "1980-01-01"}


async def get_json(http, url: str) -> tuple[int, dict, dict]:
    async with http.get(url, headers=FHIR_JSON) as resp:
        return resp.status, dict(resp.headers), await resp.json(content_type=None)


def every_url(value) -> list[str]:
    if isinstance(value, dict):
        return [u for v in value.values() for u in every_url(v)]
    if isinstance(value, list):
        return [u for v in value for u in every_url(v)]
    return [value] if isinstance(value, str) and value.startswith("http") else []


async def test_search_returns_what_hapi_returns_with_every_url_public(http, seed, sidecar, hapi, unique):
    for n in range(5):
        await seed.create(patient(unique, n))
    query = f"Patient?identifier=urn:test:{unique}|&_count=2&_sort=family"
    status, _, direct = await get_json(http, f"{hapi.base_url}/{query}")
    assert status == 200
    status, headers, proxied = await get_json(http, f"{sidecar.fhir_base}/{query}")
    assert status == 200
    assert [e["resource"]["id"] for e in proxied["entry"]] == [e["resource"]["id"] for e in direct["entry"]]
    assert proxied["total"] == direct["total"] == 5
    urls = every_url(proxied) + [v for v in headers.values() if v.startswith("http")]
    assert urls and all(u.startswith(sidecar.fhir_base) for u in urls), urls
    assert all(e["fullUrl"] == f"{sidecar.fhir_base}/Patient/{e['resource']['id']}" for e in proxied["entry"])


async def test_paging_links_lead_through_the_sidecar_to_the_same_pages(http, seed, sidecar, hapi, unique):
    for n in range(5):
        await seed.create(patient(unique, n))
    query = f"Patient?identifier=urn:test:{unique}|&_count=2&_sort=family"
    seen: list[str] = []
    url = f"{sidecar.fhir_base}/{query}"
    while url:
        status, _, page = await get_json(http, url)
        assert status == 200
        seen += [e["resource"]["name"][0]["family"] for e in page["entry"]]
        url = next((link["url"] for link in page.get("link", []) if link["relation"] == "next"), None)
        assert url is None or url.startswith(sidecar.fhir_base + "?")
    assert seen == [f"Proxy{n}" for n in range(5)]


async def test_read_returns_hapis_resource_and_public_content_location(http, seed, sidecar, hapi, unique):
    created = await seed.create(patient(unique, 1))
    status, headers, proxied = await get_json(http, f"{sidecar.fhir_base}/Patient/{created['id']}")
    assert status == 200
    _, _, direct = await get_json(http, f"{hapi.base_url}/Patient/{created['id']}")
    assert proxied == direct
    for name in ("Content-Location", "Location"):
        if name in headers:
            assert headers[name].startswith(sidecar.fhir_base)


async def test_no_byte_of_the_upstream_address_reaches_the_client(http, seed, sidecar, hapi, unique):
    for n in range(3):
        await seed.create(patient(unique, n))
    upstream_origin = hapi.base_url.split("/fhir")[0]
    for path in (f"Patient?identifier=urn:test:{unique}|&_count=1", "metadata", "Patient/does-not-exist"):
        async with http.get(f"{sidecar.fhir_base}/{path}", headers=FHIR_JSON) as resp:
            body = await resp.text()
            headers = " ".join(f"{k}: {v}" for k, v in resp.headers.items())
        assert upstream_origin not in body and upstream_origin not in headers, path


async def test_search_by_post_form_passes(http, seed, sidecar, unique):
    await seed.create(patient(unique, 7))
    async with http.post(f"{sidecar.fhir_base}/Patient/_search", data={"identifier": f"urn:test:{unique}|7"},
                         headers=FHIR_JSON) as resp:
        assert resp.status == 200
        bundle = await resp.json(content_type=None)
    assert bundle["total"] == 1


async def test_large_binary_streams_through_with_flat_sidecar_memory(http, sidecar, hapi):
    payload = os.urandom(1024 * 1024) * 50  # 50 MB
    async with http.post(f"{hapi.base_url}/Binary", data=payload,
                         headers={"Content-Type": "application/octet-stream"}) as resp:
        assert resp.status == 201, await resp.text()
        binary_id = resp.headers["Location"].split("/Binary/")[1].split("/")[0]

    process = psutil.Process(sidecar.process.pid)
    baseline = process.memory_info().rss
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    digest, received = hashlib.sha256(), 0
    try:
        async with http.get(f"{sidecar.fhir_base}/Binary/{binary_id}",
                            headers={"Accept": "application/octet-stream"}) as resp:
            assert resp.status == 200
            async for chunk in resp.content.iter_chunked(256 * 1024):
                digest.update(chunk)
                received += len(chunk)
    finally:
        done.set()
        sampler.join()
    assert received == len(payload)
    assert digest.digest() == hashlib.sha256(payload).digest()
    assert peak - baseline < 30 * 1024 * 1024, f"sidecar RSS grew by {(peak - baseline) / 2**20:.1f} MB"


async def test_post_create_is_refused_and_never_reaches_hapi(http, seed, sidecar, unique):
    async with http.post(f"{sidecar.fhir_base}/Patient", json=patient(unique, 1),
                         headers={"Content-Type": "application/fhir+json"}) as resp:
        assert resp.status == 405
        outcome = await resp.json(content_type=None)
    assert outcome["resourceType"] == "OperationOutcome"
    _, found = await seed.get("Patient", identifier=f"urn:test:{unique}|1")
    assert found["total"] == 0


async def test_delete_is_refused_and_the_resource_stays(http, seed, sidecar, unique):
    created = await seed.create(patient(unique, 1))
    async with http.delete(f"{sidecar.fhir_base}/Patient/{created['id']}") as resp:
        assert resp.status == 405
        assert (await resp.json(content_type=None))["resourceType"] == "OperationOutcome"
    status, _ = await seed.get(f"Patient/{created['id']}")
    assert status == 200


async def test_put_update_is_refused_and_the_resource_is_unchanged(http, seed, sidecar, unique):
    created = await seed.create(patient(unique, 1))
    changed = dict(created, gender="other")
    async with http.put(f"{sidecar.fhir_base}/Patient/{created['id']}", json=changed,
                        headers={"Content-Type": "application/fhir+json"}) as resp:
        assert resp.status == 405
    _, current = await seed.get(f"Patient/{created['id']}")
    assert current["meta"]["versionId"] == created["meta"]["versionId"] and "gender" not in current


@pytest.mark.parametrize("path", ["Patient/{id}/_history", "Patient/_history", "_history"])
async def test_history_is_refused_with_an_operation_outcome(http, seed, sidecar, unique, path):
    created = await seed.create(patient(unique, 1))
    async with http.get(f"{sidecar.fhir_base}/{path.format(id=created['id'])}", headers=FHIR_JSON) as resp:
        assert resp.status == 403
        assert (await resp.json(content_type=None))["resourceType"] == "OperationOutcome"


async def test_transaction_bundle_is_refused_and_creates_nothing(http, seed, sidecar, unique):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient(unique, 1), "request": {"method": "POST", "url": "Patient"}}]}
    async with http.post(sidecar.fhir_base, json=bundle, headers={"Content-Type": "application/fhir+json"}) as resp:
        assert resp.status == 403
        assert (await resp.json(content_type=None))["resourceType"] == "OperationOutcome"
    _, found = await seed.get("Patient", identifier=f"urn:test:{unique}|1")
    assert found["total"] == 0


async def test_metadata_is_hapis_statement_cut_to_what_passes(http, sidecar):
    status, _, statement = await get_json(http, f"{sidecar.fhir_base}/metadata")
    assert status == 200 and statement["resourceType"] == "CapabilityStatement"
    assert statement["implementation"]["url"] == sidecar.fhir_base
    assert statement["fhirVersion"].startswith("4.0")
    rest = statement["rest"][0]
    assert "interaction" not in rest
    patient_entry = next(r for r in rest["resource"] if r["type"] == "Patient")
    assert {i["code"] for i in patient_entry["interaction"]} == {"read", "search-type"}
    assert patient_entry["searchParam"], "HAPI's search parameters are kept"


async def test_readiness_follows_hapi(http, sidecar):
    async with http.get(f"{sidecar.public_url}/health/ready") as resp:
        assert resp.status == 200
    async with http.get(f"{sidecar.public_url}/health/live") as resp:
        assert resp.status == 200


async def test_request_id_from_client_is_returned(http, sidecar):
    async with http.get(f"{sidecar.fhir_base}/metadata", headers={"X-Request-ID": "trace-abc.123"}) as resp:
        assert resp.headers["X-Request-ID"] == "trace-abc.123"


async def test_request_id_is_minted_when_the_clients_is_unsafe(http, sidecar):
    async with http.get(f"{sidecar.fhir_base}/metadata", headers={"X-Request-ID": "bad id\twith tab"}) as resp:
        assert resp.headers["X-Request-ID"] != "bad id\twith tab" and len(resp.headers["X-Request-ID"]) == 32
