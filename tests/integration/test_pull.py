"""Two payers on one machine, each with its own HAPI and its own sidecar: payer B pulls a member's history from
payer A with `pdex-sidecar pull`, end to end.

Payer A is the test run's HAPI and sidecar. Payer B gets a second HAPI process (HAPI_PEER_BASE_URL, else one more
container or local server) and its own sidecar data. At A the member has a recent Observation (leaves), a
42 CFR Part 2 Condition and a seven-year-old Observation (both withheld under #regular consent); another member of
A has data too (never leaves). At B the member has our coverage, the prior coverage at A and a Consent naming A as
the source and B as the recipient.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from sidecar.devstack import SidecarProcess, free_port
from sidecar.disclosure.claims import BASIS_PROFILES
from sidecar.provenance.transmitter import PDEX_PROVENANCE
from sidecar.store.sqlite import SqliteStore
from sidecar.store.partners import DEFAULT_SCOPES
from tests.integration.test_bulk import SUD, call
from tests.integration.test_profiles import PDEX_PROVENANCE as PDEX_2_2_PROVENANCE, assert_none, errors
from tests.integration.test_member_match import NPI, THIS_PAYER, consent
from tests.names import letters
from tests.relay import FailingRelay
from tests.smart import Registered, register_client

pytestmark = pytest.mark.hapi

TAG = "urn:pdex-sidecar:payer-to-payer"


def create(base: str, resource: dict) -> dict:
    status, _, body = call("POST", f"{base}/{resource['resourceType']}", body=resource)
    assert status == 201, body[:400]
    return json.loads(body)


def search(base: str, query: str) -> list[dict]:
    status, _, body = call("GET", f"{base}/{query}")
    assert status == 200, body[:400]
    return [e["resource"] for e in json.loads(body).get("entry", [])]


class PayerB:
    def __init__(self, hapi_base: str, data_dir: Path, partner: str) -> None:
        self.hapi = hapi_base
        self.partner = partner  # unique per run: what B ingested from it is tagged with it
        self.data_dir = data_dir
        self.sidecar = SidecarProcess(hapi_base, data_dir).start()

    def cli(self, *args: str, **settings: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "SIDECAR_UPSTREAM_URL": self.hapi, "SIDECAR_DATA_DIR": str(self.data_dir),
               "SIDECAR_PULL_BACKOFF_SECONDS": "0.2", **settings}
        return subprocess.run([sys.executable, "-m", "sidecar", *args], env=env, capture_output=True, text=True,
                              timeout=600)

    def add_partner(self, name: str, fhir_base: str, client: Registered) -> None:
        key_file = self.data_dir / f"{name}-key.jwks"
        key_file.write_text(json.dumps({"keys": [client.key.private_jwk()]}))
        added = self.cli("partners", "add", "--name", name, "--fhir-base", fhir_base, "--client-id", client.client_id,
                         "--private-jwks", str(key_file), "--identifier", THIS_PAYER)
        assert added.returncode == 0, added.stderr

    def ingested(self, query: str) -> list[dict]:
        return search(self.hapi, f"{query}{'&' if '?' in query else '?'}_tag={TAG}|{self.partner}")

    def everything_ingested(self) -> list[dict]:
        """What pulls from this partner wrote, read back from our HAPI: each resource the pull records as ingested
        (the partner's data and Provenances), and our own Provenances of them."""
        store = SqliteStore(self.data_dir)
        try:
            written = [row["local"] for row in store.query("SELECT local FROM ingested WHERE partner = ?",
                                                           [self.partner])]
        finally:
            store.close()
        read = []
        for reference in sorted(written):
            status, _, body = call("GET", f"{self.hapi}/{reference}")
            assert status == 200, body[:400]
            read.append(json.loads(body))
        return read + ours_and_theirs(self)[0]


def last_progress(stderr: str) -> dict[str, int]:
    """The counters of the pull's closing progress line."""
    line = [line for line in stderr.splitlines() if line.startswith("[done]")][-1]
    return {name: int(value) for name, value in re.findall(r"(ingested|unchanged|invalid) (\d+)", line)}


@pytest.fixture(scope="module")
def payers(hapi, sidecar, peer_hapi, tmp_path_factory):
    run = uuid.uuid4().hex[:8]
    today = datetime.now(timezone.utc).date()
    demographics = {"name": [{"family": f"Pull{letters(run)}", "given": ["Morgan"]}], "gender": "female",
                    "birthDate": "1971-04-12"}
    card = f"A-{run}"
    # Payer A: the member, her data, and someone else's.
    at_a = create(hapi.base_url, {"resourceType": "Patient", **demographics,
                                  "identifier": [{"system": "urn:payer-a:member", "value": run}]})
    subject = {"reference": f"Patient/{at_a['id']}"}
    create(hapi.base_url, {"resourceType": "Coverage", "status": "active", "subscriberId": card,
                           "beneficiary": subject, "payor": [{"display": "Payer A"}]})
    recent = create(hapi.base_url, {"resourceType": "Observation", "status": "final", "code": {"text": f"bp {run}"},
                                    "subject": subject, "effectiveDateTime": today.isoformat()})
    create(hapi.base_url, {"resourceType": "Condition", "code": SUD, "subject": subject,
                           "recordedDate": today.isoformat()})
    create(hapi.base_url, {"resourceType": "Observation", "status": "final", "code": {"text": f"old {run}"},
                           "subject": subject, "effectiveDateTime": (today - timedelta(days=7 * 366)).isoformat()})
    stranger = create(hapi.base_url, {"resourceType": "Patient", "name": [{"family": f"Other{letters(run)}"}]})
    create(hapi.base_url, {"resourceType": "Observation", "status": "final", "code": {"text": f"stranger {run}"},
                           "subject": {"reference": f"Patient/{stranger['id']}"},
                           "effectiveDateTime": today.isoformat()})
    # A registers B as a client, B's organization named by its NPI (as B's own Consents name it).
    npi_b = str(uuid.uuid4().int)[:10]
    client = register_client(sidecar.data_dir, scopes=DEFAULT_SCOPES, organization=f"{NPI}|{npi_b}")
    # Payer B: its own HAPI and sidecar, the member, her coverages and consent.
    payer_b = PayerB(peer_hapi.base_url, tmp_path_factory.mktemp("payer-b"), f"payer-a-{run}")
    at_b = create(peer_hapi.base_url, {"resourceType": "Patient", **demographics,
                                        "identifier": [{"system": "urn:payer-b:member", "value": run}]})
    mine = {"reference": f"Patient/{at_b['id']}"}
    npi_system, npi = THIS_PAYER.split("|")
    create(peer_hapi.base_url, {"resourceType": "Coverage", "status": "active", "subscriberId": f"B-{run}",
                                "beneficiary": mine, "payor": [{"display": "Payer B"}]})
    create(peer_hapi.base_url, {"resourceType": "Coverage", "status": "active", "subscriberId": card,
                                "beneficiary": mine, "payor": [{"identifier": {"system": npi_system, "value": npi},
                                                                "display": "Payer A"}]})
    given = consent(client.organization)
    given["provision"]["actor"][1]["reference"] = {"identifier": {"system": NPI, "value": npi_b}}
    create(peer_hapi.base_url, {**given, "patient": mine, "performer": [mine]})
    payer_b.add_partner(payer_b.partner, sidecar.fhir_base, client)
    time.sleep(1.0)  # A's sidecar notices the new client
    first = payer_b.cli("pull", "--partner", payer_b.partner)
    try:
        yield {"run": run, "a": at_a, "b": at_b, "recent": recent, "payer_b": payer_b, "first": first,
               "subject": subject, "hapi_a": hapi.base_url, "a_base": sidecar.fhir_base, "client": client, "npi_b": npi_b}
    finally:
        payer_b.sidecar.stop()


def test_the_members_history_lands_at_payer_b_tagged_with_its_source(payers):
    assert payers["first"].returncode == 0, payers["first"].stderr[-2000:]
    observations = payers["payer_b"].ingested("Observation")
    assert [o["code"]["text"] for o in observations] == [f"bp {payers['run']}"]
    observation = observations[0]
    assert observation["subject"]["reference"] == f"Patient/{payers['b']['id']}"
    # HAPI may append its request id to meta.source after a '#'.
    assert observation["meta"]["source"].split("#")[0] == payers["a_base"]
    assert observation["id"] != payers["recent"]["id"]


def test_only_what_payer_as_filter_allows_arrives(payers):
    payer_b = payers["payer_b"]
    assert payer_b.ingested("Condition") == []
    texts = {o["code"]["text"] for o in payer_b.ingested("Observation")}
    assert f"old {payers['run']}" not in texts and f"stranger {payers['run']}" not in texts
    assert payer_b.ingested("Patient") == []


def ours_and_theirs(payer_b: PayerB) -> tuple[list[dict], list[dict]]:
    """B's own Provenances of what it ingested (agent: the partner by name) and those received from payer A."""
    provenances = payer_b.ingested("Provenance")
    ours = [p for p in provenances if all(a["who"]["identifier"]["value"] == payer_b.partner for a in p["agent"])]
    return ours, [p for p in provenances if p not in ours]


def test_a_provenance_names_payer_a_and_covers_what_was_ingested(payers):
    ours, _ = ours_and_theirs(payers["payer_b"])
    assert ours
    targets = {t["reference"] for p in ours for t in p["target"]}
    observation = payers["payer_b"].ingested("Observation")[0]
    assert f"Observation/{observation['id']}" in targets


def test_payer_as_transmitter_provenance_is_kept_next_to_ours_pointing_at_what_b_holds(payers):
    payer_b = payers["payer_b"]
    ours, theirs = ours_and_theirs(payer_b)
    assert theirs
    npi_system, npi = THIS_PAYER.split("|")
    for provenance in theirs:
        assert provenance["agent"] == [{"type": {"coding": [{
            "system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-provenance-participant-type",
            "code": "transmitter", "display": "Transmitter"}]},
            "who": {"type": "Organization", "identifier": {"system": npi_system, "value": npi}}}]
        assert provenance["meta"]["source"].split("#")[0] == payers["a_base"]
    targets = {t["reference"] for p in theirs for t in p["target"]}
    held = {f"{r['resourceType']}/{r['id']}" for t in ("Observation", "Coverage") for r in payer_b.ingested(t)}
    assert f"Observation/{payer_b.ingested('Observation')[0]['id']}" in targets
    assert targets <= held, "A's Provenance points at B's copies, never at A's ids or at B's Patient"
    assert {f"Provenance/{p['id']}" for p in theirs} <= {t["reference"] for p in ours for t in p["target"]}


def test_pull_status_shows_the_member_ingested(payers):
    status = payers["payer_b"].cli("pull", "status", "--partner", payers["payer_b"].partner)
    assert status.returncode == 0
    row = next(line for line in status.stdout.splitlines() if f"Patient/{payers['b']['id']}" in line)
    assert "\tingested\t" in row


def test_a_repeated_pull_ingests_nothing(payers):
    payer_b = payers["payer_b"]
    before = {t: len(payer_b.ingested(t)) for t in ("Observation", "Provenance", "Coverage")}
    again = payer_b.cli("pull", "--partner", payer_b.partner)
    assert again.returncode == 0, again.stderr[-2000:]
    assert last_progress(again.stderr)["ingested"] == 0
    assert {t: len(payer_b.ingested(t)) for t in before} == before
    observation = payer_b.ingested("Observation")[0]
    assert observation["meta"]["versionId"] == "1"


def test_since_last_ingests_only_the_new_claim(payers):
    payer_b = payers["payer_b"]
    today = datetime.now(timezone.utc).date().isoformat()
    create(payers["hapi_a"], {
        "resourceType": "ExplanationOfBenefit", "status": "active", "use": "claim", "outcome": "complete",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
        "patient": payers["subject"], "created": today, "billablePeriod": {"start": today, "end": today},
        "insurer": {"display": "Payer A"}, "provider": {"display": "Dr Lee"},
        "insurance": [{"focal": True, "coverage": {"display": "Payer A plan"}}],
        "item": [{"sequence": 1, "productOrService": {"text": f"visit {payers['run']}"}, "servicedDate": today}]})
    provenances = len(payer_b.ingested("Provenance"))
    pulled = payer_b.cli("pull", "--partner", payer_b.partner, "--since-last")
    assert pulled.returncode == 0, pulled.stderr[-2000:]
    progress = last_progress(pulled.stderr)
    assert progress["ingested"] == 2 and progress["unchanged"] == 0, "the claim and A's Provenance of it"
    claims = payer_b.ingested("ExplanationOfBenefit")
    assert [c["item"][0]["productOrService"]["text"] for c in claims] == [f"visit {payers['run']}"]
    assert claims[0]["patient"]["reference"] == f"Patient/{payers['b']['id']}"
    assert len(payer_b.ingested("Provenance")) == provenances + 2, "A's Provenance of the claim, and ours"


def test_a_partner_that_is_down_is_reported_and_changes_nothing(payers):
    payer_b = payers["payer_b"]
    payer_b.add_partner(f"down-{payers['run']}", f"http://127.0.0.1:{free_port()}/fhir", payers["client"])
    pulled = payer_b.cli("pull", "--partner", f"down-{payers['run']}", SIDECAR_PULL_RETRIES="1")
    assert pulled.returncode == 1
    assert "failed 2 times" in pulled.stderr and "Traceback" not in pulled.stderr
    status = payer_b.cli("pull", "status", "--partner", f"down-{payers['run']}")
    assert "no exchanges yet" in status.stdout


def test_a_failed_ingest_leaves_nothing_of_the_member_and_is_retried(payers, peer_hapi, tmp_path):
    with FailingRelay(peer_hapi.base_url) as relay:
        relay.fail_when = lambda path: path == "/fhir"  # our HAPI refuses the transactions, nothing else
        payer_b = PayerB(relay.base_url, tmp_path / "payer-b-again", f"again-{payers['run']}")
        try:
            payer_b.add_partner(payer_b.partner, payers["a_base"], payers["client"])
            failed = payer_b.cli("pull", "--partner", payer_b.partner)
            assert failed.returncode == 1
            status = payer_b.cli("pull", "status", "--partner", payer_b.partner).stdout
            assert f"Patient/{payers['b']['id']}\t{'ingest-failed'}" in status
            assert payer_b.ingested("Observation") == [] and payer_b.ingested("Provenance") == []
            relay.fail_when = None
            retried = payer_b.cli("pull", "--partner", payer_b.partner)
            assert retried.returncode == 0, retried.stderr[-2000:]
            assert [o["code"]["text"] for o in payer_b.ingested("Observation")] == [f"bp {payers['run']}"]
        finally:
            payer_b.sidecar.stop()


def test_single_match_of_someone_payer_a_does_not_know_is_queued_for_retry(payers, peer_hapi):
    payer_b, run = payers["payer_b"], payers["run"]
    unknown = create(peer_hapi.base_url, {"resourceType": "Patient", "name": [{"family": f"Nobody{run}",
                                                                                "given": ["Sam"]}],
                                          "gender": "male", "birthDate": "1990-02-03"})
    mine = {"reference": f"Patient/{unknown['id']}"}
    npi_system, npi = THIS_PAYER.split("|")
    create(peer_hapi.base_url, {"resourceType": "Coverage", "status": "active", "subscriberId": f"X-{run}",
                                "beneficiary": mine, "payor": [{"identifier": {"system": npi_system, "value": npi}}]})
    given = consent(payers["client"].organization)
    given["provision"]["actor"][1]["reference"] = {"identifier": {"system": NPI, "value": payers["npi_b"]}}
    create(peer_hapi.base_url, {**given, "patient": mine, "performer": [mine]})
    pulled = payer_b.cli("pull", "--partner", payer_b.partner, "--single", "--member", unknown["id"])
    assert pulled.returncode == 0, pulled.stderr[-2000:]
    status = payer_b.cli("pull", "status", "--partner", payer_b.partner).stdout
    row = next(line for line in status.splitlines() if f"Patient/{unknown['id']}\t" in line)
    assert row.split("\t")[2] == "no-match"


def test_everything_the_pull_wrote_into_payer_bs_hapi_conforms_to_its_profiles(payers, validator):
    payer_b = payers["payer_b"]
    written = payer_b.everything_ingested()
    ours, theirs = ours_and_theirs(payer_b)
    assert {r["resourceType"] for r in written} >= {"Observation", "Coverage", "Provenance"} and ours and theirs
    assert all(PDEX_PROVENANCE in p["meta"]["profile"] for p in theirs), "A's Provenance is checked as PDex's"
    found: dict[str, list[str]] = {}
    unknown: set[str] = set()
    for resource in written:
        result = validator.validate(resource)
        found[f"{resource['resourceType']}/{resource['id']}"] = [str(i) for i in result.errors]
        unknown.update(result.unknown_profiles)
    for provenance in ours:
        found[f"ours: Provenance/{provenance['id']}"] = errors(validator, provenance, PDEX_2_2_PROVENANCE)
    assert_none(found)
    # A claim arrives in its Basis view, claiming CARIN's Basis profile: CARIN BB 2.1.0+, in no package here.
    assert unknown <= set(BASIS_PROFILES.values())
