"""How a partner's resources are prepared for our HAPI: ids, references, tags, digests and the member's batch."""
from __future__ import annotations

from sidecar.client import ingest

BASE = "https://payer-a.example/fhir"


def remapper(known: set[str] | None = None) -> ingest.Remapper:
    return ingest.Remapper("payer-a", BASE, {"a-17": "b-5"}, known or set())


def observation(**extra) -> dict:
    return {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "bp"},
            "subject": {"reference": "Patient/a-17"}, **extra}


def test_the_same_source_resource_always_gets_the_same_local_id():
    assert ingest.local_id("payer-a", "Observation/o1") == ingest.local_id("payer-a", "Observation/o1")
    assert ingest.local_id("payer-a", "Observation/o1") != ingest.local_id("payer-c", "Observation/o1")


def test_the_members_patient_reference_becomes_our_member():
    assert remapper().remap(observation())["subject"] == {"reference": "Patient/b-5"}


def test_a_reference_to_an_exported_resource_follows_its_new_id():
    local = remapper({"Encounter/e1"}).remap(observation(encounter={"reference": f"{BASE}/Encounter/e1"}))
    assert local["encounter"] == {"reference": f"Encounter/{ingest.local_id('payer-a', 'Encounter/e1')}"}


def test_a_reference_to_something_not_sent_becomes_a_logical_reference():
    local = remapper().remap(observation(performer=[{"reference": "Practitioner/p9", "display": "Dr Lee"}]))
    assert local["performer"] == [{"display": "Dr Lee", "identifier": {
        "system": ingest.SOURCE_SYSTEM, "value": f"{BASE}/Practitioner/p9"}}]


def test_contained_references_stay():
    local = remapper().remap(observation(performer=[{"reference": "#p"}]))
    assert local["performer"] == [{"reference": "#p"}]


def test_source_and_tag_are_set_and_security_labels_kept():
    label = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}
    local = remapper().remap(observation(meta={"versionId": "3", "lastUpdated": "2026-01-01T00:00:00Z",
                                               "security": [label], "source": "#abc"}))
    assert local["meta"]["source"] == BASE
    assert local["meta"]["security"] == [label]
    assert {"system": ingest.TAG_SYSTEM, "code": "payer-a"}.items() <= local["meta"]["tag"][0].items()
    assert "versionId" not in local["meta"] and "lastUpdated" not in local["meta"]


def test_the_digest_ignores_version_and_update_time():
    one = observation(meta={"versionId": "1", "lastUpdated": "2026-01-01T00:00:00Z"})
    two = observation(meta={"versionId": "2", "lastUpdated": "2026-02-01T00:00:00Z"})
    assert ingest.digest(one) == ingest.digest(two)
    assert ingest.digest(one) != ingest.digest(observation(status="amended"))


def test_a_resource_belongs_to_the_member_it_refers_to():
    assert ingest.member_of(observation(), {"a-17": "b-5"}, BASE) == "b-5"
    assert ingest.member_of({"resourceType": "Practitioner", "id": "p9"}, {"a-17": "b-5"}, BASE) is None


def test_an_invalid_resource_is_named_and_left_out():
    bad = observation(id="o2", valueQuantity={"value": "lots"})
    problems = {"Observation/o2": ingest.problem_of(bad)}
    assert problems["Observation/o2"]
    batch = ingest.member_batch("payer-a", BASE, "b-5", [observation(), bad], remapper(), {}, problems, None, 0.0)
    assert [e["request"]["url"].split("/")[0] for e in batch.entries] == ["Observation", "Provenance"]
    assert batch.skipped_invalid[0].startswith("Observation/o2")


def test_an_unchanged_resource_is_not_written_again_and_needs_no_provenance():
    seen = {"Observation/o1": ingest.digest(observation())}
    batch = ingest.member_batch("payer-a", BASE, "b-5", [observation()], remapper(), seen, {}, None, 0.0)
    assert batch.entries == [] and batch.unchanged == 1


def test_the_partners_patient_is_not_copied():
    patient = {"resourceType": "Patient", "id": "a-17", "name": [{"family": "X"}]}
    batch = ingest.member_batch("payer-a", BASE, "b-5", [patient], remapper(), {}, {}, None, 0.0)
    assert batch.entries == []


def test_the_provenance_names_the_partner_and_covers_each_written_resource():
    batch = ingest.member_batch("payer-a", BASE, "b-5", [observation()], remapper(), {}, {}, "2026-11-01T00:00:00Z",
                                0.0)
    record = batch.entries[-1]["resource"]
    assert record["target"] == [{"reference": batch.entries[0]["request"]["url"]}]
    assert {a["who"]["identifier"]["value"] for a in record["agent"]} == {"payer-a"}
    again = ingest.member_batch("payer-a", BASE, "b-5", [observation()], remapper(), {}, {}, None, 1.0)
    assert again.entries[-1]["resource"]["id"] == record["id"]


def their_provenance(*targets: str, provenance_id: str = "t1") -> dict:
    return {"resourceType": "Provenance", "id": provenance_id, "recorded": "2026-11-01T00:00:00Z",
            "target": [{"reference": t} for t in targets],
            "agent": [{"type": {"coding": [{"code": "transmitter"}]},
                       "who": {"identifier": {"system": "urn:npi", "value": "1"}}}]}


def test_our_provenance_uses_us_cores_transmitter_code():
    record = ingest.provenance("payer-a", BASE, "b-5", ["Observation/x"], ["d"], None)
    transmitter = next(a for a in record["agent"] if a["type"]["coding"][0]["code"] == "transmitter")
    assert transmitter["type"]["coding"][0]["system"] == ingest.US_CORE_PARTICIPANT_TYPE


def test_a_received_provenance_goes_with_the_member_whose_resources_it_targets():
    by_member = {"b-5": [observation()], None: [their_provenance("Observation/o1")]}
    grouped = ingest.with_their_members(by_member, {"a-17": "b-5"}, BASE, {})
    assert grouped == {"b-5": [observation(), their_provenance("Observation/o1")]}


def test_a_provenance_of_several_members_is_shared_out_one_share_per_member():
    other = observation(id="o9", subject={"reference": "Patient/a-18"})
    by_member = {"b-5": [observation()], "b-6": [other], None: [
        {"resourceType": "Organization", "id": "org"},
        their_provenance("Observation/o1", "Observation/o9", "Organization/org")]}
    grouped = ingest.with_their_members(by_member, {"a-17": "b-5", "a-18": "b-6"}, BASE, {})
    shares = {member: resources[-1] for member, resources in grouped.items() if member}
    assert {m: [t["reference"] for t in s["target"]] for m, s in shares.items()} == {
        "b-5": ["Observation/o1", "Organization/org"], "b-6": ["Observation/o9", "Organization/org"]}
    assert shares["b-5"]["id"] != shares["b-6"]["id"]
    assert grouped[None] == [{"resourceType": "Organization", "id": "org"}]


def test_a_received_provenance_is_kept_remapped_next_to_ours():
    batch = ingest.member_batch("payer-a", BASE, "b-5", [their_provenance("Observation/o1"), observation()],
                                remapper({"Observation/o1", "Provenance/t1"}), {}, {}, None, 0.0)
    urls = [e["request"]["url"] for e in batch.entries]
    local_observation = f"Observation/{ingest.local_id('payer-a', 'Observation/o1')}"
    assert urls[:2] == [local_observation, f"Provenance/{ingest.local_id('payer-a', 'Provenance/t1')}"]
    theirs, ours = batch.entries[1]["resource"], batch.entries[2]["resource"]
    assert theirs["target"] == [{"reference": local_observation}]
    assert theirs["meta"]["tag"][-1]["system"] == ingest.TAG_SYSTEM
    assert {t["reference"] for t in ours["target"]} == set(urls[:2])


def test_a_received_provenance_of_unchanged_resources_or_the_patient_writes_nothing():
    seen = {"Observation/o1": ingest.digest(observation())}
    resources = [observation(), {"resourceType": "Patient", "id": "a-17"},
                 their_provenance("Observation/o1"), their_provenance("Patient/a-17", provenance_id="t2")]
    batch = ingest.member_batch("payer-a", BASE, "b-5", resources, remapper(), seen, {}, None, 0.0)
    assert batch.entries == []


def test_a_received_provenance_of_nothing_sent_is_kept():
    batch = ingest.member_batch("payer-a", BASE, None, [their_provenance("Bundle/exchange-1")], remapper(), {}, {},
                                None, 0.0)
    assert [e["request"]["url"].split("/")[0] for e in batch.entries] == ["Provenance", "Provenance"]
