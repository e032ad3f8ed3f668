"""The shop against a stand-in sink: what a real service would put on the wire."""

import uuid
from collections import Counter
from collections.abc import Iterator

import pytest

from demo.analytics import BATCH_SIZE
from demo.catalog import ANALYTICS, SERVICES
from demo.faults import Faults
from demo.orchestrated import ORCHESTRATED_SERVICES
from demo.services import CheckoutService
from demo.shop import Shop, ShopConfig
from tests.demo.sink import delete_rabbit_namespace, start_sink

PRODUCER, CONSUMER = 4, 5


@pytest.fixture
def demo_prefix() -> Iterator[str]:
    """A namespace of the shop's own on the bus; on RabbitMQ its exchanges and queues are deleted after."""
    prefix = f"test-demo-{uuid.uuid4().hex[:8]}"
    yield prefix
    delete_rabbit_namespace(prefix)


@pytest.fixture
def sink():
    sink, server = start_sink()
    yield sink
    server.shutdown()


def run_shop(sink, seconds: float, faults: dict[str, Faults] | None = None, token: str | None = None) -> Shop:
    config = ShopConfig(
        target=sink.url, rate=10.0, services=SERVICES, fraud_joins_after=0, token=token, seed=3, latency_scale=0.2
    )
    shop = Shop(config, read_faults=lambda: dict(faults or {}), report_backlogs=lambda backlogs: None)
    shop.start()
    shop.stopping.wait(seconds)
    shop.stop(drain_seconds=12)
    return shop


def test_every_service_reports_spans_and_events_that_tie_an_order_together(sink, monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    shop = run_shop(sink, 1.5, token="demo-token")
    assert shop.orders() >= 5

    assert {span.service for span in sink.spans} == set(SERVICES) | set(ORCHESTRATED_SERVICES)
    assert {event["source"] for event in sink.events} == set(SERVICES)
    assert sink.authorizations == {"Bearer demo-token"}

    producers = {(span.trace_id, span.span_id): span for span in sink.spans if span.kind == PRODUCER}
    # analytics consumes in batches: its consumer spans are checked on their own below.
    consumers = [span for span in sink.spans if span.kind == CONSUMER and span.service != ANALYTICS]
    assert consumers and all(span.attributes["messaging.operation.type"] == "process" for span in consumers)
    for consumer in consumers:
        # A consumer starts its own trace and links to the producer's context.
        (link,) = consumer.links
        producer = producers[link]
        assert consumer.trace_id != producer.trace_id and consumer.parent_span_id == ""
        assert producer.attributes["messaging.message.id"] == consumer.attributes["messaging.message.id"]
        assert producer.attributes["messaging.operation.type"] == "send"
        assert consumer.attributes["order.id"] == producer.attributes["order.id"]

    events_by_id = {event["id"]: event for event in sink.events}
    for event in sink.events:
        _, trace_id, span_id, _ = event["traceparent"].split("-")
        emitter = producers[(trace_id, span_id)]
        assert emitter.attributes["messaging.message.id"] == event["id"]
        assert event["correlationid"] == event["data"]["order_id"] == emitter.attributes["order.id"]
        if event["type"] == "OrderCreated":
            assert "causationid" not in event
        else:
            cause = events_by_id[event["causationid"]]
            assert cause["correlationid"] == event["correlationid"]


def test_reactions_follow_the_choreography(sink):
    run_shop(sink, 1.5)
    events = {(event["type"], event["causationid"]) for event in sink.events if "causationid" in event}
    types_by_id = {event["id"]: event["type"] for event in sink.events}
    reactions = Counter((types_by_id[cause], effect) for effect, cause in events if cause in types_by_id)
    assert set(reactions) == {
        ("OrderCreated", "EmailSent"),
        ("OrderCreated", "ShipmentPrepared"),
        ("OrderCreated", "PointsCreated"),
        ("OrderCreated", "FraudCleared"),
        ("OrderCreated", "OrderRecorded"),
        ("ShipmentPrepared", "ShipmentDispatched"),
        ("ShipmentDispatched", "DispatchNoticeSent"),
    }


def test_analytics_processes_orders_in_batches_under_one_consumer_span_linked_to_every_producer(sink):
    shop = run_shop(sink, 2.5)
    assert shop.orders() >= 10
    producers = {(span.trace_id, span.span_id): span for span in sink.spans if span.kind == PRODUCER}
    batches = [span for span in sink.spans if span.service == ANALYTICS and span.kind == CONSUMER]
    assert batches and any(len(batch.links) > 1 for batch in batches), "orders arrive fast enough to be batched"
    recorded = {event["correlationid"]: event for event in sink.events_of("OrderRecorded")}
    created = {event["id"]: event for event in sink.events_of("OrderCreated")}
    for batch in batches:
        if batch.status_code == 2:
            continue  # a failed attempt, retried as a whole
        # One span for the whole batch, in a trace of its own, linked to each message's producer context.
        assert 1 <= len(batch.links) <= BATCH_SIZE and batch.parent_span_id == ""
        assert batch.attributes["messaging.batch.message_count"] == len(batch.links)
        assert batch.attributes["messaging.operation.type"] == "process" and "order.id" not in batch.attributes
        orders = [producers[link].attributes["order.id"] for link in batch.links]
        assert len(set(orders)) == len(orders)
        children = [span for span in sink.spans if span.trace_id == batch.trace_id and span.parent_span_id == batch.span_id]
        per_order = {span.attributes["order.id"]: span for span in children if span.name == "record order"}
        assert set(per_order) == set(orders)
        for order, span in per_order.items():
            # Each order's own event is emitted under its own span, caused by its own OrderCreated.
            event = recorded[order]
            _, trace_id, span_id, _ = event["traceparent"].split("-")
            emitter = producers[(trace_id, span_id)]
            assert emitter.parent_span_id == span.span_id
            assert created[event["causationid"]]["correlationid"] == order == span.attributes["order.id"]


def test_the_email_hosts_clock_runs_two_seconds_behind_so_its_reactions_precede_their_causes(sink):
    run_shop(sink, 1.5)
    producers = {(span.trace_id, span.span_id): span for span in sink.spans if span.kind == PRODUCER}
    email = [span for span in sink.spans if span.service == "email" and span.kind == CONSUMER]
    assert email
    early = []
    for consumer in email:
        (link,) = consumer.links
        early.append(producers[link].start_ns - consumer.start_ns)
    # 2 s behind, less the (scaled-down) time each message took to arrive: never more than 2 s
    # early, and the quickest delivery (well under half a second, even on a busy machine) shows it.
    assert max(early) <= 2e9 and max(early) > 1.5e9, early


def test_a_drop_fault_leaves_orders_without_that_services_reaction(sink):
    run_shop(sink, 1.5, faults={"rewards": Faults(drop=1.0), "email": Faults(drop=0.5)})
    orders = {event["correlationid"] for event in sink.events_of("OrderCreated")}
    assert len(orders) >= 5
    assert sink.events_of("PointsCreated") == []
    assert {event["correlationid"] for event in sink.events_of("ShipmentPrepared")} == orders
    assert 0 < len({event["correlationid"] for event in sink.events_of("EmailSent")}) < len(orders)


def test_a_failing_service_reports_error_spans_and_retries(sink):
    run_shop(sink, 1.5, faults={"warehouse": Faults(fail=0.5)})
    warehouse = [span for span in sink.spans if span.service == "warehouse" and span.kind == CONSUMER]
    failed = [span for span in warehouse if span.status_code == 2]
    retried = [span for span in warehouse if span.attributes.get("messaging.delivery.attempt", 1) > 1]
    assert failed and retried
    # Its plain log lines say so, each written inside the consumer span it is about.
    spans = {(span.trace_id, span.span_id): span for span in warehouse}
    lines = [line for line in sink.log_lines if line.service == "warehouse"]
    assert lines and all((line.trace_id, line.span_id) in spans for line in lines)
    errors = [line for line in lines if line.severity == "ERROR"]
    assert errors and all(spans[(line.trace_id, line.span_id)].status_code == 2 for line in errors)
    assert any(line.severity == "WARN" and line.body.startswith("retrying") for line in lines)


@pytest.mark.parametrize(
    "bus", ["in-process", pytest.param("redis", marks=pytest.mark.redis), pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)]
)
def test_an_offline_service_builds_a_backlog_that_drains_when_it_comes_back(sink, bus, demo_prefix):
    import os

    faults = {"warehouse": Faults(offline=True)}
    redis_url = os.environ.get("REDIS_URL") if bus == "redis" else None
    config = ShopConfig(
        target=sink.url,
        rate=10.0,
        services=("checkout", "warehouse"),
        redis_url=redis_url,
        redis_prefix=demo_prefix,
        bus=bus,
        seed=5,
        latency_scale=0.2,
    )
    shop = Shop(config, read_faults=lambda: dict(faults), report_backlogs=lambda backlogs: None)
    shop.start()
    try:
        shop.stopping.wait(1.5)
        assert shop.backlogs()["warehouse"] > 0
        assert not any(span.service == "warehouse" for span in sink.spans)
        faults["warehouse"] = Faults()
        checkout = shop.services["checkout"]
        assert isinstance(checkout, CheckoutService)
        checkout.stop_taking_orders()
        while shop.faults_of("warehouse").offline:  # the shop re-reads its faults every second
            shop.stopping.wait(0.1)
        assert shop.wait_until_drained(10)
    finally:
        shop.stop(drain_seconds=10)
    orders = {event["correlationid"] for event in sink.events_of("OrderCreated")}
    assert {event["correlationid"] for event in sink.events_of("ShipmentPrepared")} == orders
