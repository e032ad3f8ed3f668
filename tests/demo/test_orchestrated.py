"""The shop's orchestrated part on the wire: checkout's CLIENT spans around real HTTP requests,
the callees' SERVER spans continuing the same trace, and OrderCreated only after both answered."""

import random
from dataclasses import replace

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from demo.catalog import SERVICES
from demo.orchestrated import ENDPOINTS, FRAUD_SCREENING, PAYMENT, HttpService, OrderChecks, call
from demo.shop import Shop, ShopConfig
from demo.telemetry import ServiceClock
from tests.demo.sink import start_sink

SERVER, CLIENT, PRODUCER = 2, 3, 4


@pytest.fixture
def sink():
    sink, server = start_sink()
    yield sink
    server.shutdown()


def test_checkout_calls_fraud_screening_then_payment_and_only_then_emits_order_created(sink, monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    config = ShopConfig(target=sink.url, rate=8.0, services=SERVICES, fraud_joins_after=0, seed=5, latency_scale=0.2)
    shop = Shop(config, read_faults=dict, report_backlogs=lambda backlogs: None)
    shop.start()
    shop.stopping.wait(1.5)
    shop.stop(drain_seconds=12)

    by_id = {(span.trace_id, span.span_id): span for span in sink.spans}
    clients = [span for span in sink.spans if span.kind == CLIENT]
    servers = [span for span in sink.spans if span.kind == SERVER and span.service in (FRAUD_SCREENING, PAYMENT)]
    assert shop.orders() >= 4 and len(clients) == len(servers) >= 8
    for server in servers:
        client = by_id[(server.trace_id, server.parent_span_id)]
        assert client.kind == CLIENT and client.service == "checkout"
        assert client.attributes["http.request.method"] == server.attributes["http.request.method"] == "POST"
        assert client.attributes["http.response.status_code"] == server.attributes["http.response.status_code"] == 200
        assert client.attributes["url.full"].endswith(server.attributes["http.route"])
        assert client.attributes["order.id"] == server.attributes["order.id"]
        request = by_id[(client.trace_id, client.parent_span_id)]
        assert request.name == "POST /checkout"

    for producer in (span for span in sink.spans if span.kind == PRODUCER and span.service == "checkout"):
        calls = [span for span in clients if span.trace_id == producer.trace_id]
        assert [span.name for span in calls] == ["POST /screenings", "POST /payments"]


def test_a_refusal_is_an_http_error_on_both_sides_and_stops_the_order():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    declining = HttpService(replace(ENDPOINTS[PAYMENT], refuse_share=1.0), provider, ServiceClock(), random.Random(1), 0.01)
    screening = HttpService(ENDPOINTS[FRAUD_SCREENING], provider, ServiceClock(), random.Random(2), 0.01)
    for service in (declining, screening):
        service.start()
    tracer = provider.get_tracer("checkout")
    try:
        with tracer.start_as_current_span("POST /checkout", kind=SpanKind.SERVER):
            approved = OrderChecks({PAYMENT: declining, FRAUD_SCREENING: screening}).approve(
                lambda name, kind, attributes: tracer.start_as_current_span(name, kind=kind, attributes=attributes), "order-1"
            )
    finally:
        declining.stop()
        screening.stop()
    assert approved is False
    spans = {(span.name, span.kind): span for span in exporter.get_finished_spans()}
    client, server = spans[("POST /payments", SpanKind.CLIENT)], spans[("POST /payments", SpanKind.SERVER)]
    sent, answered = dict(client.attributes or {}), dict(server.attributes or {})
    assert sent["http.response.status_code"] == answered["http.response.status_code"] == 402
    assert not client.status.is_ok and sent["error.type"] == "402"
    assert server.parent is not None and client.context is not None and server.context is not None
    assert server.parent.span_id == client.context.span_id and server.context.trace_id == client.context.trace_id


def test_an_unreachable_callee_is_a_failed_call_not_a_crash():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("checkout")
    opened = call(
        lambda name, kind, attributes: tracer.start_as_current_span(name, kind=kind, attributes=attributes),
        "http://127.0.0.1:9/payments",
        "/payments",
        "order-2",
    )
    (span,) = exporter.get_finished_spans()
    assert opened is False and not span.status.is_ok and dict(span.attributes or {})["error.type"]
