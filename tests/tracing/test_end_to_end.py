"""Through the real collectors with real clients: the OpenTelemetry SDK exports spans over
OTLP/HTTP and the CloudEvents SDK posts events; the JSON API answers with one connected flow."""

from __future__ import annotations

import uuid

import pytest
from cloudevents.v1.conversion import to_structured
from cloudevents.v1.http import CloudEvent
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, format_span_id, format_trace_id

from tests.http import get_json, post, read_token
from tests.polling import eventually

pytestmark = pytest.mark.slow

REACTIONS = {"email": "EmailSent", "warehouse": "ShipmentPrepared", "rewards": "PointsCreated"}


class Service:
    """One instrumented service: a tracer whose finished spans we export when we choose to."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.memory = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create({"service.name": name}))
        self.provider.add_span_processor(SimpleSpanProcessor(self.memory))
        self.tracer = self.provider.get_tracer(f"shop.{name}")

    def export(self, otlp_url: str) -> None:
        exporter = OTLPSpanExporter(endpoint=f"{otlp_url}/v1/traces")
        exporter.export(self.memory.get_finished_spans())
        exporter.shutdown()


def traceparent(span) -> str:
    context = span.get_span_context()
    return f"00-{format_trace_id(context.trace_id)}-{format_span_id(context.span_id)}-01"


def cloud_event(event_type: str, source: str, key: str, emitter, cause: str | None = None) -> CloudEvent:
    attributes = {
        "id": f"{event_type}-{uuid.uuid4().hex[:12]}",
        "type": event_type,
        "source": source,
        "correlationid": key,
        "traceparent": traceparent(emitter),
        "datacontenttype": "application/json",
    }
    if cause:
        attributes["causationid"] = cause
    return CloudEvent(attributes, {"order_id": key})


def post_event(server, event: CloudEvent) -> None:
    headers, body = to_structured(event)
    assert post(f"{server.url}/v1/events", body, dict(headers)) == 202


def api(server, path: str, token: str) -> dict:
    return get_json(f"{server.url}{path}", token=token)


def run_checkout(server, key: str) -> int:
    """The running example, delivered consumers first and the producer last; returns how many
    observations were sent."""
    checkout = Service("checkout")
    with (
        checkout.tracer.start_as_current_span("POST /checkout", kind=SpanKind.SERVER, attributes={"order.id": key}),
        checkout.tracer.start_as_current_span(
            "OrderCreated send", kind=SpanKind.PRODUCER, attributes={"messaging.operation.type": "send"}
        ) as producer,
    ):
        order_created = cloud_event("OrderCreated", "/checkout", key, producer)
    events = []
    consumers = []
    for name, reaction in REACTIONS.items():
        service = Service(name)
        # Each consumer starts a new trace and links back to the producer's context.
        with service.tracer.start_as_current_span(
            "OrderCreated process",
            context=Context(),
            kind=SpanKind.CONSUMER,
            links=[Link(producer.get_span_context())],
            attributes={
                "messaging.operation.type": "process",
                "cloudevents.event_id": order_created["id"],
                "cloudevents.event_source": "/checkout",
            },
        ) as consumer:
            with service.tracer.start_as_current_span(f"{name} work"):
                pass
            events.append(cloud_event(reaction, f"/{name}", key, consumer, cause=order_created["id"]))
        consumers.append(service)
    for event in events:
        post_event(server, event)
    for service in consumers:
        service.export(server.otlp_url)
    post_event(server, order_created)
    checkout.export(server.otlp_url)
    return 1 + 2 + len(REACTIONS) * 3


def wait_for_flow(server, key: str, token: str, nodes: int, timeout: float = 30) -> dict:
    def listing() -> list[dict]:
        return api(server, f"/api/flows?key={key}", token)["results"]

    def whole() -> list[dict] | None:
        found = listing()
        return found if len(found) == 1 and found[0]["observation_count"] == nodes else None

    flow = eventually(f"flow {key} comes together", whole, timeout, explain=listing)[0]
    return api(server, f"/api/flows/{flow['id']}", token)


def test_a_checkout_across_four_traces_comes_back_as_one_connected_flow(server):
    key = f"order-{uuid.uuid4().hex[:8]}"
    sent = run_checkout(server, key)
    token = read_token(server)
    flow = wait_for_flow(server, key, token, sent)

    assert api(server, f"/api/flows?key={key}", token)["results"][0]["id"] == flow["id"]
    assert flow["type"] == "OrderCreated" and flow["status"] == "running"
    assert set(flow["services"]) == {"checkout", *REACTIONS} and flow["services"][0] == "checkout"
    node = {(n["service"], n["name"]): n for n in flow["nodes"]}
    edges = {(e["source"], e["target"], e["kind"]) for e in flow["edges"]}
    producer, created = node["checkout", "OrderCreated send"], node["checkout", "OrderCreated"]
    assert (node["checkout", "POST /checkout"]["id"], producer["id"], "child_of") in edges
    assert (producer["id"], created["id"], "emitted_by") in edges
    for service, reaction in REACTIONS.items():
        consumer = node[service, "OrderCreated process"]
        assert consumer["trace_id"] != producer["trace_id"]
        assert (producer["id"], consumer["id"], "follows_from") in edges
        assert (created["id"], consumer["id"], "delivers") in edges
        assert (consumer["id"], node[service, f"{service} work"]["id"], "child_of") in edges
        # The event arrived before its span; once the span came, it took the span's service.
        assert (consumer["id"], node[service, reaction]["id"], "emitted_by") in edges
        assert (created["id"], node[service, reaction]["id"], "caused_by") in edges
        assert created["order"] < consumer["order"] < node[service, reaction]["order"]
    assert len(edges) == 2 + 5 * len(REACTIONS)
