"""`pdex-sidecar conformance seed|run` without a server: the fixture file, and a run that cannot start."""
from __future__ import annotations

import orjson

from sidecar.cli import main
from sidecar.conformance.fixtures import MATCH, MULTIPLE, NOT_FOUND, Fixtures

PAYER = "http://hl7.org/fhir/sid/us-npi|1234567893"


def test_seed_to_a_file_describes_every_kind_of_member_and_the_transaction_that_stores_them(tmp_path):
    path = tmp_path / "fixtures.json"
    assert main(["conformance", "seed", "--fixtures-out", str(path), "--payer-identifier", PAYER]) == 0
    fixtures = Fixtures.read(path)
    assert {k: m.expect for k, m in fixtures.members.items()} == {
        "plain": MATCH, "twin_a": MATCH, "twin_b": MATCH, "nobody": NOT_FOUND, "ambiguous": MULTIPLE,
        "history_regular": MATCH, "history_sensitive": MATCH, "bulk_match": MATCH, "bulk_constrained": MATCH,
        "bulk_nobody": NOT_FOUND}
    stored = {e["request"]["url"] for e in fixtures.load["entry"]}
    assert {m.member_id for m in fixtures.members.values() if m.member_id} <= stored
    assert {d.reference for data in fixtures.data.values() for d in data.values()} <= stored
    assert all(e["request"]["method"] == "PUT" for e in fixtures.load["entry"])


def test_two_seeds_never_share_an_identifier(tmp_path):
    ids = []
    for name in ("a.json", "b.json"):
        main(["conformance", "seed", "--fixtures-out", str(tmp_path / name), "--payer-identifier", PAYER])
        ids.append({e["request"]["url"] for e in orjson.loads((tmp_path / name).read_bytes())["load"]["entry"]})
    assert not ids[0] & ids[1]


def test_seed_without_a_destination_is_refused(capsys):
    assert main(["conformance", "seed", "--payer-identifier", PAYER]) == 2
    assert "--upstream" in capsys.readouterr().err


def test_run_with_an_unreadable_fixture_file_stops_with_status_2(tmp_path, capsys):
    key = tmp_path / "key.jwks"
    key.write_text("{}")
    assert main(["conformance", "run", "--fhir-base", "http://localhost:1/fhir", "--client-id", "c", "--key",
                 str(key), "--organization", "Organization/o", "--fixtures", str(tmp_path / "none.json")]) == 2
    assert "none.json" in capsys.readouterr().err


def test_key_writes_the_private_jwks_for_the_owner_only_and_prints_the_public_one(tmp_path, capsys):
    from sidecar.client.smart import load_private_key

    path = tmp_path / "suite.jwks"
    assert main(["conformance", "key", "--out", str(path)]) == 0
    public = orjson.loads(capsys.readouterr().out)
    assert path.stat().st_mode & 0o077 == 0
    assert public["keys"][0]["kid"] == load_private_key(path).kid and "d" not in public["keys"][0]
