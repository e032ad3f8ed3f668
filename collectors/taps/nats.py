"""The NATS JetStream tap: CloudEvents stored in JetStream streams, read through a durable pull
consumer of the tap's own on each stream, so the services' consumers keep every message.

CloudEvents NATS binding:
- binary mode: each attribute in a ``ce-<name>`` header, ``Content-Type`` is the
  ``datacontenttype`` and the payload is the data;
- structured mode: the event as JSON in the payload (``Content-Type``
  ``application/cloudevents+json``, or no ``ce-specversion`` header).
A W3C ``traceparent`` header counts as the event's distributed-tracing extension when the event
has none.

Delivery: explicit acknowledgement after the batch is committed; a message that is not a valid
CloudEvent is terminated (never redelivered) and counted. What the tap fetched but did not
acknowledge is redelivered by JetStream after the consumer's ack wait, and the idempotent store
keeps one copy.

The tap's loop is synchronous, like the other taps and the database writes; nats-py is asyncio,
so the tap drives its own event loop, one call at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from collectors.cloudevents import STRUCTURED, binary_data
from collectors.taps.base import BadMessage, Tap, decode_messages, structured_event, validated_record
from tracing.records import ObservationRecord

DEFAULT_URL = "nats://127.0.0.1:4222"
DEFAULT_DURABLE = "choreoscope-tap"


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, whatever its case (NATS headers keep the case they were sent with)."""
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def binary_event(headers: Mapping[str, str], payload: bytes) -> dict[str, Any]:
    event: dict[str, Any] = {}
    for name, value in headers.items():
        lower = name.lower()
        if not lower.startswith("ce-") or len(lower) == 3:
            continue
        attribute = lower[3:]
        if attribute in ("data", "data_base64"):
            raise BadMessage(f"header '{name}' is not allowed: '{attribute}' is not an attribute")
        event[attribute] = value
    content_type = header(headers, "content-type") or ""
    if content_type:
        event["datacontenttype"] = content_type
    event.update(binary_data(payload, content_type))
    return event


def nats_event(headers: Mapping[str, str], payload: bytes) -> dict[str, Any]:
    """The CloudEvent (as a structured-mode dict) one NATS message holds, in either mode."""
    content_type = (header(headers, "content-type") or "").split(";")[0].strip().lower()
    if content_type != STRUCTURED and header(headers, "ce-specversion") is not None:
        return binary_event(headers, payload)
    return structured_event(payload)


def nats_record(headers: Mapping[str, str] | None, payload: bytes, received_ns: int) -> ObservationRecord:
    headers = headers or {}
    return validated_record(nats_event(headers, payload), received_ns, header(headers, "traceparent"))


@dataclass
class Fetched:
    """One JetStream message and the stream it came from."""

    stream: str
    message: Any  # nats.aio.msg.Msg

    def describe(self) -> str:
        sequence = getattr(self.message.metadata.sequence, "stream", "?")
        return f"message {sequence} of stream {self.stream!r} (subject {self.message.subject!r})"


def decode_fetched(fetched: Fetched, received_ns: int) -> ObservationRecord:
    return nats_record(fetched.message.headers, fetched.message.data, received_ns)


async def connect(url: str, timeout: float) -> Any:
    """A connection that fails within about ``timeout`` seconds when the server does not answer.
    nats-py keeps trying an unreachable server ``max_reconnect_attempts`` times even for the first
    connection (a minute by default), and logs every try; the callers retry on their own."""
    import nats

    async def quiet(error: Exception) -> None:
        return None

    return await nats.connect(
        url,
        allow_reconnect=False,
        connect_timeout=max(1, round(timeout)),
        max_reconnect_attempts=1,
        reconnect_time_wait=0.1,
        error_cb=quiet,
    )


@dataclass
class NatsTap(Tap):
    """Reads ``streams`` through the durable pull consumer ``durable`` on each."""

    kind = "nats"

    url: str
    streams: list[str]
    store: Any
    report: Any
    durable: str = DEFAULT_DURABLE
    batch_size: int = 500
    block_seconds: float = 2.0
    ack_wait_seconds: float = 60.0  # unacknowledged longer than this: JetStream delivers it again
    stored: int = 0
    rejected: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _client: Any = None
    _subscriptions: dict[str, Any] = field(default_factory=dict)

    def _call(self, coroutine: Any) -> Any:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coroutine)

    def connect(self) -> None:
        self._call(self._connect())

    async def _connect(self) -> None:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        # No client-side reconnection: a lost connection surfaces as an error, and the run loop
        # reconnects with backoff and reads again what was not acknowledged.
        self._client = await connect(self.url, timeout=5)
        jetstream = self._client.jetstream()
        config = ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait_seconds,
            max_ack_pending=max(self.batch_size * 2, 1000),
        )
        self._subscriptions = {}
        for stream in self.streams:
            await jetstream.add_consumer(stream, config)  # the same config again changes nothing
            self._subscriptions[stream] = await jetstream.pull_subscribe_bind(durable=self.durable, stream=stream)

    async def _fetch_from(self, stream: str) -> list[Fetched]:
        import nats.errors

        try:
            messages = await self._subscriptions[stream].fetch(self.batch_size, timeout=self.block_seconds)
        except (TimeoutError, nats.errors.TimeoutError):  # nats-py raises either when nothing came
            return []
        return [Fetched(stream, message) for message in messages]

    async def _fetch(self) -> list[Fetched]:
        batches = await asyncio.gather(*(self._fetch_from(stream) for stream in self.streams))
        return [fetched for batch in batches for fetched in batch]

    async def _settle_on_broker(self, accepted: list[Fetched], rejected: list[Fetched]) -> None:
        for fetched in rejected:
            await fetched.message.term()
        for fetched in accepted:
            await fetched.message.ack()
        await self._client.flush()

    def poll(self) -> int:
        messages = self._call(self._fetch())
        if not messages:
            return 0
        settled = decode_messages(messages, decode_fetched, size=lambda fetched: len(fetched.message.data or b""))
        self.settle(settled, describe=Fetched.describe)
        self._call(self._settle_on_broker(settled.accepted, [fetched for fetched, _ in settled.rejected]))
        return len(messages)

    def disconnect(self) -> None:
        client, self._client, self._subscriptions = self._client, None, {}
        if client is not None and self._loop is not None:
            with contextlib.suppress(Exception):  # a broken connection is being dropped anyway
                self._call(client.close())
        if self._loop is not None:
            self._loop.close()
            self._loop = None


async def _consumer_pending(url: str, streams: list[str], timeout: float) -> dict[str, dict[str, dict[str, int]]]:
    import nats.js.errors

    client = await connect(url, timeout)
    try:
        jetstream = client.jetstream(timeout=timeout)
        lags: dict[str, dict[str, dict[str, int]]] = {}
        for stream in streams:
            try:
                consumers = await jetstream.consumers_info(stream)
            except nats.js.errors.NotFoundError:
                continue
            lags[stream] = {
                info.name: {"pending": int(info.num_pending or 0), "unacked": int(info.num_ack_pending or 0)}
                for info in consumers
            }
        return lags
    finally:
        await client.close()


def consumer_pending(url: str, streams: list[str], timeout: float = 5.0) -> dict[str, dict[str, dict[str, int]]]:
    """{stream: {consumer: {"pending": messages not yet delivered to it, "unacked": delivered
    but not acknowledged}}} for every consumer of each stream (a missing stream is left out)."""
    return asyncio.run(_consumer_pending(url, streams, timeout))
