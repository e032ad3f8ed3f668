"""The lag sources of the buses the web process is told to watch (``CHOREOSCOPE_WATCH_*``),
registered with ``tracing.queue_lag`` when the collectors app is ready.

- Redis Streams: every consumer group of each watched stream; ``waiting`` is what the group has
  not yet been delivered, ``unacknowledged`` its pending entries.
- RabbitMQ: each watched queue; ``waiting`` is its ready messages (AMQP ``queue.declare``,
  passive). AMQP does not tell how many are delivered but unacknowledged (that needs the
  management plugin's HTTP API), so ``unacknowledged`` is unknown.
- NATS JetStream: every consumer of each watched stream; ``waiting`` is its pending messages,
  ``unacknowledged`` its ack-pending ones.

A consumer group or durable consumer counts as the service of the same name on the map; a
RabbitMQ queue is named ``SERVICE=QUEUE`` to say whose it is (else the queue's own name).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from tracing.queue_lag import QueueLag, register_lag_source

READ_TIMEOUT_SECONDS = 2.0  # a page waits at most this long for a broker that does not answer


def watched_queue(spec: str) -> tuple[str, str]:
    """``"email=shop.email"`` → ``("email", "shop.email")``; ``"shop.email"`` → the queue for both."""
    service, sep, queue = spec.partition("=")
    if not sep:
        return spec, spec
    if not service.strip() or not queue.strip():
        raise ImproperlyConfigured(
            f"CHOREOSCOPE_WATCH_RABBITMQ_QUEUES item {spec!r} must be QUEUE or SERVICE=QUEUE, both parts non-empty."
        )
    return service.strip(), queue.strip()


def stream_readings(lags: dict[str, dict[str, dict[str, int]]]) -> Iterable[QueueLag]:
    """Redis Streams' ``{stream: {group: {"lag", "pending"}}}`` as readings."""
    for stream, groups in lags.items():
        for group, lag in groups.items():
            yield QueueLag("redis-stream", stream, group, lag["lag"], lag["pending"], group)


def queue_readings(depths: dict[str, dict[str, int]], services: dict[str, str]) -> Iterable[QueueLag]:
    """RabbitMQ's ``{queue: {"ready", "consumers"}}`` as readings; ``services`` names each queue's service."""
    for queue, depth in depths.items():
        service = services.get(queue, queue)
        yield QueueLag("rabbitmq", queue, service, depth["ready"], None, service)


def jetstream_readings(pending: dict[str, dict[str, dict[str, int]]]) -> Iterable[QueueLag]:
    for stream, consumers in pending.items():
        for consumer, lag in consumers.items():
            yield QueueLag("nats", stream, consumer, lag["pending"], lag["unacked"], consumer)


def redis_source(url: str, streams: list[str]) -> Callable[[], list[QueueLag]]:
    from collectors.taps.redis_streams import stream_lag

    def read() -> list[QueueLag]:
        import redis

        client: Any = redis.Redis.from_url(url, socket_timeout=READ_TIMEOUT_SECONDS, socket_connect_timeout=READ_TIMEOUT_SECONDS)
        try:
            return list(stream_readings({stream: stream_lag(client, stream) for stream in streams}))
        finally:
            client.close()

    return read


def rabbitmq_source(url: str, specs: list[str]) -> Callable[[], list[QueueLag]]:
    from collectors.taps.rabbitmq import queue_depths

    services = {queue: service for service, queue in map(watched_queue, specs)}

    def read() -> list[QueueLag]:
        return list(queue_readings(queue_depths(url, list(services), timeout=READ_TIMEOUT_SECONDS), services))

    return read


def nats_source(url: str, streams: list[str]) -> Callable[[], list[QueueLag]]:
    from collectors.taps.nats import consumer_pending

    def read() -> list[QueueLag]:
        return list(jetstream_readings(consumer_pending(url, streams, timeout=READ_TIMEOUT_SECONDS)))

    return read


def register_watched_buses() -> None:
    """One lag source per bus the settings name destinations of."""
    if settings.WATCH_REDIS_STREAMS:
        if not settings.REDIS_URL:
            raise ImproperlyConfigured("CHOREOSCOPE_WATCH_REDIS_STREAMS needs REDIS_URL: the Redis those streams live in.")
        register_lag_source("redis-stream", redis_source(settings.REDIS_URL, settings.WATCH_REDIS_STREAMS))
    if settings.WATCH_RABBITMQ_QUEUES:
        register_lag_source("rabbitmq", rabbitmq_source(settings.RABBITMQ_URL, settings.WATCH_RABBITMQ_QUEUES))
    if settings.WATCH_NATS_STREAMS:
        register_lag_source("nats", nats_source(settings.NATS_URL, settings.WATCH_NATS_STREAMS))
