"""``/metrics`` of a real installation of several processes: ``manage.py serve --workers 2`` and a
Celery worker sharing ``PROMETHEUS_MULTIPROC_DIR``. Whichever web worker answers the scrape, it
shows the sum of every process: the requests both web workers answered and the correlation the
Celery worker did."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
import uuid

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import _create_postgres_database, _drop_postgres_database, start_server, stop_server
from tests.foundation.test_metrics import Samples, value
from tests.http import post_event
from tests.polling import eventually

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        families = text_string_to_metric_families(response.read().decode())
    return {(s.name, frozenset(s.labels.items())): s.value for family in families for s in family.samples}


def spans(service: str) -> list:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("checkout").start_as_current_span("POST /orders"):
        pass
    provider.shutdown()
    return list(memory.get_finished_spans())


@pytest.fixture
def installation(tmp_path):  # type: ignore[no-untyped-def]
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    extra = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "WEB_CONCURRENCY": "2", "CHOREOSCOPE_IN_PROCESS_SCHEDULER": "0"}
    base_url, pg_name = os.environ.get("DATABASE_URL"), None
    if base_url:
        extra["DATABASE_URL"], pg_name = _create_postgres_database(base_url)
    running = start_server(tmp_path, extra, worker=True)
    yield running
    stop_server(running)
    if base_url and pg_name:
        _drop_postgres_database(base_url, pg_name)


def test_any_web_worker_shows_the_sum_of_every_process(installation):
    exporter = OTLPSpanExporter(endpoint=f"{installation.otlp_url}/v1/traces")
    for n in range(6):
        assert exporter.export(spans(f"checkout-{n}")) == SpanExportResult.SUCCESS
    for _ in range(4):
        post_event(installation.url, "OrderCreated", "/orders", uuid.uuid4().hex)
    for _ in range(3):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(
                urllib.request.Request(f"{installation.url}/api/flows", headers={"Authorization": "Bearer nope"}), timeout=10
            )
        assert refused.value.code == 401

    def correlated() -> bool:
        return value(scrape(installation.url), "choreoscope_correlated_observations_total") == 10

    eventually("the Celery worker's correlation shows on the web's /metrics", correlated, timeout=30)
    # Each scrape lands on either web worker; every one of them reports the same sums.
    for _ in range(8):
        samples = scrape(installation.url)
        assert value(samples, "choreoscope_ingest_request_seconds_count", endpoint="traces", outcome="accepted") == 6
        assert value(samples, "choreoscope_ingest_request_seconds_count", endpoint="events", outcome="accepted") == 4
        assert value(samples, "choreoscope_observations_stored_total", kind="span") == 6
        assert value(samples, "choreoscope_token_errors_total", group="api", reason="unknown") == 3
        assert value(samples, "choreoscope_correlation_batch_seconds_count") >= 1
        assert value(samples, "choreoscope_uncorrelated_observations") == 0
