"""An independent SMART client, smart-fetch (PyPI), gets a token from the sidecar and reads through it."""
from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.hapi

# Installed with the test extras, beside the interpreter running the tests.
SMART_FETCH = Path(sys.executable).with_name("smart-fetch")


async def test_smart_fetch_reads_a_patient_with_a_token_from_the_sidecar(register, sidecar, seed, unique, tmp_path):
    patient = await seed.create({"resourceType": "Patient", "identifier": [{"system": f"urn:t:{unique}",
                                                                             "value": "1"}]})
    client = await register(scopes="system/*.read", unrestricted=True, alg="RS384")
    key_file = tmp_path / "client.jwks"
    key_file.write_text(json.dumps({"keys": [client.key.private_jwk()]}))
    process = await asyncio.create_subprocess_exec(
        str(SMART_FETCH), "single", f"Patient/{patient['id']}", "--compact", "--fhir-url", sidecar.fhir_base,
        "--smart-client-id", client.client_id, "--smart-key", str(key_file),
        cwd=tmp_path, env=dict(os.environ, COLUMNS="200"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, stderr.decode()
    fetched = json.loads(stdout.decode().strip().splitlines()[-1])
    assert fetched["id"] == patient["id"] and fetched["identifier"] == patient["identifier"]
