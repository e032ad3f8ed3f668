"""The RabbitMQ tap: the CloudEvents AMQP binding decoded, and, against a real RabbitMQ with a real
publisher (pika), the checkout choreography stored as the same flows as over HTTP, at least once,
without taking a message from the services' own queues."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command

from choreoscope.metrics import REGISTRY
from collectors.taps.base import BadMessage, decode_messages
from collectors.taps.rabbitmq import AmqpMessage, RabbitTap, amqp_record, decode_amqp, queue_depths
from tests.collectors.choreography import (
    CHECKOUT_STEPS,
    BusEvent,
    checkout,
    flow_shape,
    http_flow_shape,
    stop_crash_and_restart,
)
from tracing.models import Observation
from tracing.store import store_observations

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def binary_headers(event: BusEvent) -> dict[str, object]:
    return {**{f"cloudEvents:{name}": value for name, value in event.attributes.items()}, "traceparent": event.traceparent}


# --- decoding ------------------------------------------------------------------------------------


def test_binary_mode_takes_attributes_from_application_properties_and_the_media_type_from_content_type():
    headers = {
        "cloudEvents:specversion": "1.0",
        "cloudEvents:id": "e-1",
        "cloudEvents:source": "/checkout",
        "cloudEvents:type": "OrderCreated",
        "cloudEvents:correlationid": "order-7",
        "cloudEvents:time": datetime.datetime(2024, 5, 1, 12, 0, 0),  # an AMQP timestamp, as pika decodes it
        "traceparent": TRACEPARENT,
        "x-retry": 2,
    }
    record = amqp_record(headers, "application/json", b'{"order_id": 7}', received_ns=1)
    assert (record.event_id, record.name, record.service) == ("e-1", "OrderCreated", "/checkout")
    assert record.detail["data"] == {"order_id": 7} and record.detail["datacontenttype"] == "application/json"
    assert record.detail["time"] == "2024-05-01T12:00:00Z"
    assert (record.trace_id, record.span_id) == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
    assert record.attributes["correlationid"] == "order-7" and "x-retry" not in record.attributes


def test_structured_mode_reads_the_body_and_the_events_own_traceparent_wins_over_the_header():
    event = checkout("order-8")[0]
    record = amqp_record({"traceparent": TRACEPARENT}, "application/cloudevents+json", event.structured(True), received_ns=1)
    assert record.event_id == "order-8-OrderCreated" and record.trace_id == event.traceparent.split("-")[1]


def test_the_jms_style_prefix_is_accepted():
    headers = {"cloudEvents_specversion": "1.0", "cloudEvents_id": "j", "cloudEvents_source": "/s", "cloudEvents_type": "T"}
    assert amqp_record(headers, None, b"", received_ns=1).event_id == "j"


@pytest.mark.parametrize(
    ("headers", "content_type", "body", "reason"),
    [
        ({}, "application/json", b"{}", "not a CloudEvent: no 'cloudEvents:specversion'"),
        ({}, "application/cloudevents+json", b"{nope", "the body is not JSON"),
        ({"cloudEvents:specversion": "0.3", "cloudEvents:id": "x"}, None, b"", "specversion must be '1.0'"),
        ({"cloudEvents:specversion": "1.0", "cloudEvents:data": "x"}, None, b"", "'data' is not an attribute"),
        ({"cloudEvents:specversion": b"\xff"}, None, b"", "not UTF-8"),
        ({"cloudEvents:specversion": "1.0", "cloudEvents:id": 1.5}, None, b"", "must be a string, a boolean"),
    ],
)
def test_a_message_that_is_not_a_valid_cloudevent_says_why(headers, content_type, body, reason):
    with pytest.raises(BadMessage, match=reason):
        amqp_record(headers, content_type, body, received_ns=1)


BINARY_HEADERS = {"cloudEvents:specversion": "1.0", "cloudEvents:id": "e1", "cloudEvents:source": "s", "cloudEvents:type": "T"}


@pytest.mark.parametrize(
    "headers, content_type, body",
    [
        ({}, "application/cloudevents+json", b'{"data": [' + b"{}," * 1200 + b"{}]}"),
        (BINARY_HEADERS, "application/json", b"[" + b"[]," * 1200 + b"[]]"),
    ],
    ids=["structured", "binary"],
)
def test_a_message_past_the_element_limit_is_rejected_unparsed_and_the_batch_goes_on(settings, headers, content_type, body):
    settings.MAX_ELEMENTS_PER_REQUEST = 1000
    hostile = AmqpMessage(1, "shop", "orders.created", headers, content_type, body)
    fine = AmqpMessage(2, "shop", "orders.created", BINARY_HEADERS, "application/json", b'{"order_id": "o-1"}')
    settled = decode_messages([hostile, fine], decode_amqp, lambda message: len(message.body))
    assert settled.accepted == [fine] and len(settled.records) == 1
    assert [message for message, _ in settled.rejected] == [hostile]
    assert "CHOREOSCOPE_MAX_ELEMENTS_PER_REQUEST" in settled.rejected[0][1]


# --- against a real RabbitMQ ---------------------------------------------------------------------


@dataclass
class Broker:
    """An exchange of the test's own, a services' queue bound to it, and a name for the tap's queue."""

    channel: object
    exchange: str
    service_queue: str
    tap_queue: str
    reports: list[str] = field(default_factory=list)

    def publish(self, event: BusEvent, mode: str, routing_key: str = "orders.created") -> None:
        import pika

        if mode == "binary":
            properties = pika.BasicProperties(content_type="application/json", headers=binary_headers(event), delivery_mode=2)
            body = event.body
        else:
            properties = pika.BasicProperties(
                content_type="application/cloudevents+json", headers={"traceparent": event.traceparent}, delivery_mode=2
            )
            body = event.structured()
        self.channel.basic_publish(self.exchange, routing_key, body, properties)  # type: ignore[attr-defined]

    def publish_raw(self, body: bytes, content_type: str | None = None, headers: dict | None = None) -> None:
        import pika

        properties = pika.BasicProperties(content_type=content_type, headers=headers)
        self.channel.basic_publish(self.exchange, "orders.other", body, properties)  # type: ignore[attr-defined]

    def tap(self, store=store_observations, **options) -> RabbitTap:
        options.setdefault("block_seconds", 0.5)
        return RabbitTap(
            url=settings.RABBITMQ_URL,
            exchanges=[self.exchange],
            queue=self.tap_queue,
            store=store,
            report=self.reports.append,
            **options,
        )

    def depth(self, queue: str) -> int:
        return queue_depths(settings.RABBITMQ_URL, [queue])[queue]["ready"]

    def service_bodies(self) -> list[bytes]:
        """Everything the services' queue holds (taken off it and acknowledged)."""
        bodies: list[bytes] = []
        while True:
            method, _properties, body = self.channel.basic_get(self.service_queue, auto_ack=True)  # type: ignore[attr-defined]
            if method is None:
                return bodies
            bodies.append(body)


@pytest.fixture
def broker() -> Iterator[Broker]:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(settings.RABBITMQ_URL))
    channel = connection.channel()
    suffix = uuid.uuid4().hex[:10]
    exchange, service_queue, tap_queue = f"test-orders-{suffix}", f"test-email-{suffix}", f"test-tap-{suffix}"
    channel.exchange_declare(exchange, "topic", durable=True)
    channel.queue_declare(service_queue, durable=True)
    channel.queue_bind(service_queue, exchange, routing_key="orders.#")
    yield Broker(channel, exchange, service_queue, tap_queue)
    for queue in (service_queue, tap_queue):
        channel.queue_delete(queue)
    channel.exchange_delete(exchange)
    connection.close()


def order_key() -> str:
    return f"order-{uuid.uuid4().hex[:10]}"


@pytest.mark.rabbitmq
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_the_checkout_choreography_through_rabbitmq_makes_the_same_flow_as_over_http(broker, admin_client, mode):
    key = order_key()
    broker.tap().run(should_stop=lambda: False, exit_when_idle=True)  # binds its queue: it sees what follows
    events = checkout(key)
    for event in events:
        broker.publish(event, mode)
    tap = broker.tap()
    tap.run(should_stop=lambda: False, exit_when_idle=True)

    assert (tap.stored, tap.rejected) == (len(events), 0)
    assert flow_shape(admin_client, key) == http_flow_shape(admin_client, order_key())
    created = Observation.objects.get(event_id=f"{key}-OrderCreated")
    assert created.trace_id == events[0].traceparent.split("-")[1]  # from the message's traceparent header
    assert broker.depth(broker.tap_queue) == 0
    assert len(broker.service_bodies()) == len(events)  # the services' queue kept every message


@pytest.mark.rabbitmq
@pytest.mark.django_db(transaction=True)
def test_a_tap_stopped_mid_stream_and_one_that_died_before_acknowledging_lose_and_duplicate_nothing(broker):
    broker.tap().run(should_stop=lambda: False, exit_when_idle=True)
    keys = [order_key() for _ in range(6)]
    for key in keys:
        for event in checkout(key):
            broker.publish(event, "binary")

    runs = stop_crash_and_restart(broker.tap, total=len(keys) * 5)
    assert runs.last == len(keys) * 5 - runs.first  # including those the crashed tap stored, redelivered
    stored = list(Observation.objects.values_list("event_id", flat=True))
    assert sorted(stored) == sorted(f"{key}-{name}" for key in keys for name, _, _ in CHECKOUT_STEPS)
    assert broker.depth(broker.tap_queue) == 0
    assert len(broker.service_bodies()) == len(keys) * 5


@pytest.mark.rabbitmq
@pytest.mark.django_db(transaction=True)
def test_messages_that_are_not_cloudevents_are_rejected_counted_and_reported_with_why(broker):
    broker.tap().run(should_stop=lambda: False, exit_when_idle=True)
    before, batches_before = rejected_by_tap("rabbitmq"), tap_batches("rabbitmq", "partial")
    broker.publish_raw(b'{"order_id": 1}', "application/json")
    broker.publish_raw(b"", None, {"cloudEvents:specversion": "0.3", "cloudEvents:id": "old"})
    good = checkout(order_key())[0]
    broker.publish(good, "binary")
    tap = broker.tap()
    tap.run(should_stop=lambda: False, exit_when_idle=True)

    assert (tap.stored, tap.rejected) == (1, 2)
    after = rejected_by_tap("rabbitmq")
    assert after - before == 2
    # One batch of three messages, counted like an ingest request of endpoint tap_rabbitmq.
    batches, size = tap_batches("rabbitmq", "partial")
    assert batches - batches_before[0] == 1
    assert size - batches_before[1] == len(b'{"order_id": 1}') + len(good.body)
    assert any("no 'cloudEvents:specversion'" in report for report in broker.reports)
    assert any("specversion must be '1.0'" in report for report in broker.reports)
    assert broker.depth(broker.tap_queue) == 0  # rejected without requeue, not redelivered forever


@pytest.mark.rabbitmq
@pytest.mark.django_db(transaction=True)
def test_the_tap_command_binds_its_queue_then_reads_what_the_exchange_got(broker):
    call_command("tap", "rabbitmq", broker.exchange, "--queue", broker.tap_queue, "--exit-when-idle", "--block", "0.3")
    key = order_key()
    for event in checkout(key):
        broker.publish(event, "structured")
    out = StringIO()
    call_command(
        "tap", "rabbitmq", broker.exchange, "--queue", broker.tap_queue, "--exit-when-idle", "--block", "0.3", stdout=out
    )
    assert "Stored 5 event(s), rejected 0." in out.getvalue()
    assert Observation.objects.filter(event_id__startswith=key).count() == 5


@pytest.mark.rabbitmq
def test_a_missing_exchange_is_retried_with_backoff_and_said(broker):
    tap = RabbitTap(
        url=settings.RABBITMQ_URL,
        exchanges=[f"missing-{uuid.uuid4().hex[:8]}"],
        queue=broker.tap_queue,
        store=list,
        report=broker.reports.append,
    )
    tap.run(should_stop=lambda: len(broker.reports) >= 2)
    assert "NOT_FOUND - no exchange" in broker.reports[0] and "reconnecting in 0.5s" in broker.reports[0]
    assert "reconnecting in 1s" in broker.reports[1]


@pytest.mark.rabbitmq
def test_queue_depths_count_ready_messages_and_leave_a_missing_queue_out(broker):
    broker.publish(checkout(order_key())[0], "binary")
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    assert queue_depths(settings.RABBITMQ_URL, [broker.service_queue, missing]) == {
        broker.service_queue: {"ready": 1, "consumers": 0}
    }


def tap_batches(tap: str, outcome: str) -> tuple[float, float]:
    """This process's ``choreoscope_ingest_request_bytes`` of ``tap_<tap>``: (batches, bytes)."""
    labels = {"endpoint": f"tap_{tap}", "outcome": outcome}
    count = REGISTRY.get_sample_value("choreoscope_ingest_request_bytes_count", labels) or 0.0
    return count, REGISTRY.get_sample_value("choreoscope_ingest_request_bytes_sum", labels) or 0.0


def rejected_by_tap(tap: str) -> float:
    """This process's ``choreoscope_tap_messages_total`` of rejected messages (as /metrics shows it)."""
    return REGISTRY.get_sample_value("choreoscope_tap_messages_total", {"tap": tap, "outcome": "rejected"}) or 0.0
