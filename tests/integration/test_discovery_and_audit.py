"""SMART and Da Vinci discovery, the CapabilityStatement's security section, and the hash-chained audit trail."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys

import pytest

from sidecar.client.smart import ClientKey
from sidecar.store.sqlite import SqliteStore
from sidecar.store.partners import all_partners
from tests.conftest import THIS_PAYER
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
    assert config["grant_types_supported"] == ["client_credentials"], "no refresh_token grant: none is issued"
    assert {"client-confidential-asymmetric", "permission-v1", "permission-v2"} <= set(config["capabilities"])
    assert "permission-offline" not in config["capabilities"]
    assert {"system/*.rs", "system/*.read", "system/Patient.$member-match", "system/Group.$bulk-member-match",
            "http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/BulkMemberMatch"} <= \
        set(config["scopes_supported"])


async def test_davinci_configuration_is_served_without_a_token_at_the_root_and_under_fhir(anonymous, sidecar):
    documents = []
    for url in (f"{sidecar.public_url}/.well-known/davinci-configuration",
                f"{sidecar.fhir_base}/.well-known/davinci-configuration"):
        async with anonymous.get(url, headers={"Accept": "application/json"}) as resp:
            assert resp.status == 200 and resp.content_type == "application/json", url
            assert "max-age" in resp.headers["Cache-Control"]
            documents.append(await resp.json())
    assert documents[0] == documents[1]
    system, value = THIS_PAYER.split("|")
    assert documents[0]["identifier"] == {"system": system, "value": value}
    assert documents[0]["endpoints"] == {"davinci_pdex_payer_endpoint#2.2": sidecar.fhir_base,
                                         "davinci_pdex_payer_endpoint#2.1": sidecar.fhir_base}


@pytest.mark.parametrize("given", ["public_url", "fhir_base"])
def test_partners_add_discover_stores_the_partners_fhir_base(sidecar, tmp_path, given):
    key_file = tmp_path / "our-key.jwks"
    key_file.write_text(json.dumps({"keys": [ClientKey.generate("ES384").private_jwk()]}))
    added = subprocess.run([sys.executable, "-m", "sidecar", "partners", "add", "--name", "payer-a",
                            "--discover", getattr(sidecar, given), "--client-id", "us",
                            "--private-jwks", str(key_file)],
                           env=dict(os.environ, SIDECAR_DATA_DIR=str(tmp_path)), capture_output=True, text=True)
    assert added.returncode == 0, added.stderr
    assert [p.fhir_base for p in all_partners(SqliteStore(tmp_path))] == [sidecar.fhir_base]


async def test_capability_statement_names_smart_and_the_token_url_without_a_partial_oauth_uris(anonymous, sidecar):
    async with anonymous.get(f"{sidecar.fhir_base}/metadata", headers={"Accept": "application/fhir+json"}) as resp:
        assert resp.status == 200
        assert resp.headers["Access-Control-Allow-Origin"] == "*", "discovery is open to any origin, as SMART asks"
        statement = await resp.json(content_type=None)
    security = statement["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    assert "extension" not in security, "oauth-uris needs an authorize URL this server does not have"
    assert f"{sidecar.public_url}/auth/token" in security["description"]
    assert "No refresh tokens" in security["description"]


async def asyncio_sleep_for_audit() -> None:
    """The server appends audit records in batches every 50 ms."""
    await asyncio.sleep(0.3)


def audit_rows(sidecar, where: str, *args) -> list[dict]:
    store = SqliteStore(sidecar.data_dir)
    try:
        return store.query(f"SELECT * FROM audit WHERE {where} ORDER BY seq", list(args))
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
    source = SqliteStore(sidecar.data_dir)
    source.execute("PRAGMA wal_checkpoint(FULL)")
    source.close()
    shutil.copy(sidecar.data_dir / "sidecar.db", copy / "sidecar.db")
    altered = SqliteStore(copy)
    altered.execute("UPDATE audit SET decision = 'allowed' WHERE decision = 'refused' AND event = 'request'")
    altered.close()
    broken = subprocess.run([sys.executable, "-m", "sidecar", "audit", "verify"],
                            env=dict(env, SIDECAR_DATA_DIR=str(copy)), capture_output=True, text=True)
    assert broken.returncode == 1 and "altered" in broken.stderr




async def test_demo_client_and_token_command_give_a_working_token(anonymous, sidecar):
    env = dict(os.environ, SIDECAR_DATA_DIR=str(sidecar.data_dir), SIDECAR_PUBLIC_URL=sidecar.public_url)
    key_file = subprocess.run([sys.executable, "-m", "sidecar", "demo", "client"], env=env, capture_output=True,
                              text=True, check=True).stdout.strip()
    await asyncio.sleep(0.3)
    token = subprocess.run([sys.executable, "-m", "sidecar", "token", "--client-id", "demo-operator",
                            "--key", key_file], env=env, capture_output=True, text=True)
    assert token.returncode == 0, token.stderr
    async with anonymous.get(f"{sidecar.fhir_base}/Patient?_count=1",
                             headers={"Authorization": f"Bearer {token.stdout.strip()}"}) as resp:
        assert resp.status == 200


def test_clients_commands_register_list_and_refuse_bad_input(sidecar, tmp_path):
    env = dict(os.environ, SIDECAR_DATA_DIR=str(tmp_path))
    jwks = tmp_path / "partner.jwks"
    jwks.write_text(json.dumps(ClientKey.generate("RS384").public_jwks()))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "sidecar", "clients", *args], env=env, capture_output=True,
                              text=True)

    added = run("add", "--client-id", "payer-b", "--jwks", str(jwks), "--organization", "Organization/payer-b",
                "--scopes", "system/*.read system/Patient.$member-match")
    assert added.returncode == 0, added.stderr
    assert run("add", "--client-id", "payer-b", "--jwks", str(jwks), "--organization", "Organization/b",
               "--scopes", "system/*.read").returncode == 2, "a client id is registered once"
    assert run("add", "--client-id", "payer-c", "--jwks", str(jwks), "--organization", "Organization/c",
               "--scopes", "system/Patient.rs?x=1").returncode == 2, "constrained scopes are refused"
    assert run("disable", "payer-b").returncode == 0
    listed = run("list").stdout
    assert "payer-b\tOrganization/payer-b\tDISABLED" in listed and "payer-c" not in listed
