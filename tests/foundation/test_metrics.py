"""``/metrics`` read the way Prometheus reads it (``prometheus_client``'s parser), before and after
real work: spans encoded by the OpenTelemetry SDK and events made by the CloudEvents SDK sent over
HTTP, a correlation, a stuck scan with a notification, refused tokens, a live socket.

Counters are per process and other tests count too, so each test compares two scrapes."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import sync_to_async
from cloudevents.v1.conversion import to_structured
from cloudevents.v1.http import CloudEvent
from django.core import mail
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from alerts.delivery import deliver_due_notifications
from alerts.metrics import MAX_FLOW_TYPES, OTHER_TYPES, recent_flow_counts
from alerts.models import DeclaredFlow, NotificationChannel
from alerts.services import scan_stuck_flows
from collectors import admission
from collectors.metrics import ingest_outcome
from dashboard.metrics import lost_messages
from tests.collectors.payloads import json_request, json_span
from tests.conftest import ROOT
from tests.tracing.factories import MS, checkout_flow
from tokens.models import ApiToken
from tracing.models import Observation
from tracing.queue_lag import QueueLag, register_lag_source, unregister_lag_source
from tracing.services import correlate_pending_observations

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client) -> Samples:  # type: ignore[no-untyped-def]
    response = client.get("/metrics")
    assert response.status_code == 200
    families = text_string_to_metric_families(response.content.decode())
    return {(s.name, frozenset(s.labels.items())): s.value for family in families for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def sdk_spans(service: str) -> bytes:
    """Two spans as the OpenTelemetry SDK's OTLP/HTTP exporter encodes them."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("checkout")
    with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER):  # noqa: SIM117 - parent and child
        with tracer.start_as_current_span("publish OrderCreated", kind=SpanKind.PRODUCER):
            pass
    provider.shutdown()
    return encode_spans(memory.get_finished_spans()).SerializeToString()


def sdk_event(key: str) -> tuple[dict[str, str], bytes]:
    event = CloudEvent({"type": "OrderCreated", "source": "/orders", "correlationid": key}, {"order": key})
    return to_structured(event)


@pytest.fixture(autouse=True)
def _fresh_admission():  # type: ignore[no-untyped-def]
    admission.forget()
    yield
    admission.forget()


# --- the exposition ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_series_has_help_text_and_a_row_in_the_readme_table(client):
    text = client.get("/metrics").content.decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `(choreoscope_\w+)` \|", readme, flags=re.MULTILINE))
    assert families, "nothing exposed"
    for name, family in families.items():
        assert family.documentation and family.documentation != name, f"{name} has no HELP text"
        exposed = f"{name}_total" if family.type == "counter" else name
        assert exposed in documented, f"{exposed} is missing from the README's table of series"


@pytest.mark.django_db
def test_scrape_time_gauges_report_how_long_each_app_took_and_that_none_failed(client):
    samples = scrape(client)
    for app in ("tracing", "collectors", "alerts"):
        assert value(samples, "choreoscope_metrics_source_failed", app=app) == 0
        assert 0 < value(samples, "choreoscope_metrics_source_seconds", app=app) < 5


# --- ingestion -----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_ingestion_counts_requests_by_outcome_with_their_size_and_the_observations_stored(client):
    key = uuid.uuid4().hex
    spans = sdk_spans(f"checkout-{key[:6]}")
    headers, event = sdk_event(key)
    before = scrape(client)

    assert client.post("/v1/traces", spans, content_type="application/x-protobuf").status_code == 200
    assert client.post("/v1/events", event, content_type=headers["content-type"]).status_code == 202
    assert client.post("/v1/events", event, content_type=headers["content-type"]).status_code == 202  # a resend
    partial = json_request([json_span(), json_span(spanId="0000000000000000")])
    assert client.post("/v1/traces", partial, content_type="application/json").status_code == 200
    assert client.post("/v1/events", b"{", content_type="application/cloudevents+json").status_code == 400
    after = scrape(client)

    traces = {"endpoint": "traces"}
    assert moved(before, after, "choreoscope_ingest_request_seconds_count", **traces, outcome="accepted") == 1
    assert moved(before, after, "choreoscope_ingest_request_bytes_sum", **traces, outcome="accepted") == len(spans)
    assert moved(before, after, "choreoscope_ingest_request_bytes_count", **traces, outcome="partial") == 1
    assert moved(before, after, "choreoscope_ingest_request_seconds_count", endpoint="events", outcome="accepted") == 2
    assert moved(before, after, "choreoscope_ingest_request_bytes_sum", endpoint="events", outcome="accepted") == 2 * len(event)
    assert moved(before, after, "choreoscope_ingest_request_seconds_count", endpoint="events", outcome="rejected") == 1
    assert moved(before, after, "choreoscope_ingest_requests_total", endpoint="events", status="400") == 1
    assert moved(before, after, "choreoscope_observations_stored_total", kind="span") == 3
    assert moved(before, after, "choreoscope_observations_stored_total", kind="event") == 1
    assert moved(before, after, "choreoscope_ingested_observations_total", kind="event") == 2
    assert moved(before, after, "choreoscope_observations_rejected_total", kind="event", reason="duplicate") == 1
    assert moved(before, after, "choreoscope_observations_rejected_total", kind="span", reason="invalid") == 1


@pytest.mark.django_db(transaction=True)
def test_refused_tokens_are_counted_by_endpoint_group_and_reason(client, settings):
    settings.INGEST_AUTH = "required"
    _, ingest_token = ApiToken.issue("shop", "ingest")
    before = scrape(client)

    assert client.post("/v1/events", b"{}", content_type="application/cloudevents+json").status_code == 401
    assert client.get("/api/flows", headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    assert client.get("/api/flows", headers={"Authorization": f"Bearer {ingest_token}"}).status_code == 401
    assert client.get("/api/flows", headers={"Authorization": "Basic YWRtaW46YWRtaW4="}).status_code == 401
    after = scrape(client)

    assert moved(before, after, "choreoscope_token_errors_total", group="ingest", reason="missing") == 1
    assert moved(before, after, "choreoscope_token_errors_total", group="api", reason="unknown") == 1
    assert moved(before, after, "choreoscope_token_errors_total", group="api", reason="wrong_scope") == 1
    assert moved(before, after, "choreoscope_token_errors_total", group="api", reason="malformed") == 1
    assert moved(before, after, "choreoscope_ingest_request_seconds_count", endpoint="events", outcome="unauthorized") == 1


# --- correlation, flows, alerts -------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_correlation_batches_are_timed_and_the_lag_is_the_age_of_the_oldest_waiting_observation(client):
    headers, event = sdk_event(uuid.uuid4().hex)
    assert client.post("/v1/events", event, content_type=headers["content-type"]).status_code == 202
    # Embedded mode correlates in the request's thread; make one observation wait, two minutes old.
    waiting = Observation.objects.latest("id")
    Observation.objects.filter(id=waiting.id).update(flow=None, received_at=datetime.now(UTC) - timedelta(minutes=2))
    before = scrape(client)
    assert value(before, "choreoscope_uncorrelated_observations") == 1
    assert 120 <= value(before, "choreoscope_correlation_lag_seconds") < 130

    assert correlate_pending_observations() == 1
    after = scrape(client)
    assert moved(before, after, "choreoscope_correlation_batch_seconds_count") == 1
    assert moved(before, after, "choreoscope_correlated_observations_total") == 1
    assert value(after, "choreoscope_uncorrelated_observations") == 0
    assert value(after, "choreoscope_correlation_lag_seconds") == 0


@pytest.mark.django_db
def test_a_stuck_scan_shows_on_recent_flows_and_open_alerts_and_its_notification_is_counted(client, settings):
    settings.FLOWS_FILE = None
    settings.STUCK_FLOOR_SECONDS = 30
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    NotificationChannel.objects.create(name="ops", kind="email", target="ops@example.com")
    DeclaredFlow.objects.create(flow_type="OrderCreated").expectations.create(
        after="OrderCreated", steps=["PointsCreated"], within_seconds=20
    )
    now_ns = time.time_ns()
    checkout_flow(start_ns=now_ns - 45_000 * MS, reacting=("email", "warehouse"))
    before = scrape(client)
    assert value(before, "choreoscope_recent_flows", type="OrderCreated", status="running") == 1
    assert value(before, "choreoscope_recent_flows", type="OrderCreated", status="stuck") == 0

    [_alert] = scan_stuck_flows(datetime.fromtimestamp(now_ns / 1e9, tz=UTC))
    middle = scrape(client)
    assert value(middle, "choreoscope_recent_flows", type="OrderCreated", status="stuck") == 1
    assert value(middle, "choreoscope_recent_flows", type="OrderCreated", status="running") == 0
    assert value(middle, "choreoscope_open_alerts", flow_type="OrderCreated", state="open") == 1
    assert value(middle, "choreoscope_notifications_due") == 1

    assert deliver_due_notifications() == 1 and len(mail.outbox) == 1
    after = scrape(client)
    assert moved(middle, after, "choreoscope_notification_deliveries_total", channel="email", outcome="delivered") == 1
    assert value(after, "choreoscope_notifications_due") == 0


def test_flow_types_beyond_the_cap_are_summed_so_the_series_stay_bounded():
    rows: list[tuple[str, str, bool | None, int]] = [
        (f"type-{n:03}", "running", None, 1000 - n) for n in range(MAX_FLOW_TYPES + 10)
    ]
    rows.append(("type-000", "completed", False, 5))  # watched, not stuck: still running for people
    counts = recent_flow_counts(rows)
    assert len({flow_type for flow_type, _ in counts}) == MAX_FLOW_TYPES + 1
    assert counts[("type-000", "running")] == 1005
    assert counts[(OTHER_TYPES, "running")] == sum(1000 - n for n in range(MAX_FLOW_TYPES, MAX_FLOW_TYPES + 10))
    assert counts[("type-001", "stuck")] == 0


# --- pure rules and hooks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "partial", "outcome"),
    [
        (200, False, "accepted"),
        (202, False, "accepted"),
        (200, True, "partial"),
        (400, False, "rejected"),
        (413, False, "rejected"),
        (415, False, "rejected"),
        (401, False, "unauthorized"),
        (429, False, "throttled"),
        (503, False, "unavailable"),
    ],
)
def test_an_ingest_answer_has_one_outcome(status, partial, outcome):
    assert ingest_outcome(status, partial) == outcome


def test_lost_live_messages_are_the_numbers_that_never_arrived():
    assert lost_messages(10, {13, 14}) == 2
    assert lost_messages(10, ()) == 0


@pytest.mark.django_db
def test_a_watched_bus_reports_its_lag_and_a_broken_source_does_not_fail_the_scrape(client):
    orders = [
        QueueLag("rabbitmq", "shop.email", "email", 12, None, "email"),
        QueueLag("rabbitmq", "shop.tap", "tap", 0, None, "tap"),
    ]
    register_lag_source("rabbitmq", lambda: orders)
    register_lag_source("nats", lambda: 1 / 0)  # type: ignore[arg-type, return-value]
    try:
        samples = scrape(client)
    finally:
        unregister_lag_source("rabbitmq")
        unregister_lag_source("nats")
    lag = "choreoscope_queue_lag_messages"
    assert value(samples, lag, bus="rabbitmq", destination="shop.email", consumer="email", state="waiting") == 12
    assert value(samples, lag, bus="rabbitmq", destination="shop.tap", consumer="tap", state="waiting") == 0
    # AMQP does not say how many are unacknowledged: no sample rather than a made-up 0.
    assert not [key for key in samples if key[0] == lag and ("state", "unacknowledged") in key[1]]
    assert value(samples, "choreoscope_queue_lag_source_failed", bus="nats") == 1
    assert value(samples, "choreoscope_queue_lag_source_failed", bus="rabbitmq") == 0
    assert value(samples, "choreoscope_metrics_source_failed", app="collectors") == 0


# --- live sockets --------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_an_open_socket_is_counted_until_it_closes(client):
    from django.db import connections

    from tests.live.sockets import connect

    async def clients() -> float:
        return value(await sync_to_async(scrape)(client), "choreoscope_websocket_clients", socket="stream")

    before = await clients()
    socket = await connect("/ws/stream/")
    try:
        assert (await socket.receive_json_from(timeout=3))["type"] == "snapshot"
        assert await clients() == before + 1
    finally:
        await socket.disconnect()
    assert await clients() == before
    await sync_to_async(connections.close_all)()


@pytest.mark.django_db
def test_send_to_process_per_event_type_and_consumer_is_the_maps_p50_and_p95(client):
    checkout_flow(reacting=("email", "warehouse"))  # OrderCreated at 11 ms; email reacts at 30 ms, warehouse at 50 ms
    samples = scrape(client)
    for consumer, seconds in (("email", 0.019), ("warehouse", 0.039)):
        for quantile in ("0.5", "0.95"):
            found = value(
                samples, "choreoscope_send_to_process_seconds", event_type="OrderCreated", consumer=consumer, quantile=quantile
            )
            assert found == pytest.approx(seconds, abs=0.001)
    assert not any(
        name == "choreoscope_send_to_process_seconds" and ("consumer", "checkout") in labels for name, labels in samples
    )
