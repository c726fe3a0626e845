"""`pdex-sidecar partners add` registers a partner only with a key file that holds a private key (the store keeps
just the file's path)."""
from __future__ import annotations

import orjson
import pytest

from sidecar.cli import main
from sidecar.client.smart import ClientKey
from sidecar.store.sqlite import SqliteStore
from sidecar.store.partners import all_partners


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SIDECAR_DATA_DIR", str(tmp_path))
    return tmp_path


def add(key_file) -> int:
    return main(["partners", "add", "--name", "payer-a", "--fhir-base", "https://a.example/fhir",
                 "--client-id", "us", "--private-jwks", str(key_file)])


def test_a_key_file_without_a_private_key_is_refused(data_dir, capsys):
    key_file = data_dir / "public.jwks"
    key_file.write_bytes(orjson.dumps(ClientKey.generate("ES384").public_jwks()))
    assert add(key_file) == 2
    assert "holds no private JWK" in capsys.readouterr().err
    assert all_partners(SqliteStore(data_dir)) == []


def test_a_private_key_file_registers_the_partner(data_dir):
    key_file = data_dir / "private.jwks"
    key_file.write_bytes(orjson.dumps({"keys": [ClientKey.generate("ES384").private_jwk()]}))
    assert add(key_file) == 0
    assert [p.private_jwks_file for p in all_partners(SqliteStore(data_dir))] == [str(key_file.resolve())]
