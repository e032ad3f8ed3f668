"""The event bus the shop's services talk over: Redis Streams when REDIS_URL is set, an
in-process bus otherwise. Same shape either way: a service subscribes its consumer group to
topics, receives deliveries, acknowledges them once handled.

A message is a structured CloudEvent (JSON bytes), so whatever else reads the bus, such as
Choreoscope's ``tap redis-stream``, sees the same events the services do.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections import defaultdict
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
