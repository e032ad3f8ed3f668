"""The correlation rules through the real collectors with real clients (the OpenTelemetry SDK over
OTLP/HTTP, the CloudEvents SDK): a batch consumer serving three orders, a trace whose root never
arrives, an order causing a shipment (another key), a consumer whose clock runs behind, and the
running example delivered in scrambled order."""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import Link, SpanKind, set_span_in_context

from tests.http import read_token
from tests.polling import eventually
from tests.tracing.test_end_to_end import REACTIONS, Service, api, cloud_event, post_event, wait_for_flow

pytestmark = pytest.mark.slow

PROCESS = {"messaging.operation.type": "process"}


def edges_of(flow: dict[str, Any]) -> list[dict[str, Any]]:
    """A flow's edges as correlation made them (without how they are drawn: style, critical path)."""
    return [{name: edge[name] for name in ("source", "target", "kind", "cross_flow")} for edge in flow["edges"]]


def new_key(prefix: str = "order") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def place_order(checkout: Service, key: str):
    """checkout's server span, its producer span and the OrderCreated it emits."""
    with (
        checkout.tracer.start_as_current_span("POST /checkout", kind=SpanKind.SERVER),
        checkout.tracer.start_as_current_span(
            "OrderCreated send", kind=SpanKind.PRODUCER, attributes={"messaging.operation.type": "send"}
        ) as producer,
    ):
        created = cloud_event("OrderCreated", "/checkout", key, producer)
    # Stamped by checkout's clock when it was sent.
    created["time"] = datetime.fromtimestamp(started_ns(producer) / 1e9, tz=UTC).isoformat()
    return producer, created


def started_ns(span) -> int:
    return cast(ReadableSpan, span).start_time or 0


def flows_with_key(server, key: str, token: str) -> list[dict]:
    return api(server, f"/api/flows?key={key}", token)["results"]


def flow_of(server, key: str, token: str, nodes: int) -> dict:
    return wait_for_flow(server, key, token, nodes, timeout=60)


def test_a_batch_consumer_linking_three_orders_is_a_shared_step_of_three_flows(server):
    checkout, loyalty = Service("checkout"), Service("loyalty")
    keys = [new_key() for _ in range(3)]
    placed = [place_order(checkout, key) for key in keys]
    # One consumer span processes the three messages at once and links to each producer
    # (OpenTelemetry messaging conventions for batch receiving).
    with (
        loyalty.tracer.start_as_current_span(
            "OrderCreated process",
            context=Context(),
            kind=SpanKind.CONSUMER,
            links=[Link(p.get_span_context()) for p, _ in placed],
            attributes=PROCESS,
        ),
        loyalty.tracer.start_as_current_span("award points"),
    ):
        pass
    loyalty.export(server.otlp_url)  # the batch arrives first
    for _, created in placed:
        post_event(server, created)
    checkout.export(server.otlp_url)
    token = read_token(server)

    flows = [flow_of(server, key, token, 3 + 2) for key in keys]
    assert len({flow["id"] for flow in flows}) == 3, "three orders, three flows"
    for key, flow in zip(keys, flows, strict=True):
        assert flow["key"] == key
        batch = next(node for node in flow["nodes"] if node["service"] == "loyalty" and node["name"] == "OrderCreated process")
        work = next(node for node in flow["nodes"] if node["name"] == "award points")
        others = {other["key"] for other in batch["shared_with"]}
        assert others == set(keys) - {key}, "the batch step names the other flows it serves"
        assert {other["key"] for other in work["shared_with"]} == others, "so does the work under it"
        producer = next(node for node in flow["nodes"] if node["name"] == "OrderCreated send")
        assert {"source": producer["id"], "target": batch["id"], "kind": "follows_from", "cross_flow": False} in edges_of(flow)
        assert flow["cross_flow_edges"] == [], "each link lands in a flow the batch serves"
    first = flows[0]["nodes"]
    batch_ids = {node["id"] for flow in flows for node in flow["nodes"] if node["service"] == "loyalty"}
    assert len(batch_ids) == 2 and all(node["shared_with"] == [] for node in first if node["service"] == "checkout"), (
        "stored once"
    )


def test_spans_under_a_root_that_never_arrives_are_one_flow(server):
    gateway, checkout, payments = Service("gateway"), Service("checkout"), Service("payments")
    key = new_key()
    with gateway.tracer.start_as_current_span("GET /", kind=SpanKind.SERVER) as root:  # never exported
        context = set_span_in_context(root)
        with checkout.tracer.start_as_current_span("POST /checkout", context=context, kind=SpanKind.SERVER) as handler:
            created = cloud_event("OrderCreated", "/checkout", key, handler)
        with payments.tracer.start_as_current_span("POST /pay", context=context, kind=SpanKind.SERVER):
            pass
    payments.export(server.otlp_url)
    checkout.export(server.otlp_url)
    post_event(server, created)
    token = read_token(server)

    flow = flow_of(server, key, token, 3)
    assert {node["service"] for node in flow["nodes"]} == {"checkout", "payments"}
    assert len(flows_with_key(server, key, token)) == 1
    trace_id = flow["nodes"][0]["trace_id"]
    assert api(server, f"/api/flows?key={trace_id}", token)["results"] == [], "no second, keyless flow of the same trace"


def test_an_order_causing_a_shipment_is_two_flows_joined_by_a_cross_flow_edge(server):
    checkout, shipping = Service("checkout"), Service("shipping")
    order, shipment = new_key(), new_key("shipment")
    producer, created = place_order(checkout, order)
    with shipping.tracer.start_as_current_span(
        "OrderCreated process",
        context=Context(),
        kind=SpanKind.CONSUMER,
        links=[Link(producer.get_span_context())],
        attributes={**PROCESS, "cloudevents.event_id": created["id"], "cloudevents.event_source": "/checkout"},
    ) as consumer:
        shipped = cloud_event("ShipmentRequested", "/shipping", shipment, consumer, cause=created["id"])
    post_event(server, shipped)
    shipping.export(server.otlp_url)
    post_event(server, created)
    checkout.export(server.otlp_url)
    token = read_token(server)

    order_flow, shipment_flow = flow_of(server, order, token, 3), flow_of(server, shipment, token, 2)
    assert order_flow["id"] != shipment_flow["id"]
    outgoing = order_flow["cross_flow_edges"]
    incoming = shipment_flow["cross_flow_edges"]
    assert {(e["kind"], e["direction"], e["other_flow"]["key"]) for e in outgoing} == {
        ("follows_from", "out", shipment),
        ("delivers", "out", shipment),
        ("caused_by", "out", shipment),
    }
    assert {(e["kind"], e["direction"], e["other_flow"]["id"]) for e in incoming} == {
        (kind, "in", order_flow["id"]) for kind in ("follows_from", "delivers", "caused_by")
    }
    assert all(not node["shared_with"] for node in order_flow["nodes"] + shipment_flow["nodes"])


def test_a_consumer_whose_clock_runs_behind_keeps_its_edge_and_the_skew_is_shown(server):
    checkout, email = Service("checkout"), Service("email")
    key = new_key()
    producer, created = place_order(checkout, key)
    behind = started_ns(producer) - 2_000_000_000  # email's clock runs two seconds behind
    with email.tracer.start_as_current_span(
        "OrderCreated process",
        context=Context(),
        kind=SpanKind.CONSUMER,
        links=[Link(producer.get_span_context())],
        attributes={**PROCESS, "cloudevents.event_id": created["id"], "cloudevents.event_source": "/checkout"},
        start_time=behind,
    ) as consumer:
        pass
    del consumer
    email.export(server.otlp_url)
    post_event(server, created)
    checkout.export(server.otlp_url)
    token = read_token(server)

    flow = flow_of(server, key, token, 4)
    node = {n["name"]: n for n in flow["nodes"]}
    consumer_node, producer_node = node["OrderCreated process"], node["OrderCreated send"]
    assert {
        "source": producer_node["id"],
        "target": consumer_node["id"],
        "kind": "follows_from",
        "cross_flow": False,
    } in edges_of(flow)
    assert consumer_node["order"] > producer_node["order"], "drawn after its cause"
    assert 1900 < consumer_node["skew_ms"] < 2100
    assert producer_node["skew_ms"] == 0
    [skew] = [s for s in flow["clock_skew"] if s["service"] == "email"]
    assert skew["behind"] == "checkout" and 1900 < skew["skew_ms"] < 2100


def test_the_running_example_in_scrambled_order_comes_back_whole(server):
    key = new_key()
    checkout = Service("checkout")
    producer, created = place_order(checkout, key)
    sends: list = [lambda: post_event(server, created)]
    spans = list(checkout.memory.get_finished_spans())
    for name, reaction in REACTIONS.items():
        service = Service(name)
        with service.tracer.start_as_current_span(
            "OrderCreated process",
            context=Context(),
            kind=SpanKind.CONSUMER,
            links=[Link(producer.get_span_context())],
            attributes={**PROCESS, "cloudevents.event_id": created["id"], "cloudevents.event_source": "/checkout"},
        ) as consumer:
            with service.tracer.start_as_current_span(f"{name} work"):
                pass
            event = cloud_event(reaction, f"/{name}", key, consumer, cause=created["id"])
        sends.append(lambda event=event: post_event(server, event))
        spans += service.memory.get_finished_spans()
    for span in spans:  # every span in an export of its own
        sends.append(lambda span=span: export_one(server, span))
    random.Random(time.time_ns()).shuffle(sends)
    for send in sends:
        send()
    token = read_token(server)

    flow = flow_of(server, key, token, 3 + 3 * len(REACTIONS))
    assert len(flow["edges"]) == 2 + 5 * len(REACTIONS) and flow["cross_flow_edges"] == []
    assert {node["service"] for node in flow["nodes"]} == {"checkout", *REACTIONS}
    eventually("one flow for the key", lambda: len(flows_with_key(server, key, token)) == 1 or None, 10)


def export_one(server, span) -> None:
    exporter = OTLPSpanExporter(endpoint=f"{server.otlp_url}/v1/traces")
    exporter.export([span])
    exporter.shutdown()
