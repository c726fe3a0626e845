"""What every store function promises, on SQLite and on PostgreSQL alike; `other` is a second replica's connection."""
from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from sidecar.audit.chain import AuditRecord, append, verify
from sidecar.auth.tokens import create_first_signing_key, create_signing_key, load_signing_keys
from sidecar.matching import throttle
from sidecar.store import exchanges as ex
from sidecar.store import jobs
from sidecar.store.clients import ClientError, add_client, all_clients, get_client, set_enabled
from sidecar.store.grants import Grant, add_grant, granted_members, revoke_grants
from sidecar.store.optins import optins_of, record_optin, withdraw
from sidecar.store.public_urls import announce, public_urls
from sidecar.store.replay import forget_expired, remember_jti
from sidecar.store.schema import MIGRATIONS
from sidecar.store.secrets import shared_secret
from sidecar.store.sqlite import SqliteStore

JWKS = {"keys": [{"kty": "EC", "kid": "k1", "crv": "P-384", "x": "x", "y": "y"}]}
REGULAR = "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-hrex-consent.html#regular"
SENSITIVE = "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-hrex-consent.html#sensitive"
A, B = jobs.Lease("replica-a", 30), jobs.Lease("replica-b", 30)


def test_opening_an_opened_store_again_applies_no_migration_twice(store, other):
    assert store.scalar("SELECT MAX(version) FROM schema_version") == len(MIGRATIONS)
    assert other.scalar("SELECT COUNT(*) FROM schema_version") == len(MIGRATIONS)


def test_a_client_id_is_registered_once(store, other):
    add_client(store, "c1", "Organization/o", "system/*.read", jwks=JWKS)
    with pytest.raises(ClientError, match="already registered"):
        add_client(other, "c1", "Organization/p", "system/*.read", jwks=JWKS)
    assert get_client(other, "c1").organization == "Organization/o"


def test_disabling_a_client_ends_its_tokens_for_every_replica(store, other):
    add_client(store, "c1", "Organization/o", "system/*.read", jwks=JWKS)
    before = time.time()
    set_enabled(store, "c1", False)
    seen = get_client(other, "c1")
    assert not seen.enabled and seen.tokens_valid_after >= before
    assert [c.client_id for c in all_clients(other)] == ["c1"]


def test_a_change_by_another_replica_is_noticed_once(store, other):
    store.changed()
    assert not store.changed()
    add_client(other, "c1", "Organization/o", "system/*.read", jwks=JWKS)
    assert store.changed()
    assert not store.changed()


def test_a_grant_or_a_revocation_is_noticed_as_a_change(store, other):
    store.changed()
    add_grant(other, Grant("Organization/o", "p1", REGULAR, "Consent/1", time.time() - 1, None))
    assert store.changed()
    revoke_grants(other, "p1")
    assert store.changed()


def test_a_jti_is_accepted_once_across_replicas(store, other):
    expires = time.time() + 300
    assert remember_jti(store, "c1", "jti-1", expires)
    assert not remember_jti(other, "c1", "jti-1", expires)
    assert remember_jti(other, "c2", "jti-1", expires)


def test_expired_jtis_are_forgotten(store):
    remember_jti(store, "c1", "old", time.time() - 100)
    remember_jti(store, "c1", "new", time.time() + 100)
    assert forget_expired(store, 10) == 1
    assert remember_jti(store, "c1", "old", time.time() + 100)


def test_the_latest_grant_decides_the_policy_and_a_revocation_says_what_ended(store):
    now = time.time()
    add_grant(store, Grant("Organization/o", "p1", SENSITIVE, "Consent/1", now - 20, None))
    add_grant(store, Grant("Organization/o", "p1", REGULAR, "Consent/2", now - 10, None))
    add_grant(store, Grant("Organization/o", "p2", REGULAR, "Consent/3", now - 10, now - 5))
    assert granted_members(store, "Organization/o") == {"p1": REGULAR}
    ended = revoke_grants(store, "p1")
    assert sorted(e["consent"] for e in ended) == ["Consent/1", "Consent/2"]
    assert granted_members(store, "Organization/o") == {}


def test_the_first_signing_key_is_made_once_however_many_replicas_start(store, other):
    create_first_signing_key(store)
    create_first_signing_key(other)
    assert len(load_signing_keys(store)) == 1
    assert [k.kid for k in load_signing_keys(other)] == [k.kid for k in load_signing_keys(store)]


def test_a_rotation_retires_the_signing_key_but_keeps_it_verifying(store, other):
    first = load_signing_keys(store)[0].kid
    create_signing_key(other)
    ring = load_signing_keys(store)
    assert [k.kid for k in ring][1] == first and ring[1].retired_at is not None and ring[0].retired_at is None


def test_a_shared_secret_is_the_first_one_made(store, other):
    assert shared_secret(store, "s", lambda: "one") == "one"
    assert shared_secret(other, "s", lambda: "two") == "one"


def test_match_attempts_are_counted_across_replicas(store, other):
    limits = throttle.ThrottleSettings(card_variants=2)
    throttle.record(store, "c1", "smith|1970", "card-1", "nomatch")
    throttle.record(other, "c1", "smith|1970", "card-2", "nomatch")
    assert "2 different card numbers" in throttle.refusal(store, limits, "c1", "smith|1970", "card-3")
    assert throttle.refusal(other, limits, "c1", "smith|1970", "card-1") is None


def test_mostly_failing_attempts_are_refused(store):
    limits = throttle.ThrottleSettings(failure_floor=3, failure_rate=0.6)
    for i, outcome in enumerate(["nomatch", "nomatch", "match"]):
        throttle.record(store, "c1", f"person-{i}", "card", outcome)
    assert "2 of this client's last 3" in throttle.refusal(store, limits, "c1", "person-9", "card")


def test_a_job_is_leased_to_the_replica_that_accepted_it(store, other):
    job = jobs.create_job(store, jobs.EXPORT, "c1", "Organization/o", "url", {"a": 1}, A)
    assert jobs.claim_jobs(other, B) == []
    assert jobs.get_job(other, job.id).params == {"a": 1}


def test_a_job_whose_lease_ran_out_is_claimed_by_another_replica(store, other):
    job = jobs.create_job(store, jobs.EXPORT, "c1", "Organization/o", "url", {}, A)
    claimed = jobs.claim_jobs(other, B, now=time.time() + 31)
    assert [j.id for j in claimed] == [job.id]
    assert jobs.renew_leases(store, A, [job.id]) == set()
    assert jobs.renew_leases(other, B, [job.id]) == {job.id}


def test_a_replica_that_lost_the_lease_cannot_end_the_job(store, other):
    job = jobs.create_job(store, jobs.EXPORT, "c1", "Organization/o", "url", {}, A)
    jobs.claim_jobs(other, B, now=time.time() + 31)
    files = [jobs.JobFile("f1", job.id, "output", "Patient", "1.ndjson", 3)]
    assert not jobs.complete_job(store, job.id, A.owner, files, "t", time.time() + 60)
    assert not jobs.set_state_if_live(store, job.id, A.owner, jobs.FAILED)
    assert jobs.complete_job(other, job.id, B.owner, files, "t", time.time() + 60)
    assert jobs.get_job(store, job.id).state == jobs.COMPLETE
    assert jobs.job_files(store, job.id) == files


def test_a_released_lease_is_claimed_at_once(store, other):
    job = jobs.create_job(store, jobs.BULK_MATCH, "c1", "Organization/o", "url", {}, A)
    jobs.release_leases(store, A.owner)
    assert [j.id for j in jobs.claim_jobs(other, B)] == [job.id]


def test_a_cancelled_job_is_claimed_by_nobody(store, other):
    job = jobs.create_job(store, jobs.EXPORT, "c1", "Organization/o", "url", {}, A)
    jobs.update_job(other, job.id, state=jobs.CANCELLED)
    assert jobs.renew_leases(store, A, [job.id]) == set()
    assert jobs.claim_jobs(other, B, now=time.time() + 31) == []


def test_job_files_keep_their_order(store):
    job = jobs.create_job(store, jobs.EXPORT, "c1", "Organization/o", "url", {}, A)
    files = [jobs.JobFile(f"f{i}", job.id, "output", "Patient", f"{i}.ndjson", i) for i in (3, 1, 2)]
    assert jobs.complete_job(store, job.id, A.owner, files, "t", time.time() + 60)
    assert [f.id for f in jobs.job_files(store, job.id)] == ["f3", "f1", "f2"]


def test_member_groups_are_recorded_once_and_listed_in_order(store, other):
    jobs.record_groups(store, "Organization/o", "j1", {"match": "g1", "nomatch": "g2"})
    jobs.record_groups(other, "Organization/o", "j1", {"match": "g1"})
    jobs.record_groups(other, "Organization/o", "j2", {"match": "g3"})
    assert jobs.groups_of(store, "Organization/o") == ["g1", "g2", "g3"]
    assert jobs.group_owner(other, "g3") == "Organization/o"


def test_bulk_match_results_keep_the_last_outcome_per_member(store):
    jobs.record_match_result(store, "j1", 0, "nomatch", None)
    jobs.record_match_result(store, "j1", 0, "match", "p1")
    jobs.record_match_result(store, "j1", 1, "consent", None)
    assert jobs.match_results(store, "j1") == {0: ("match", "p1"), 1: ("consent", None)}


def test_job_tallies_count_by_kind_and_state(store):
    jobs.create_job(store, jobs.EXPORT, "c1", "Organization/o", "url", {}, A)
    jobs.create_job(store, jobs.EXPORT, "c1", "Organization/o", "url", {}, A)
    assert [(t.kind, t.state, t.count) for t in jobs.job_tallies(store)] == [(jobs.EXPORT, jobs.ACCEPTED, 2)]


def test_an_exchange_counts_attempts_and_keeps_what_was_ingested(store):
    ex.record_outcome(store, "payer-a", "m1", ex.MATCHED, export_scope="Group/g1")
    ex.record_ingest(store, "payer-a", "m1", 5, None, [
        {"partner": "payer-a", "source": "Patient/x", "local": "Patient/1", "member": "m1", "digest": "d", "at": 1.0}])
    ex.record_outcome(store, "payer-a", "m1", ex.MATCHED, export_scope="Group/g2")
    (exchange,) = ex.exchanges(store, "payer-a")
    assert (exchange.attempts, exchange.ingested, exchange.export_scope) == (2, 5, "Group/g2")
    assert ex.ingested_digests(store, "payer-a") == {"Patient/x": "d"}
    assert [(t.state, t.members, t.ingested) for t in ex.exchange_tallies(store)] == [(ex.MATCHED, 1, 5)]


def test_run_off_resumes_from_the_last_transaction_time(store):
    assert ex.last_transaction_time(store, "payer-a", "Group/g1") is None
    ex.record_transaction_time(store, "payer-a", "Group/g1", "2026-01-01T00:00:00Z")
    ex.record_transaction_time(store, "payer-a", "Group/g1", "2026-02-01T00:00:00Z")
    assert ex.last_transaction_time(store, "payer-a", "Group/g1") == "2026-02-01T00:00:00Z"


def test_an_optin_is_withdrawn_once_and_only_by_its_member(store):
    optin = record_optin(store, "m1", "payer-a", None, "regular", "Consent/1", "Coverage/1", "2026-01-01")
    assert withdraw(store, "m2", optin.id) is None
    assert withdraw(store, "m1", optin.id).withdrawn_at is not None
    assert withdraw(store, "m1", optin.id) is None
    assert [o.id for o in optins_of(store, "m1")] == [optin.id]


def test_concurrent_writers_append_to_one_chain(store, other):
    def write(target, name: str) -> None:
        for i in range(10):
            append(target, [AuditRecord("request", "allowed", client_id=f"{name}-{i}") for _ in range(3)])

    threads = [threading.Thread(target=write, args=(s, n)) for s, n in ((store, "a"), (other, "b"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = verify(store)
    assert result.ok and result.records == 60
    assert store.scalar("SELECT MAX(seq) FROM audit") == 60


def test_a_sqlite_store_made_before_numbered_migrations_is_upgraded(tmp_path):
    legacy = sqlite3.connect(tmp_path / "sidecar.db")
    legacy.executescript("""
        CREATE TABLE jobs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, client_id TEXT NOT NULL,
            organization TEXT NOT NULL, state TEXT NOT NULL, request_url TEXT NOT NULL, params TEXT NOT NULL,
            created_at REAL NOT NULL, updated_at REAL NOT NULL, upstream_poll TEXT, progress TEXT,
            transaction_time TEXT, error_status INTEGER, error_text TEXT, expires_at REAL);
        INSERT INTO jobs VALUES ('old', 'export', 'c1', 'Organization/o', 'running', 'url', '{}', 1, 1,
            NULL, NULL, NULL, NULL, NULL, NULL);
        CREATE TABLE job_files (id TEXT PRIMARY KEY, job_id TEXT NOT NULL, section TEXT NOT NULL,
            type TEXT NOT NULL, name TEXT NOT NULL, count INTEGER NOT NULL);
        INSERT INTO job_files VALUES ('f2', 'done', 'output', 'Patient', '1.ndjson', 1);
        INSERT INTO job_files VALUES ('f1', 'done', 'output', 'Patient', '2.ndjson', 1);
    """)
    legacy.close()
    store = SqliteStore(tmp_path)
    try:
        assert [j.id for j in jobs.claim_jobs(store, A)] == ["old"]
        assert [f.id for f in jobs.job_files(store, "done")] == ["f2", "f1"]
    finally:
        store.close()


def test_every_replicas_public_url_is_known_to_all(store, other):
    announce(store, "https://a.example")
    announce(other, "https://b.example")
    announce(other, "https://a.example")
    assert public_urls(store) == {"https://a.example", "https://b.example"}
