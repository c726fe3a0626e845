"""Router sweep: every /fhir route comes from the route table, and every route refuses a token whose scopes do not
cover it before its handler runs (HAPI is unreachable here, so an answer other than the refusal would show it)."""
from __future__ import annotations

import asyncio
import json

import pytest

from sidecar.app import create_app
from sidecar.devstack import free_port
from sidecar.gate.table import ROUTES, Needs
from sidecar.store.sqlite import SqliteStore
from tests.smart import bearer_headers, register_client
from tests.unit.test_upstream_trouble import TOKEN_URL, settings_for

# One request per table entry and method, with what an out-of-scope token gets.
SAMPLES = {
    "member-match": [("POST", "/fhir/Patient/$member-match", 403)],
    "bulk-member-match": [("POST", "/fhir/Group/$bulk-member-match", 403)],
    "davinci-data-export": [("GET", "/fhir/Group/g1/$davinci-data-export", 403),
                            ("POST", "/fhir/Group/g1/$davinci-data-export", 403)],
    "group-export": [("GET", "/fhir/Group/g1/$export", 403), ("POST", "/fhir/Group/g1/$export", 403)],
    "patient-export": [("GET", "/fhir/Patient/$export", 403), ("POST", "/fhir/Patient/$export", 403)],
    "bulk-status": [("GET", "/fhir/bulk-status/someone-elses", 404)],
    "bulk-cancel": [("DELETE", "/fhir/bulk-status/someone-elses", 404)],
    "bulk-file": [("GET", "/fhir/bulk-files/someone-elses/1", 404)],
    "group-search": [("GET", "/fhir/Group", 403)],
    "group-search-post": [("POST", "/fhir/Group/_search", 403)],
    "group-read": [("GET", "/fhir/Group/g1", 403)],
    # A page needs a search scope (this token's covers Practitioner) and a link issued to this client.
    "proxy-base": [("GET", "/fhir?_getpages=x", 404), ("POST", "/fhir", 403)],
    "proxy": [("GET", "/fhir/Observation", 403), ("GET", "/fhir/Observation/o1", 403),
              ("POST", "/fhir/Observation/_search", 403), ("GET", "/fhir/Patient/p1/$everything", 403),
              ("GET", "/fhir/Binary/b1", 403), ("PUT", "/fhir/Observation/o1", 405),
              ("GET", "/fhir/Observation/_history", 403), ("POST", "/fhir/$graphql", 403)],
}


@pytest.fixture
async def app_client(aiohttp_client, tmp_path):
    settings = settings_for(f"http://127.0.0.1:{free_port()}/fhir", tmp_path)
    outsider = register_client(tmp_path, scopes="system/Practitioner.read")
    client = await aiohttp_client(create_app(settings))
    return client, await bearer_headers(client, TOKEN_URL, outsider, scope="system/Practitioner.read",
                                        post_to="/auth/token")


def test_every_table_route_has_a_sample_request():
    assert set(SAMPLES) == {r.name for r in ROUTES if r.needs is not Needs.OPEN}


async def test_no_fhir_route_exists_outside_the_table(app_client):
    client, _ = app_client
    names = {r.name for r in ROUTES}
    for route in client.app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if path == "/fhir" or path.startswith("/fhir/"):
            assert (route.name or "").split(".")[0] in names, path


@pytest.mark.parametrize("name, method, path, status",
                         [(name, *sample) for name, samples in SAMPLES.items() for sample in samples])
async def test_every_route_refuses_an_out_of_scope_token(app_client, name, method, path, status):
    client, auth = app_client
    resp = await client.request(method, path, headers=auth, json={"resourceType": "Parameters"})
    body = await resp.json(content_type=None)
    assert resp.status == status, (name, body)
    assert body["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("name, method, path", [(name, m, p) for name, samples in SAMPLES.items()
                                                for m, p, _ in samples])
async def test_every_route_but_the_open_ones_needs_a_token(app_client, name, method, path):
    client, _ = app_client
    resp = await client.request(method, path)
    assert resp.status == 401, name


async def test_the_audit_record_names_the_route_and_the_resolved_interaction(app_client, tmp_path):
    client, auth = app_client
    await client.get("/fhir/Observation/o1", headers=auth)
    await asyncio.sleep(0.3)  # audit records are written in batches
    store = SqliteStore(tmp_path)
    try:
        row = store.one("SELECT reason, detail FROM audit WHERE request = 'GET /fhir/Observation/o1'")
    finally:
        store.close()
    assert row["reason"].startswith("403 ")
    detail = json.loads(row["detail"])
    assert (detail["route"], detail["interaction"], detail["status"]) == ("proxy", "read", 403)
