"""SMART discovery, the CapabilityStatement's security section, and the hash-chained audit trail."""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys

import pytest

from sidecar.store.db import Store
from tests.smart import bearer_headers

pytestmark = pytest.mark.hapi


async def test_smart_configuration_advertises_backend_services(anonymous, sidecar):
    async with anonymous.get(f"{sidecar.fhir_base}/.well-known/smart-configuration",
                             headers={"Accept": "application/json"}) as resp:
        assert resp.status == 200 and resp.content_type == "application/json"
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        config = await resp.json()
    assert config["token_endpoint"] == f"{sidecar.public_url}/auth/token"
    assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert config["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert config["grant_types_supported"] == ["client_credentials"]
    assert {"client-confidential-asymmetric", "permission-v1", "permission-v2"} <= set(config["capabilities"])
    assert {"system/*.rs", "system/*.read", "system/Patient.$member-match"} <= set(config["scopes_supported"])


async def test_capability_statement_names_smart_and_the_token_url(anonymous, sidecar):
    async with anonymous.get(f"{sidecar.fhir_base}/metadata", headers={"Accept": "application/fhir+json"}) as resp:
        assert resp.status == 200
        statement = await resp.json(content_type=None)
    security = statement["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    oauth = next(e for e in security["extension"]
                 if e["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris")
    assert oauth["extension"] == [{"url": "token", "valueUri": f"{sidecar.public_url}/auth/token"}]


async def asyncio_sleep_for_audit() -> None:
    """The server appends audit records in batches every 50 ms."""
    await asyncio.sleep(0.3)


def audit_rows(sidecar, where: str, *args) -> list[dict]:
    store = Store(sidecar.data_dir)
    try:
        cursor = store.db.execute(f"SELECT * FROM audit WHERE {where} ORDER BY seq", list(args))
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row)) for row in cursor]
    finally:
        store.close()


async def test_tokens_and_requests_are_audited_with_client_and_decision(anonymous, register, token_url, sidecar):
    client = await register(scopes="system/Patient.read", unrestricted=True)
    auth = await bearer_headers(anonymous, token_url, client, scope="system/Patient.read")
    async with anonymous.get(f"{sidecar.fhir_base}/Patient?_count=1", headers=auth) as resp:
        assert resp.status == 200
    async with anonymous.get(f"{sidecar.fhir_base}/Observation?_count=1", headers=auth) as resp:
        assert resp.status == 403
    await asyncio_sleep_for_audit()
    rows = audit_rows(sidecar, "client_id = ?", client.client_id)
    assert [(r["event"], r["decision"]) for r in rows] == [("token", "allowed"), ("request", "allowed"),
                                                          ("request", "refused")]
    assert all(r["organization"] == client.organization for r in rows)
    assert rows[2]["request"].startswith("GET /fhir/Observation") and "do not allow search of Observation" in \
        rows[2]["reason"]


async def test_audit_chain_verifies_and_a_tampered_copy_does_not(anonymous, sidecar, tmp_path):
    async with anonymous.get(f"{sidecar.fhir_base}/Patient") as resp:
        assert resp.status == 401
    await asyncio_sleep_for_audit()
    env = dict(os.environ, SIDECAR_DATA_DIR=str(sidecar.data_dir))
    intact = subprocess.run([sys.executable, "-m", "sidecar", "audit", "verify"], env=env, capture_output=True,
                            text=True)
    assert intact.returncode == 0 and "intact" in intact.stdout

    copy = tmp_path / "copy"
    copy.mkdir()
    source = Store(sidecar.data_dir)
    source.db.execute("PRAGMA wal_checkpoint(FULL)")
    source.close()
    shutil.copy(sidecar.data_dir / "sidecar.db", copy / "sidecar.db")
    altered = Store(copy)
    altered.db.execute("UPDATE audit SET decision = 'allowed' WHERE decision = 'refused' AND event = 'request'")
    altered.close()
    broken = subprocess.run([sys.executable, "-m", "sidecar", "audit", "verify"],
                            env=dict(env, SIDECAR_DATA_DIR=str(copy)), capture_output=True, text=True)
    assert broken.returncode == 1 and "altered" in broken.stderr


