"""The audit trail's hash chain: intact when untouched, broken where a record was altered or removed."""
from __future__ import annotations

from sidecar.audit.chain import AuditLog, AuditRecord, append, record_hash, verify
from sidecar.store.sqlite import SqliteStore


def records(n: int) -> list[AuditRecord]:
    return [AuditRecord("request", "allowed", f"client-{i}", "Organization/x", f"GET /fhir/Patient/{i}")
            for i in range(n)]


def test_untouched_chain_verifies(tmp_path):
    store = SqliteStore(tmp_path)
    append(store, records(3))
    append(store, records(2))
    assert verify(store).ok and verify(store).records == 5


def test_altered_record_is_detected_at_that_record(tmp_path):
    store = SqliteStore(tmp_path)
    append(store, records(5))
    store.execute("UPDATE audit SET decision = 'refused' WHERE seq = 3")
    result = verify(store)
    assert not result.ok and result.problem == "record 3 was altered" and result.records == 2


def test_removed_record_is_detected(tmp_path):
    store = SqliteStore(tmp_path)
    append(store, records(5))
    store.execute("DELETE FROM audit WHERE seq = 2")
    result = verify(store)
    assert not result.ok and "record 2 is missing" == result.problem


def test_rehashing_an_altered_record_still_breaks_the_next_link(tmp_path):
    store = SqliteStore(tmp_path)
    append(store, records(3))
    row = store.one("SELECT seq, prev_hash, at, event, client_id, organization, request, decision, reason, detail "
                    "FROM audit WHERE seq = 2")
    row["decision"] = "refused"
    store.execute("UPDATE audit SET decision = 'refused', hash = ? WHERE seq = 2", [record_hash(row["prev_hash"], row)])
    result = verify(store)
    assert not result.ok and result.problem == "record 3 does not follow the record before it"


async def test_server_writer_appends_queued_records_in_order(tmp_path):
    store = SqliteStore(tmp_path)
    log = AuditLog(store, flush_interval=0.01)
    await log.start()
    for record in records(20):
        log.record(record)
    await log.close()
    rows = store.query("SELECT client_id FROM audit ORDER BY seq")
    assert [r["client_id"] for r in rows] == [f"client-{i}" for i in range(20)]
    assert verify(store).ok
