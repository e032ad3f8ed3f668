"""The event bus the shop's services talk over (``DEMO_BUS``): Redis Streams, RabbitMQ, or an
in-process bus. Same shape whichever: a service subscribes its consumer group to topics,
receives deliveries, acknowledges them once handled.

A message is a structured CloudEvent (JSON bytes), so whatever else reads the bus, such as
Choreoscope's ``tap redis-stream`` or ``tap rabbitmq``, sees the same events the services do.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import queue
import threading
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any, Protocol

# The entry field holding the structured CloudEvent (what `manage.py tap redis-stream` reads).
STREAM_FIELD = "cloudevent"
STREAM_MAXLEN = 50_000
BACKLOG_COUNT_LIMIT = 10_000  # a backlog is reported as "at least this" beyond it


@dataclass(frozen=True, slots=True)
class Delivery:
    topic: str
    payload: bytes
    delivery_id: str


class EventBus(Protocol):
    system: str

    def subscribe(self, group: str, topics: tuple[str, ...]) -> None: ...
    def publish(self, topic: str, payload: bytes) -> None: ...
    def receive(self, group: str, count: int, timeout: float) -> list[Delivery]: ...
    def ack(self, group: str, delivery: Delivery) -> None: ...
    def backlog(self, group: str) -> int: ...
    def destination(self, topic: str) -> str: ...
    def close(self) -> None: ...


class InProcessBus:
    """One queue per consumer group; a group sees what is published after it subscribed."""

    system = "in-process"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups_by_topic: dict[str, set[str]] = defaultdict(set)
        self._queues: dict[str, queue.Queue[Delivery]] = {}
        self._ids = itertools.count(1)

    def subscribe(self, group: str, topics: tuple[str, ...]) -> None:
        with self._lock:
            self._queues.setdefault(group, queue.Queue())
            for topic in topics:
                self._groups_by_topic[topic].add(group)

    def publish(self, topic: str, payload: bytes) -> None:
        with self._lock:
            delivery = Delivery(topic, payload, str(next(self._ids)))
            targets = [self._queues[group] for group in self._groups_by_topic.get(topic, ())]
        for target in targets:
            target.put(delivery)

    def receive(self, group: str, count: int, timeout: float) -> list[Delivery]:
        inbox = self._queues[group]
        try:
            deliveries = [inbox.get(timeout=timeout)]
        except queue.Empty:
            return []
        while len(deliveries) < count:
            try:
                deliveries.append(inbox.get_nowait())
            except queue.Empty:
                break
        return deliveries

    def ack(self, group: str, delivery: Delivery) -> None:
        """Nothing to do: a delivery left the queue when it was received."""

    def backlog(self, group: str) -> int:
        inbox = self._queues.get(group)
        return inbox.qsize() if inbox else 0

    def destination(self, topic: str) -> str:
        return topic

    def close(self) -> None:
        pass


class RedisStreamBus:
    """A stream per topic and a consumer group per service (XREADGROUP / XACK), so a service
    that goes offline finds its backlog waiting when it comes back."""

    system = "redis"

    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=10, health_check_interval=30)
        self._prefix = prefix
        self._topics: dict[str, tuple[str, ...]] = {}

    def destination(self, topic: str) -> str:
        return stream_name(self._prefix, topic)

    def subscribe(self, group: str, topics: tuple[str, ...]) -> None:
        import redis

        self._topics[group] = topics
        for topic in topics:
            try:
                # "$": a new subscriber starts with what is published from now on.
                self._redis.xgroup_create(self.destination(topic), group, id="$", mkstream=True)
            except redis.ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise

    def publish(self, topic: str, payload: bytes) -> None:
        self._redis.xadd(self.destination(topic), {STREAM_FIELD: payload}, maxlen=STREAM_MAXLEN, approximate=True)

    def receive(self, group: str, count: int, timeout: float) -> list[Delivery]:
        streams: dict[Any, Any] = {self.destination(topic): ">" for topic in self._topics[group]}
        answer: Any = self._redis.xreadgroup(group, f"{group}-1", streams, count=count, block=max(1, int(timeout * 1000)))
        deliveries = []
        for stream, entries in answer or []:
            topic = stream.decode().rsplit(":", 1)[-1]
            for entry_id, fields in entries:
                if fields and STREAM_FIELD.encode() in fields:
                    deliveries.append(Delivery(topic, fields[STREAM_FIELD.encode()], entry_id.decode()))
        return deliveries

    def ack(self, group: str, delivery: Delivery) -> None:
        self._redis.xack(self.destination(delivery.topic), group, delivery.delivery_id)

    def backlog(self, group: str) -> int:
        return sum(stream_backlog(self._redis, self.destination(topic), group) for topic in self._topics.get(group, ()))

    def has_group(self, topic: str, group: str) -> bool:
        import redis

        try:
            return any(redis_str(info["name"]) == group for info in self._redis.xinfo_groups(self.destination(topic)))
        except redis.ResponseError:  # no such stream yet
            return False

    def unread(self, topics: tuple[str, ...], group: str | None = None) -> int:
        """Entries ``group`` (by default: any reader, a tap included) has not yet handled."""
        return sum(stream_backlog(self._redis, self.destination(topic), group) for topic in topics)

    def close(self) -> None:
        self._redis.close()


def stream_name(prefix: str, topic: str) -> str:
    return f"{prefix}:shop:{topic}"


def redis_str(value: bytes | str) -> str:
    """A name Redis answered with (group, entry id): bytes unless the client decodes."""
    return value.decode() if isinstance(value, bytes) else value


def stream_backlog(client: Any, stream: str, group: str | None) -> int:
    """Not yet delivered plus delivered but not acknowledged (pending), for one group or summed
    over all groups of the stream. Undelivered entries are counted from the group's
    last-delivered id rather than taken from XINFO's ``lag``, which Redis 7.0 can report stale."""
    import redis

    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError:
        return 0
    total = 0
    for info in groups:
        if group is None or redis_str(info["name"]) == group:
            last = redis_str(info["last-delivered-id"])
            undelivered = client.xrange(stream, min=f"({last}", max="+", count=BACKLOG_COUNT_LIMIT)
            total += len(undelivered) + int(info.get("pending") or 0)
    return total


# --- RabbitMQ ------------------------------------------------------------------------------------

STRUCTURED_CLOUDEVENT = "application/cloudevents+json"
RABBIT_PREFETCH = 16  # as many as a service has workers: the rest waits in its queue, where it shows as lag


def exchange_name(prefix: str, topic: str) -> str:
    return f"{prefix}.shop.{topic}"


def queue_name(prefix: str, group: str) -> str:
    return f"{prefix}.shop.{group}"


class RabbitBus:
    """A durable topic exchange per topic and a durable queue per service bound to the exchanges
    of its topics, so a service that goes offline finds its messages waiting in its queue. The
    message is the structured CloudEvent (content type ``application/cloudevents+json``,
    persistent), as the CloudEvents AMQP binding's structured mode has it.

    pika's connections belong to one thread each: the services' publishing threads share one
    connection under a lock; each service's consumer thread owns its own, and its worker
    threads' acknowledgements are handed to that thread (``add_callback_threadsafe``)."""

    system = "rabbitmq"

    def __init__(self, url: str, prefix: str) -> None:
        self._url = url
        self._prefix = prefix
        self._lock = threading.Lock()
        self._connection: Any = None
        self._channel: Any = None
        self._consumers: dict[str, RabbitConsumer] = {}

    def destination(self, topic: str) -> str:
        return exchange_name(self._prefix, topic)

    def queue(self, group: str) -> str:
        return queue_name(self._prefix, group)

    def declare_topics(self, topics: tuple[str, ...]) -> None:
        """The exchanges of ``topics`` (a tap binds to them only once they exist)."""

        def declare(channel: Any) -> None:
            for topic in topics:
                self._declare_exchange(channel, topic)

        self._with_channel(declare)

    def subscribe(self, group: str, topics: tuple[str, ...]) -> None:
        def declare(channel: Any) -> None:
            channel.queue_declare(self.queue(group), durable=True)
            for topic in topics:
                self._declare_exchange(channel, topic)
                channel.queue_bind(self.queue(group), self.destination(topic), routing_key="#")

        self._with_channel(declare)
        topic_of = {self.destination(topic): topic for topic in topics}
        self._consumers[group] = RabbitConsumer(self._url, self.queue(group), topic_of)

    def publish(self, topic: str, payload: bytes) -> None:
        import pika

        properties = pika.BasicProperties(content_type=STRUCTURED_CLOUDEVENT, delivery_mode=2)
        self._with_channel(lambda channel: channel.basic_publish(self.destination(topic), topic, payload, properties))

    def receive(self, group: str, count: int, timeout: float) -> list[Delivery]:
        return self._consumers[group].receive(count, timeout)

    def ack(self, group: str, delivery: Delivery) -> None:
        self._consumers[group].ack(delivery)

    def backlog(self, group: str) -> int:
        """Ready in the service's queue, plus what its consumer holds but has not handed out."""
        consumer = self._consumers.get(group)
        return self.ready(self.queue(group)) + (len(consumer.inbox) if consumer else 0)

    def ready(self, queue: str) -> int:
        """Messages waiting in ``queue`` (AMQP's queue.declare, passive: 0 when it is missing)."""
        import pika.exceptions

        try:
            return int(self._with_channel(lambda channel: channel.queue_declare(queue, passive=True).method.message_count))
        except pika.exceptions.ChannelClosedByBroker:
            return 0

    def consumers(self, queue: str) -> int:
        return int(self._with_channel(lambda channel: channel.queue_declare(queue, passive=True).method.consumer_count))

    def close(self) -> None:
        for consumer in self._consumers.values():
            consumer.close()
        with self._lock:
            self._drop()

    def _declare_exchange(self, channel: Any, topic: str) -> None:
        channel.exchange_declare(self.destination(topic), "topic", durable=True)

    def _with_channel(self, work: Any) -> Any:
        """``work(channel)`` on the shared connection; once more on a new one if it was lost
        (an idle connection the broker dropped for missed heartbeats, a broker restart)."""
        import pika.exceptions

        with self._lock:
            for attempt in (1, 2):
                if self._channel is None or not self._channel.is_open:
                    self._drop()
                    self._connection = pika.BlockingConnection(pika.URLParameters(self._url))
                    self._channel = self._connection.channel()
                try:
                    return work(self._channel)
                except (pika.exceptions.AMQPConnectionError, pika.exceptions.StreamLostError):
                    self._drop()
                    if attempt == 2:
                        raise
                except pika.exceptions.ChannelClosedByBroker:
                    self._channel = None  # the broker closed the channel (e.g. a missing queue)
                    raise
        return None

    def _drop(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(Exception):
                connection.close()


class RabbitConsumer:
    """One service's consumer on its queue. ``receive`` runs on the service's consumer thread,
    which owns the connection; ``ack`` may come from any thread. A delivery's id carries the
    connection's generation: an acknowledgement for a connection that has since been lost is
    dropped, and the broker delivers that message again."""

    def __init__(self, url: str, queue: str, topic_of: dict[str, str]) -> None:
        self.url = url
        self.queue = queue
        self.topic_of = topic_of
        self.inbox: deque[Delivery] = deque()
        self.generation = 0
        self._connection: Any = None
        self._channel: Any = None

    def receive(self, count: int, timeout: float) -> list[Delivery]:
        import pika.exceptions

        try:
            if self._connection is None:
                self._connect()
            # Runs the acknowledgements handed over since the last call, then waits for messages.
            self._connection.process_data_events(time_limit=0)
            waited = 0.0
            while not self.inbox and waited < timeout:
                step = min(0.1, timeout - waited)
                self._connection.process_data_events(time_limit=step)
                waited += step
        except pika.exceptions.AMQPError:
            self.close()  # what was in hand is delivered again on the next connection
            raise
        return [self.inbox.popleft() for _ in range(min(count, len(self.inbox)))]

    def ack(self, delivery: Delivery) -> None:
        generation, tag = (int(part) for part in delivery.delivery_id.split(":"))
        connection = self._connection
        if connection is None or generation != self.generation:
            return
        with contextlib.suppress(Exception):  # closed meanwhile: the broker redelivers
            connection.add_callback_threadsafe(functools.partial(self._ack, generation, tag))

    def _ack(self, generation: int, tag: int) -> None:
        if generation == self.generation and self._channel is not None and self._channel.is_open:
            self._channel.basic_ack(tag)

    def _connect(self) -> None:
        import pika

        self.generation += 1
        self._connection = pika.BlockingConnection(pika.URLParameters(self.url))
        self._channel = self._connection.channel()
        self._channel.basic_qos(prefetch_count=RABBIT_PREFETCH)
        self._channel.basic_consume(self.queue, self._on_message, auto_ack=False)

    def _on_message(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        topic = self.topic_of.get(method.exchange, method.routing_key)
        self.inbox.append(Delivery(topic, body, f"{self.generation}:{method.delivery_tag}"))

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        self.inbox.clear()
        if connection is not None and connection.is_open:
            with contextlib.suppress(Exception):
                connection.close()
