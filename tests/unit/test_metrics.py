"""Metrics: bounded labels, one registry per app, and the gauges read from the store at scrape time."""
from __future__ import annotations

import time

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from sidecar.app import METRICS_KEY, request_context
from sidecar.config import ConfigError, Settings
from sidecar.metrics.listener import metrics_app
from sidecar.metrics.registry import Metrics
from sidecar.metrics.store_gauges import StoreGauges
from sidecar.store import exchanges as ex
from sidecar.store import jobs
from sidecar.store.sqlite import SqliteStore

LEASE = jobs.Lease("test", 30)


@pytest.fixture
def store(tmp_path):
    opened = SqliteStore(tmp_path)
    yield opened
    opened.close()


async def answered(request: web.Request) -> web.Response:
    return web.Response(status=int(request.query.get("status", "200")))


@pytest.fixture
async def observed(aiohttp_client):
    """An app with the request context, a table-style named route, an unnamed one, and its metrics."""
    app = web.Application(middlewares=[request_context])
    metrics = app[METRICS_KEY] = Metrics()
    app.router.add_route("*", "/fhir/{tail:.*}", answered, name="proxy.any")
    app.router.add_get("/member/sign-in", answered)
    return await aiohttp_client(app), metrics


def requests_counted(metrics: Metrics, route: str, status: str) -> float | None:
    return metrics.registry.get_sample_value("pdex_sidecar_requests_total", {"route": route, "status": status})


async def test_a_request_is_counted_under_its_route_name_not_its_path(observed):
    client, metrics = observed
    await client.get("/fhir/Patient/123")
    await client.get("/fhir/Observation?patient=456&status=404", params={"status": "404"})
    assert requests_counted(metrics, "proxy", "200") == 1
    assert requests_counted(metrics, "proxy", "404") == 1
    assert metrics.registry.get_sample_value("pdex_sidecar_request_duration_seconds_count", {"route": "proxy"}) == 2


async def test_an_unnamed_route_is_counted_under_its_pattern(observed):
    client, metrics = observed
    await client.get("/member/sign-in")
    assert requests_counted(metrics, "/member/sign-in", "200") == 1


async def test_a_path_no_route_has_is_counted_as_unmatched(observed):
    client, metrics = observed
    for path in ("/no/such/path", "/another/one"):
        await client.get(path)
    assert requests_counted(metrics, "unmatched", "404") == 2
    names = {s.labels.get("route") for f in metrics.registry.collect() for s in f.samples}
    assert "/no/such/path" not in names


def test_two_apps_in_one_process_keep_separate_registries():
    first, second = Metrics(), Metrics()
    first.tokens_issued.inc()
    assert first.registry.get_sample_value("pdex_sidecar_tokens_issued_total") == 1
    assert second.registry.get_sample_value("pdex_sidecar_tokens_issued_total") == 0


def gauges(collector: StoreGauges) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in collector.collect()
            for s in family.samples}


async def test_jobs_are_counted_by_kind_and_state_with_the_oldest_live_ones_age(store):
    old = jobs.create_job(store, jobs.EXPORT, "c", "Organization/o", "url", {}, LEASE)
    store.execute("UPDATE jobs SET created_at = ? WHERE id = ?", [time.time() - 120, old.id])
    jobs.create_job(store, jobs.EXPORT, "c", "Organization/o", "url", {}, LEASE)
    done = jobs.create_job(store, jobs.BULK_MATCH, "c", "Organization/o", "url", {}, LEASE)
    jobs.update_job(store, done.id, state=jobs.COMPLETE)
    collector = StoreGauges(store)
    await collector.refresh()
    seen = gauges(collector)
    assert seen[("pdex_sidecar_jobs", (("kind", "export"), ("state", "accepted")))] == 2
    assert seen[("pdex_sidecar_jobs", (("kind", "bulk-member-match"), ("state", "complete")))] == 1
    age = seen[("pdex_sidecar_job_oldest_age_seconds", (("kind", "export"), ("state", "accepted")))]
    assert 119 <= age < 150
    assert ("pdex_sidecar_job_oldest_age_seconds", (("kind", "bulk-member-match"), ("state", "complete"))) not in seen


async def test_pull_progress_is_counted_by_partner_and_state(store):
    ex.record_outcome(store, "payer-b", "Patient/1", ex.MATCHED)
    ex.record_outcome(store, "payer-b", "Patient/2", ex.MATCHED)
    ex.record_outcome(store, "payer-b", "Patient/3", ex.NO_MATCH)
    ex.record_ingest(store, "payer-b", "Patient/1", 7, None, [])
    collector = StoreGauges(store)
    await collector.refresh()
    seen = gauges(collector)
    assert seen[("pdex_sidecar_pull_members", (("partner", "payer-b"), ("state", "ingested")))] == 1
    assert seen[("pdex_sidecar_pull_members", (("partner", "payer-b"), ("state", "matched")))] == 1
    assert seen[("pdex_sidecar_pull_members", (("partner", "payer-b"), ("state", "no-match")))] == 1
    assert seen[("pdex_sidecar_pull_resources_ingested", (("partner", "payer-b"),))] == 7


async def test_a_scrape_reads_the_store_again_and_answers_prometheus_text(aiohttp_client, store):
    metrics = Metrics()
    collector = StoreGauges(store)
    metrics.registry.register(collector)
    client = await aiohttp_client(metrics_app(metrics, collector))
    jobs.create_job(store, jobs.EXPORT, "c", "Organization/o", "url", {}, LEASE)
    answer = await client.get("/metrics")
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=")
    families = {f.name: f for f in text_string_to_metric_families(await answer.text())}
    assert [s.value for s in families["pdex_sidecar_jobs"].samples] == [1]


def test_the_metrics_port_may_be_off_but_not_the_public_port():
    assert Settings(metrics_port=0).validate().metrics_port == 0
    with pytest.raises(ConfigError, match="metrics_port"):
        Settings(port=8000, metrics_port=8000).validate()
