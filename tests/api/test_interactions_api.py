"""Call and event edges, and the critical path, through a running server: the OpenTelemetry SDK
exports spans over OTLP/HTTP (trace context carried in a real ``traceparent`` header between
services), the CloudEvents SDK posts the events, and the JSON API answers."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest
from cloudevents.v1.conversion import to_structured
from cloudevents.v1.http import CloudEvent
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, Span, SpanKind, format_span_id, format_trace_id, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tests.http import get_json, post, read_token
from tests.polling import eventually

pytestmark = pytest.mark.slow

MS = 1_000_000
PROPAGATOR = TraceContextTextMapPropagator()


class Service:
    def __init__(self, name: str) -> None:
        self.name = name
        self.memory = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create({"service.name": name}))
        self.provider.add_span_processor(SimpleSpanProcessor(self.memory))
        self.tracer = self.provider.get_tracer(f"shop.{name}")

    def span(self, name: str, start_ms: float, end_ms: float, t0: int, **options) -> Span:
        return self.tracer.start_span(name, start_time=t0 + int(start_ms * MS), **options)

    def export(self, otlp_url: str) -> None:
        exporter = OTLPSpanExporter(endpoint=f"{otlp_url}/v1/traces")
        assert exporter.export(self.memory.get_finished_spans()) == SpanExportResult.SUCCESS
        exporter.shutdown()


def timed(service: Service, name: str, t0: int, start_ms: float, end_ms: float, **options) -> Span:
    span = service.span(name, start_ms, end_ms, t0, **options)
    span.end(end_time=t0 + int(end_ms * MS))
    return span


def http_call(
    caller: Service, callee: Service, route: str, t0: int, parent: Span, window: tuple[float, float], key: str
) -> tuple[Span, Span]:
    """``caller`` POSTs to ``callee``: a CLIENT span, the traceparent header, the callee's SERVER span."""
    start, end = window
    client = caller.span(
        f"POST {route}",
        start,
        end,
        t0,
        kind=SpanKind.CLIENT,
        context=set_span_in_context(parent),
        attributes={"http.request.method": "POST", "url.full": f"http://{callee.name}{route}", "order.id": key},
    )
    headers: dict[str, str] = {}
    PROPAGATOR.inject(headers, context=set_span_in_context(client))
    server = callee.span(
        f"POST {route}",
        start + 1,
        end - 1,
        t0,
        kind=SpanKind.SERVER,
        context=PROPAGATOR.extract(headers),
        attributes={"http.request.method": "POST", "http.route": route, "order.id": key},
    )
    server.set_attribute("http.response.status_code", 200)
    return client, server


def api(server, path: str, token: str) -> dict:
    return get_json(f"{server.url}{path}", token=token)


def whole_flow(server, key: str, token: str, nodes: int) -> dict:
    def listing() -> list[dict]:
        return api(server, f"/api/flows?key={key}", token)["results"]

    def together() -> list[dict] | None:
        found = listing()
        return found if len(found) == 1 and found[0]["observation_count"] == nodes else None

    flow = eventually(f"flow {key} comes together", together, 30, explain=listing)[0]
    return api(server, f"/api/flows/{flow['id']}", token)


def named(flow: dict) -> dict[tuple[str, str, str], dict]:
    return {(n["service"], n["name"], n.get("span_kind", "event")): n for n in flow["nodes"]}


def test_a_synchronous_chain_is_calls_with_the_callees_on_the_critical_path(server):
    key = f"order-{uuid.uuid4().hex[:8]}"
    t0 = time.time_ns() - 5_000 * MS
    checkout, payment, bank, fraud = Service("checkout"), Service("payment"), Service("bank"), Service("fraud")
    request = checkout.span("POST /checkout", 0, 100, t0, kind=SpanKind.SERVER, attributes={"order.id": key}, context=Context())
    pay_client, pay_server = http_call(checkout, payment, "/payments", t0, request, (10, 50), key)
    bank_client, bank_server = http_call(payment, bank, "/authorisations", t0, pay_server, (14, 40), key)
    for span, end in ((bank_server, 39), (bank_client, 40), (pay_server, 49), (pay_client, 50)):
        span.end(end_time=t0 + end * MS)
    fraud_client, fraud_server = http_call(checkout, fraud, "/screenings", t0, request, (52, 90), key)
    fraud_server.end(end_time=t0 + 89 * MS)
    fraud_client.end(end_time=t0 + 90 * MS)
    request.end(end_time=t0 + 100 * MS)
    for service in (fraud, bank, payment, checkout):  # callees first: order must not matter
        service.export(server.otlp_url)

    token = read_token(server)
    # Spans alone, with no business key configured: the flow's key is its root trace id.
    flow = whole_flow(server, format_trace_id(request.get_span_context().trace_id), token, 7)
    node = named(flow)
    styles = {(e["source"], e["target"]): e["style"] for e in flow["edges"]}
    root = node["checkout", "POST /checkout", "server"]["id"]
    for caller, callee, route in (("checkout", "payment", "/payments"), ("payment", "bank", "/authorisations")):
        client, served = node[caller, f"POST {route}", "client"]["id"], node[callee, f"POST {route}", "server"]["id"]
        assert styles[client, served] == "call"
    assert styles[root, node["checkout", "POST /payments", "client"]["id"]] == "internal"
    assert set(styles.values()) == {"call", "internal"}

    ids = {n["id"]: (n["service"], n["name"], n.get("span_kind")) for n in flow["nodes"]}
    assert [ids[i] for i in flow["critical_path"]] == [
        ("checkout", "POST /checkout", "server"),
        ("checkout", "POST /payments", "client"),
        ("payment", "POST /payments", "server"),
        ("payment", "POST /authorisations", "client"),
        ("bank", "POST /authorisations", "server"),
        ("checkout", "POST /screenings", "client"),
        ("fraud", "POST /screenings", "server"),
    ]
    times = {entry["service"]: entry for entry in flow["critical_path_services"]}
    assert flow["critical_path_ms"] == 100.0
    on_path = {(e["source"], e["target"]) for e in flow["edges"] if e["critical"]}
    assert on_path == {
        (root, node["checkout", "POST /payments", "client"]["id"]),
        (root, node["checkout", "POST /screenings", "client"]["id"]),
    } | {
        (node[c, f"POST {r}", "client"]["id"], node[s, f"POST {r}", "server"]["id"])
        for c, s, r in (
            ("checkout", "payment", "/payments"),
            ("payment", "bank", "/authorisations"),
            ("checkout", "fraud", "/screenings"),
        )
    } | {(node["payment", "POST /payments", "server"]["id"], node["payment", "POST /authorisations", "client"]["id"])}
    assert times["checkout"]["waiting_ms"] == 38.0 + 36.0  # fraud's server span 53-89, payment's 11-49
    assert times["bank"]["self_ms"] == 24.0 and times["fraud"]["share"] == 0.36
    assert round(sum(entry["share"] for entry in times.values()), 3) == 1.0

    def call_edges() -> dict | None:
        edges = api(server, "/api/topology?window=15m", token)["edges"]
        calls = {(e["source"], e["target"]): e for e in edges if e["style"] == "call"}
        return calls if ("service:payment", "service:bank") in calls else None

    calls = eventually("the map shows the calls", call_edges, 20)
    assert calls["service:checkout", "service:payment"]["p95_ms"] is not None
    assert calls["service:payment", "service:bank"]["count"] >= 1


def cloud_event(event_type: str, service: str, key: str, emitter: Span, at_ns: int, cause: str | None = None) -> CloudEvent:
    context = emitter.get_span_context()
    attributes = {
        "id": f"{event_type}-{uuid.uuid4().hex[:12]}",
        "type": event_type,
        "source": f"/{service}",
        "correlationid": key,
        "traceparent": f"00-{format_trace_id(context.trace_id)}-{format_span_id(context.span_id)}-01",
        "time": datetime.fromtimestamp(at_ns / 1e9, UTC).isoformat(),
        "datacontenttype": "application/json",
        **({"causationid": cause} if cause else {}),
    }
    return CloudEvent(attributes, {"order_id": key})


def test_an_event_choreography_is_events_and_its_critical_path_follows_the_slowest_reaction(server):
    key = f"order-{uuid.uuid4().hex[:8]}"
    t0 = time.time_ns() - 5_000 * MS
    checkout = Service("checkout")
    request = checkout.span("POST /checkout", 0, 20, t0, kind=SpanKind.SERVER, attributes={"order.id": key}, context=Context())
    producer = checkout.span("send orders", 5, 10, t0, kind=SpanKind.PRODUCER, context=set_span_in_context(request))
    created = cloud_event("OrderCreated", "checkout", key, producer, t0 + 8 * MS)
    producer.end(end_time=t0 + 10 * MS)
    request.end(end_time=t0 + 20 * MS)
    events = [created]
    reactions = {"email": ("EmailSent", 30, 60), "rewards": ("PointsCreated", 25, 45), "warehouse": ("ShipmentPrepared", 40, 400)}
    services = [checkout]
    for name, (reaction, start, end) in reactions.items():
        service = Service(name)
        message = {"cloudevents.event_id": created["id"], "cloudevents.event_source": "/checkout"}
        consumer = service.span(
            "process orders", start, end, t0, kind=SpanKind.CONSUMER, context=Context(),
            links=[Link(producer.get_span_context())], attributes={"messaging.operation.type": "process", **message},
        )  # fmt: skip
        timed(service, "work", t0, start + 1, end - 5, context=set_span_in_context(consumer))
        events.append(cloud_event(reaction, name, key, consumer, t0 + (end - 2) * MS, cause=created["id"]))
        consumer.end(end_time=t0 + end * MS)
        services.append(service)
    for event in reversed(events):
        headers, body = to_structured(event)
        assert post(f"{server.url}/v1/events", body, dict(headers)) == 202
    for service in services:
        service.export(server.otlp_url)

    token = read_token(server)
    flow = whole_flow(server, key, token, 3 + 3 * 3)
    node = named(flow)
    styles = {(e["source"], e["target"], e["kind"]): e["style"] for e in flow["edges"]}
    order_created = node["checkout", "OrderCreated", "event"]["id"]
    for name, (reaction, _, _) in reactions.items():
        consumer = node[name, "process orders", "consumer"]["id"]
        assert styles[order_created, consumer, "delivers"] == "event"
        assert styles[node["checkout", "send orders", "producer"]["id"], consumer, "follows_from"] == "event"
        assert styles[order_created, node[name, reaction, "event"]["id"], "caused_by"] == "event"
        assert styles[consumer, node[name, reaction, "event"]["id"], "emitted_by"] == "internal"
    assert "call" not in set(styles.values())

    ids = {n["id"]: (n["service"], n["name"]) for n in flow["nodes"]}
    path = [ids[i] for i in flow["critical_path"]]
    assert path == [
        ("checkout", "POST /checkout"),
        ("checkout", "send orders"),
        ("checkout", "OrderCreated"),
        ("warehouse", "process orders"),
        ("warehouse", "work"),
        ("warehouse", "ShipmentPrepared"),
    ]
    warehouse = next(entry for entry in flow["critical_path_services"] if entry["service"] == "warehouse")
    # OrderCreated at 8 ms (its CloudEvents time keeps microseconds), warehouse picks it up at 40 ms.
    assert warehouse["queued_ms"] == pytest.approx(32.0, abs=0.01)
    assert flow["critical_path_services"][0]["service"] == "warehouse"
