"""How far the consumers of the event buses are behind: what each watched stream, queue or
durable consumer still holds for its consumer.

The readings come from the brokers, which only the collectors speak to; the service map and
``/metrics`` show them. So the registry lives here, in the domain, where both sides may reach
it: the collectors register a source per bus they are told to watch (settings), and the
dashboard reads ``current_lag()`` without importing the collectors.

Readings are taken at most every ``LAG_CACHE_SECONDS`` per process, so a page, a socket snapshot
and a scrape arriving together ask each broker once; a broker that does not answer is named in
``unavailable`` and leaves the others' readings intact.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

LAG_CACHE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class QueueLag:
    bus: str  # redis-stream, rabbitmq, nats
    destination: str  # the stream or queue
    consumer: str  # the consumer group, the queue's reader, the durable consumer
    waiting: int  # not yet delivered to the consumer
    unacknowledged: int | None  # delivered but not acknowledged; None when the bus does not say
    service: str  # the service that consumes, as the map names it (the consumer's name unless configured)

    @property
    def behind(self) -> int:
        return self.waiting + (self.unacknowledged or 0)


LagSource = Callable[[], Iterable[QueueLag]]


@dataclass(frozen=True)
class LagReadings:
    readings: list[QueueLag] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # every source asked, by name
    unavailable: list[str] = field(default_factory=list)  # those that could not be read


_lock = threading.Lock()
_sources: dict[str, LagSource] = {}
_cached: tuple[float, LagReadings] | None = None


def register_lag_source(name: str, source: LagSource) -> None:
    """Let ``source()`` report the lag of what it watches; registering a name again replaces it."""
    global _cached
    with _lock:
        _sources[name] = source
        _cached = None


def unregister_lag_source(name: str) -> None:
    global _cached
    with _lock:
        _sources.pop(name, None)
        _cached = None


def read_sources(sources: dict[str, LagSource]) -> LagReadings:
    readings: list[QueueLag] = []
    unavailable: list[str] = []
    for name, source in sorted(sources.items()):
        try:
            readings.extend(source())
        except Exception as error:  # a broker that does not answer must not hide the others
            log.warning("the queue lag of %s could not be read: %s", name, error)
            unavailable.append(name)
    readings.sort(key=lambda lag: (lag.bus, lag.destination, lag.consumer))
    return LagReadings(readings, sorted(sources), unavailable)


def current_lag(max_age: float = LAG_CACHE_SECONDS) -> LagReadings:
    """Every registered source's readings, at most ``max_age`` seconds old."""
    global _cached
    with _lock:
        if _cached is not None and time.monotonic() - _cached[0] < max_age:
            return _cached[1]
        if not _sources:
            return LagReadings()
        # Read under the lock: callers arriving meanwhile wait for this reading instead of
        # asking every broker again.
        readings = read_sources(dict(_sources))
        _cached = (time.monotonic(), readings)
        return readings
