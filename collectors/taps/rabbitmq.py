"""The RabbitMQ tap: CloudEvents published to exchanges, read through a durable queue of the
tap's own bound to each of them, so the services' own queues keep every message.

CloudEvents AMQP binding, as RabbitMQ (AMQP 0-9-1) carries it:
- binary mode: each attribute in an application property (header) ``cloudEvents:<name>`` (the
  ``cloudEvents_`` prefix of JMS-friendly publishers is accepted too), the message's
  ``content_type`` is the ``datacontenttype`` and the body is the data;
- structured mode: ``content_type`` ``application/cloudevents+json`` and the event in the body.
A W3C ``traceparent`` header (OpenTelemetry's messaging instrumentations put one there) counts
as the event's distributed-tracing extension when the event has none.

Delivery: manual acknowledgement after the batch is committed; a message that is not a valid
CloudEvent is rejected without requeue (the queue may dead-letter it) and counted; the prefetch
window bounds what is in flight. A message the tap read but did not acknowledge before a crash
or a lost connection is delivered again, and the idempotent store keeps one copy.
"""

from __future__ import annotations

import contextlib
import datetime
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from collectors.cloudevents import STRUCTURED, binary_data
from collectors.taps.base import BadMessage, Tap, decode_messages, structured_event, validated_record
from tracing.records import ObservationRecord

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
BINARY_PREFIXES = ("cloudEvents:", "cloudEvents_")
DEFAULT_QUEUE = "choreoscope-tap"


def property_text(name: str, value: Any) -> Any:
    """An application property's value as a CloudEvents attribute value: AMQP strings, booleans
    and integers as they are, a timestamp as RFC 3339 text, bytes as UTF-8 text."""
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, datetime.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
        return moment.isoformat().replace("+00:00", "Z")
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise BadMessage(f"application property '{name}' is not UTF-8 text") from None
    raise BadMessage(f"application property '{name}' must be a string, a boolean, an integer or a timestamp")


def binary_event(headers: Mapping[str, Any], content_type: str, body: bytes) -> dict[str, Any]:
    event: dict[str, Any] = {}
    for name, value in headers.items():
        prefix = next((prefix for prefix in BINARY_PREFIXES if name.startswith(prefix)), None)
        if prefix is None or len(name) == len(prefix):
            continue
        attribute = name[len(prefix) :].lower()
        if attribute in ("data", "data_base64"):
            raise BadMessage(f"application property '{name}' is not allowed: '{attribute}' is not an attribute")
        event[attribute] = property_text(name, value)
    if content_type:
        event["datacontenttype"] = content_type
    event.update(binary_data(body, content_type))
    return event


def is_binary(headers: Mapping[str, Any]) -> bool:
    return any(f"{prefix}specversion" in headers for prefix in BINARY_PREFIXES)


def amqp_event(headers: Mapping[str, Any], content_type: str, body: bytes) -> dict[str, Any]:
    """The CloudEvent (as a structured-mode dict) one AMQP message holds, in either mode."""
    essence = content_type.split(";")[0].strip().lower()
    if essence == STRUCTURED:
        return structured_event(body)
    if is_binary(headers):
        return binary_event(headers, content_type, body)
    raise BadMessage(
        f"not a CloudEvent: no 'cloudEvents:specversion' application property, and the content type "
        f"{content_type or '(none)'!r} is not {STRUCTURED}"
    )


def amqp_record(headers: Mapping[str, Any] | None, content_type: str | None, body: bytes, received_ns: int) -> ObservationRecord:
    headers = headers or {}
    traceparent = headers.get("traceparent")
    event = amqp_event(headers, content_type or "", body)
    return validated_record(event, received_ns, traceparent if isinstance(traceparent, str) else None)


@dataclass(frozen=True, slots=True)
class AmqpMessage:
    delivery_tag: int
    exchange: str
    routing_key: str
    headers: Mapping[str, Any] | None
    content_type: str | None
    body: bytes

    def describe(self) -> str:
        return f"message {self.delivery_tag} from exchange {self.exchange!r} (routing key {self.routing_key!r})"


def decode_amqp(message: AmqpMessage, received_ns: int) -> ObservationRecord:
    return amqp_record(message.headers, message.content_type, message.body, received_ns)


@dataclass
class RabbitTap(Tap):
    """Binds the durable ``queue`` to ``exchanges`` and stores what arrives, batch by batch."""

    kind = "rabbitmq"

    url: str
    exchanges: list[str]
    store: Any
    report: Any
    queue: str = DEFAULT_QUEUE
    binding_key: str = "#"
    batch_size: int = 500  # also the prefetch window: at most this many unacknowledged messages
    block_seconds: float = 2.0
    stored: int = 0
    rejected: int = 0
    _connection: Any = None
    _channel: Any = None
    _inbox: list[AmqpMessage] = field(default_factory=list)

    def connect(self) -> None:
        import pika

        self._connection = pika.BlockingConnection(pika.URLParameters(self.url))
        self._channel = self._connection.channel()
        self._channel.basic_qos(prefetch_count=self.batch_size)
        self._channel.queue_declare(self.queue, durable=True)
        for exchange in self.exchanges:
            # The exchange belongs to the services: a missing one is an error (retried with
            # backoff), never created here with a type that might not be theirs.
            self._channel.exchange_declare(exchange, passive=True)
            self._channel.queue_bind(self.queue, exchange, routing_key=self.binding_key)
        self._inbox = []
        self._channel.basic_consume(self.queue, self._receive, auto_ack=False)

    def _receive(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        self._inbox.append(
            AmqpMessage(
                method.delivery_tag, method.exchange, method.routing_key, properties.headers, properties.content_type, body
            )
        )

    def fetch(self) -> list[AmqpMessage]:
        """Wait up to ``block_seconds`` for the first message, then take what else has arrived."""
        deadline = time.monotonic() + self.block_seconds
        while not self._inbox and (left := deadline - time.monotonic()) > 0:
            self._connection.process_data_events(time_limit=min(left, 0.5))
        while len(self._inbox) < self.batch_size:
            before = len(self._inbox)
            self._connection.process_data_events(time_limit=0)
            if len(self._inbox) == before:
                break
        batch, self._inbox = self._inbox[: self.batch_size], self._inbox[self.batch_size :]
        return batch

    def poll(self) -> int:
        messages = self.fetch()
        if not messages:
            return 0
        settled = decode_messages(messages, decode_amqp, size=lambda message: len(message.body))
        self.settle(settled, describe=AmqpMessage.describe)
        for message, _reason in settled.rejected:
            self._channel.basic_reject(message.delivery_tag, requeue=False)
        for message in settled.accepted:
            self._channel.basic_ack(message.delivery_tag)
        return len(messages)

    def disconnect(self) -> None:
        connection, self._connection, self._channel, self._inbox = self._connection, None, None, []
        if connection is not None and connection.is_open:
            with contextlib.suppress(Exception):  # a broken connection is being dropped anyway
                connection.close()


def queue_depths(url: str, queues: list[str], timeout: float = 10.0) -> dict[str, dict[str, int]]:
    """{queue: {"ready": messages waiting, "consumers": consumers attached}} for the named queues
    (a missing one is left out), giving up after ``timeout`` seconds without an answer. AMQP's
    queue.declare (passive) tells only ready messages; unacknowledged ones need the management
    plugin's HTTP API."""
    import pika
    import pika.exceptions

    depths = {}
    parameters = pika.URLParameters(url)
    parameters.socket_timeout = parameters.stack_timeout = parameters.blocked_connection_timeout = timeout
    with pika.BlockingConnection(parameters) as connection:
        for queue in queues:
            channel = connection.channel()
            try:
                answer = channel.queue_declare(queue, passive=True).method
            except pika.exceptions.ChannelClosedByBroker:
                continue  # no such queue: the broker closed the channel
            depths[queue] = {"ready": answer.message_count, "consumers": answer.consumer_count}
            channel.close()
    return depths
