"""This payer's Transmitter Provenance (PDex §pdex-127): how it names the payer, what it targets, and the export's
Provenance file written batch by batch."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sidecar.config import ConfigError, Settings, load_settings
from sidecar.export.transmitted import TransmittedFile
from sidecar.provenance.transmitter import (PDEX_PROVENANCE, TRANSMITTER, payer_reference, provenance_id,
                                            targets_by_member, transmitter_provenance)

FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
PAYER = {"type": "Organization", "identifier": {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}}


def observation(resource_id: str, patient: str) -> dict:
    return {"resourceType": "Observation", "id": resource_id, "subject": {"reference": f"Patient/{patient}"}}


def test_the_configured_organization_names_the_payer():
    assert payer_reference(Settings(payer_organization="Organization/payer-a")) == {
        "reference": "Organization/payer-a"}
    assert payer_reference(Settings(payer_organization="urn:oid:2.16.840.1.113883.3.1|77")) == {
        "type": "Organization", "identifier": {"system": "urn:oid:2.16.840.1.113883.3.1", "value": "77"}}


def test_without_it_the_first_payer_identifier_names_the_payer():
    settings = Settings(payer_identifiers=" http://hl7.org/fhir/sid/us-npi|1234567893, Organization/x")
    assert payer_reference(settings) == PAYER


def test_with_neither_the_public_address_names_the_payer():
    assert payer_reference(Settings(public_url="https://payer.example/")) == {
        "type": "Organization", "identifier": {"system": "urn:ietf:rfc:3986", "value": "https://payer.example"}}


@pytest.mark.parametrize("value", ["Organization/", "payer-a", "|77", "urn:x|"])
def test_a_malformed_payer_organization_is_refused(value):
    with pytest.raises(ConfigError, match="payer_organization"):
        load_settings(environ={"SIDECAR_PAYER_ORGANIZATION": value})


def test_the_provenance_is_a_pdex_transmitter_provenance_of_its_targets():
    record = transmitter_provenance("p1", PAYER, ["Observation/o1", "Patient/a"], "2026-12-01T10:00:00+00:00")
    assert record["meta"]["profile"] == [PDEX_PROVENANCE]
    assert record["target"] == [{"reference": "Observation/o1"}, {"reference": "Patient/a"}]
    assert record["recorded"] == "2026-12-01T10:00:00+00:00"
    assert record["agent"] == [{"type": {"coding": [TRANSMITTER]}, "who": PAYER}]
    assert TRANSMITTER["system"] == "http://hl7.org/fhir/us/core/CodeSystem/us-core-provenance-participant-type"


def test_ids_follow_from_what_they_name_and_are_fhir_ids():
    assert provenance_id("job", "1") == provenance_id("job", "1") != provenance_id("job", "2")
    assert FHIR_ID.match(provenance_id("a_b/c", "1"))


def test_targets_are_grouped_per_member_with_reference_data_apart_and_provenance_never_a_target():
    released = [observation("o1", "a"), {"resourceType": "Patient", "id": "b"}, observation("o2", "b"),
                {"resourceType": "Organization", "id": "org"},
                {"resourceType": "Provenance", "id": "stored", "target": [{"reference": "Observation/o1"}]}]
    assert targets_by_member(released) == {"a": ["Observation/o1"], "b": ["Patient/b", "Observation/o2"],
                                           None: ["Organization/org"]}


def test_the_export_file_has_one_provenance_per_member_of_each_batch(tmp_path: Path):
    transmitted = TransmittedFile(tmp_path, "job-1", PAYER, "2026-12-01T10:00:00+00:00")
    transmitted.add([observation("o1", "a"), observation("o2", "b"), observation("o3", "a")])
    transmitted.add([])
    transmitted.add([{"resourceType": "Organization", "id": "org"}])
    listed = transmitted.listed()
    records = [json.loads(line) for line in (tmp_path / listed.name).read_text().splitlines()]
    assert [[t["reference"] for t in r["target"]] for r in records] == [
        ["Observation/o1", "Observation/o3"], ["Observation/o2"], ["Organization/org"]]
    assert (listed.type, listed.count, listed.section) == ("Provenance", 3, "output")
    assert len({r["id"] for r in records}) == 3


def test_a_resumed_job_writes_the_same_provenance_ids(tmp_path: Path):
    ids = []
    for attempt in ("first", "again"):
        (tmp_path / attempt).mkdir()
        transmitted = TransmittedFile(tmp_path / attempt, "job-1", PAYER, "2026-12-01T10:00:00+00:00")
        transmitted.add([observation("o1", "a")])
        ids.append(json.loads((tmp_path / attempt / transmitted.listed().name).read_text())["id"])
    assert ids[0] == ids[1]


def test_an_export_that_released_nothing_lists_no_provenance_file(tmp_path: Path):
    transmitted = TransmittedFile(tmp_path, "job-1", PAYER, "2026-12-01T10:00:00+00:00")
    transmitted.add([])
    assert transmitted.listed() is None and list(tmp_path.iterdir()) == []
