"""The NATS JetStream tap: the CloudEvents NATS binding decoded, and, against a real NATS server
with JetStream and a real publisher (nats-py), the checkout choreography stored as the same flows
as over HTTP, at least once, while the services' own consumer still gets every message."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command

from choreoscope.metrics import REGISTRY
from collectors.taps.base import BadMessage
from collectors.taps.nats import NatsTap, consumer_pending, nats_record
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
SERVICE_CONSUMER = "email"


# --- decoding ------------------------------------------------------------------------------------


def test_binary_mode_takes_attributes_from_ce_headers_and_the_media_type_from_content_type():
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "n-1",
        "ce-source": "/checkout",
        "ce-type": "OrderCreated",
        "ce-correlationid": "order-3",
        "Content-Type": "application/json",
        "traceparent": TRACEPARENT,
    }
    record = nats_record(headers, b'{"order_id": 3}', received_ns=1)
    assert (record.event_id, record.name, record.detail["data"]) == ("n-1", "OrderCreated", {"order_id": 3})
    assert record.trace_id == "0af7651916cd43dd8448eb211c80319c" and record.attributes["correlationid"] == "order-3"


def test_structured_mode_reads_the_payload_with_or_without_a_content_type():
    event = checkout("order-4")[0]
    assert nats_record(None, event.structured(), received_ns=1).event_id == "order-4-OrderCreated"
    with_type = nats_record({"Content-Type": "application/cloudevents+json"}, event.structured(), received_ns=1)
    assert with_type.name == "OrderCreated"


@pytest.mark.parametrize(
    ("headers", "payload", "reason"),
    [
        ({}, b"plain text", "the body is not JSON"),
        ({}, b"[1, 2]", "must be a JSON object"),
        ({"ce-specversion": "1.0", "ce-id": "x"}, b"", "required attribute 'source' is missing"),
        ({"ce-specversion": "1.0", "ce-data_base64": "x"}, b"", "'data_base64' is not an attribute"),
    ],
)
def test_a_message_that_is_not_a_valid_cloudevent_says_why(headers, payload, reason):
    with pytest.raises(BadMessage, match=reason):
        nats_record(headers, payload, received_ns=1)


# --- against a real NATS server with JetStream ---------------------------------------------------


@dataclass
class Stream:
    """A JetStream stream of the test's own with a services' durable consumer on it."""

    name: str
    subject: str
    reports: list[str] = field(default_factory=list)

    def publish(self, events: list[BusEvent], mode: str) -> None:
        messages: list[tuple[bytes, dict[str, str] | None]] = []
        for event in events:
            if mode == "binary":
                headers = {f"ce-{name}": value for name, value in event.attributes.items()}
                messages.append((event.body, {**headers, "Content-Type": "application/json", "traceparent": event.traceparent}))
            else:
                messages.append(
                    (event.structured(), {"Content-Type": "application/cloudevents+json", "traceparent": event.traceparent})
                )
        self.publish_raw(messages)

    def publish_raw(self, messages: list[tuple[bytes, dict[str, str] | None]]) -> None:
        async def publish() -> None:
            client, jetstream = await connected()
            for payload, headers in messages:
                await jetstream.publish(f"{self.subject}.orders", payload, headers=headers)
            await client.close()

        asyncio.run(publish())

    def tap(self, store=store_observations, **options) -> NatsTap:
        options.setdefault("block_seconds", 1.5)
        options.setdefault("ack_wait_seconds", 1.0)
        return NatsTap(url=settings.NATS_URL, streams=[self.name], store=store, report=self.reports.append, **options)

    def service_messages(self) -> int:
        """How many messages the services' consumer gets (fetched and acknowledged)."""

        async def drain() -> int:
            import nats.errors

            client, jetstream = await connected()
            subscription = await jetstream.pull_subscribe_bind(durable=SERVICE_CONSUMER, stream=self.name)
            count = 0
            while True:
                try:
                    batch = await subscription.fetch(100, timeout=1)
                except (TimeoutError, nats.errors.TimeoutError):  # nats-py raises either when nothing came
                    break
                for message in batch:
                    await message.ack()
                count += len(batch)
            await client.close()
            return count

        return asyncio.run(drain())


async def connected():
    import nats

    client = await nats.connect(settings.NATS_URL)
    return client, client.jetstream()


@pytest.fixture
def stream() -> Iterator[Stream]:
    from nats.js.api import ConsumerConfig

    suffix = uuid.uuid4().hex[:10]
    made = Stream(f"TEST_ORDERS_{suffix}", f"test.{suffix}")

    async def create() -> None:
        client, jetstream = await connected()
        await jetstream.add_stream(name=made.name, subjects=[f"{made.subject}.>"])
        await jetstream.add_consumer(made.name, ConsumerConfig(durable_name=SERVICE_CONSUMER))
        await client.close()

    async def delete() -> None:
        client, jetstream = await connected()
        await jetstream.delete_stream(made.name)
        await client.close()

    asyncio.run(create())
    yield made
    asyncio.run(delete())


def order_key() -> str:
    return f"order-{uuid.uuid4().hex[:10]}"


@pytest.mark.nats
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_the_checkout_choreography_through_jetstream_makes_the_same_flow_as_over_http(stream, admin_client, mode):
    key = order_key()
    events = checkout(key)
    stream.publish(events, mode)
    tap = stream.tap()
    tap.run(should_stop=lambda: False, exit_when_idle=True)

    assert (tap.stored, tap.rejected) == (len(events), 0)
    assert flow_shape(admin_client, key) == http_flow_shape(admin_client, order_key())
    created = Observation.objects.get(event_id=f"{key}-OrderCreated")
    assert created.trace_id == events[0].traceparent.split("-")[1]  # from the message's traceparent header
    lag = consumer_pending(settings.NATS_URL, [stream.name])[stream.name]
    assert lag["choreoscope-tap"] == {"pending": 0, "unacked": 0}
    assert lag[SERVICE_CONSUMER]["pending"] == len(events)  # the services' consumer has not read yet: its lag shows
    assert stream.service_messages() == len(events)  # and it still gets every message


@pytest.mark.nats
@pytest.mark.django_db(transaction=True)
def test_a_tap_stopped_mid_stream_and_one_that_died_before_acknowledging_lose_and_duplicate_nothing(stream):
    keys = [order_key() for _ in range(6)]
    stream.publish([event for key in keys for event in checkout(key)], "binary")

    runs = stop_crash_and_restart(stream.tap, total=len(keys) * 5)
    assert runs.last == len(keys) * 5 - runs.first  # including those the crashed tap stored, redelivered
    stored = list(Observation.objects.values_list("event_id", flat=True))
    assert sorted(stored) == sorted(f"{key}-{name}" for key in keys for name, _, _ in CHECKOUT_STEPS)
    assert consumer_pending(settings.NATS_URL, [stream.name])[stream.name]["choreoscope-tap"] == {"pending": 0, "unacked": 0}
    assert stream.service_messages() == len(keys) * 5


@pytest.mark.nats
@pytest.mark.django_db(transaction=True)
def test_messages_that_are_not_cloudevents_are_terminated_counted_and_reported_with_why(stream):
    before = rejected_by_tap("nats")
    seconds_before = REGISTRY.get_sample_value("choreoscope_ingest_request_seconds_count", PARTIAL_NATS_BATCH) or 0.0
    good = checkout(order_key())[0]
    stream.publish_raw([(b"not json", None), (b"", {"ce-specversion": "1.0", "ce-id": "x"}), (good.structured(True), None)])
    tap = stream.tap()
    tap.run(should_stop=lambda: False, exit_when_idle=True)

    assert (tap.stored, tap.rejected) == (1, 2)
    after = rejected_by_tap("nats")
    assert after - before == 2
    # The batch is timed like an ingest request, as endpoint tap_nats.
    assert REGISTRY.get_sample_value("choreoscope_ingest_request_seconds_count", PARTIAL_NATS_BATCH) == seconds_before + 1
    assert any("the body is not JSON" in report for report in stream.reports)
    assert any("required attribute 'source' is missing" in report for report in stream.reports)
    again = stream.tap()
    again.run(should_stop=lambda: False, exit_when_idle=True)  # terminated messages never come back
    assert (again.stored, again.rejected) == (0, 0)


@pytest.mark.nats
@pytest.mark.django_db(transaction=True)
def test_the_tap_command_reads_a_stream_through_its_own_durable_consumer(stream):
    stream.publish(checkout(order_key()), "structured")
    out = StringIO()
    call_command("tap", "nats", stream.name, "--exit-when-idle", "--block", "1", "--durable", "test-tap", stdout=out)
    assert "Stored 5 event(s), rejected 0." in out.getvalue()


@pytest.mark.nats
def test_a_missing_stream_is_retried_with_backoff_and_said(stream):
    tap = NatsTap(url=settings.NATS_URL, streams=[f"MISSING_{uuid.uuid4().hex[:8]}"], store=list, report=stream.reports.append)
    tap.run(should_stop=lambda: len(stream.reports) >= 2)
    assert "stream not found" in stream.reports[0] and "reconnecting in 0.5s" in stream.reports[0]
    assert "reconnecting in 1s" in stream.reports[1]


PARTIAL_NATS_BATCH = {"endpoint": "tap_nats", "outcome": "partial"}


def rejected_by_tap(tap: str) -> float:
    """This process's ``choreoscope_tap_messages_total`` of rejected messages (as /metrics shows it)."""
    return REGISTRY.get_sample_value("choreoscope_tap_messages_total", {"tap": tap, "outcome": "rejected"}) or 0.0
