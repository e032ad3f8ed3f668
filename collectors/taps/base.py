"""What every tap shares: decoding a batch of messages into records (keeping the bad ones apart,
with why), storing the good ones in one transaction before anything is acknowledged, counting,
and a run loop that reconnects with exponential backoff.

A tap implements ``connect``, ``poll`` (fetch one batch, hand it to ``settle``, acknowledge; the
number of messages handled, 0 when idle) and ``disconnect``; ``Tap.run`` does the rest.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from collectors.cloudevents import CloudEventError, event_problems, event_record, parse_traceparent
from collectors.limits import LimitExceeded, check_json_elements, current
from collectors.metrics import observe_stored, observe_tap_batch, observe_tap_messages
from tracing.records import ObservationRecord
from tracing.store import StoreResult

logger = logging.getLogger("collectors.taps")
Message = TypeVar("Message")


class BadMessage(Exception):
    """A message that is not a valid CloudEvent; the message says why."""


def structured_event(body: bytes | str) -> dict[str, Any]:
    """A structured-mode CloudEvent (a JSON object) from a message body, refused unparsed past
    ``CHOREOSCOPE_MAX_ELEMENTS_PER_REQUEST`` values, as over HTTP."""
    try:
        check_json_elements(body.encode() if isinstance(body, str) else body, current())
        event = json.loads(body)
    except LimitExceeded as error:
        raise BadMessage(str(error)) from None
    except (ValueError, RecursionError) as error:
        raise BadMessage(f"the body is not JSON: {error}") from None
    if not isinstance(event, dict):
        raise BadMessage("a structured CloudEvent must be a JSON object")
    return event


def validated_record(event: dict[str, Any], received_ns: int, traceparent: str | None = None) -> ObservationRecord:
    """The record of ``event``, validated exactly like an event sent over HTTP. A ``traceparent``
    from the message's own headers (W3C trace context, as OpenTelemetry's messaging
    instrumentations propagate it) stands in when the event carries no distributed-tracing
    extension of its own."""
    if traceparent and "traceparent" not in event and all(parse_traceparent(traceparent)):
        event = {**event, "traceparent": traceparent.strip()}
    problems = event_problems(event)
    if problems:
        raise BadMessage("; ".join(problems))
    return event_record(event, received_ns)


@dataclass
class Settled(Generic[Message]):
    """A decoded batch: the records to store, and which messages to acknowledge or reject."""

    records: list[ObservationRecord] = field(default_factory=list)
    accepted: list[Message] = field(default_factory=list)
    rejected: list[tuple[Message, str]] = field(default_factory=list)
    size: int = 0  # bytes of the messages as the broker delivered them
    started: float = field(default_factory=time.perf_counter)  # when decoding began


def decode_messages(
    messages: Iterable[Message], decode: Callable[[Message, int], ObservationRecord], size: Callable[[Message], int]
) -> Settled[Message]:
    settled: Settled[Message] = Settled()
    now = time.time_ns()
    for message in messages:
        settled.size += size(message)
        try:
            settled.records.append(decode(message, now))
        except BadMessage as error:
            settled.rejected.append((message, str(error)))
        except CloudEventError as error:  # a binary-mode body the HTTP decoders refuse (past a limit)
            settled.rejected.append((message, "; ".join(reason for _, reason in error.problems)))
        else:
            settled.accepted.append(message)
    return settled


def tap_batch_outcome(stored: int, rejected: int) -> str:
    """A batch's outcome in the ingest request series: accepted, partial (some messages were
    rejected) or rejected (all of them)."""
    if not rejected:
        return "accepted"
    return "partial" if stored else "rejected"


@dataclass
class Backoff:
    """Seconds to wait before the next reconnection: doubling from ``initial`` up to ``ceiling``."""

    initial: float = 0.5
    ceiling: float = 30.0
    failures: int = 0

    def next_delay(self) -> float:
        delay = min(self.ceiling, self.initial * 2**self.failures)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0


class Tap:
    """The run loop and the settle step every tap shares; subclasses are dataclasses that set
    ``store``, ``report``, ``stored`` and ``rejected``."""

    kind: ClassVar[str]
    store: Callable[[list[ObservationRecord]], Any]
    report: Callable[[str], None]
    stored: int
    rejected: int

    def connect(self) -> None:
        raise NotImplementedError

    def poll(self) -> int:
        raise NotImplementedError

    def disconnect(self) -> None:
        """Let go of the connection; must not raise (it is also called on a broken one)."""

    def settle(self, settled: Settled[Any], describe: Callable[[Any], str]) -> None:
        """Report the rejected messages and store the records (one transaction). Raises when the
        store fails, and then the caller acknowledges nothing. A batch is counted as an ingest
        request of ``tap_<kind>``, timed from decoding to commit."""
        for message, reason in settled.rejected:
            logger.warning("%s tap rejected %s: %s", self.kind, describe(message), reason)
            self.report(f"rejected {describe(message)}: {reason}")
        try:
            result = self.store(settled.records) if settled.records else None  # commits; raises on failure
        except Exception:
            observe_tap_batch(self.kind, "unavailable", time.perf_counter() - settled.started, settled.size)
            raise
        outcome = tap_batch_outcome(len(settled.records), len(settled.rejected))
        observe_tap_batch(self.kind, outcome, time.perf_counter() - settled.started, settled.size)
        if isinstance(result, StoreResult):
            observe_stored("event", len(settled.records), result)
        self.stored += len(settled.records)
        self.rejected += len(settled.rejected)
        observe_tap_messages(self.kind, "stored", len(settled.records))
        observe_tap_messages(self.kind, "rejected", len(settled.rejected))

    def run(
        self,
        should_stop: Callable[[], bool],
        exit_when_idle: bool = False,
        backoff: Backoff | None = None,
    ) -> None:
        """Poll until ``should_stop``; on any failure (the broker or the database is down) drop
        the connection, wait, reconnect, and read again what was not acknowledged."""
        backoff = backoff or Backoff()
        connected = False
        try:
            while not should_stop():
                try:
                    if not connected:
                        self.connect()
                        connected = True
                    handled = self.poll()
                    backoff.reset()
                    if not handled and exit_when_idle:
                        return
                except Exception as error:
                    delay = backoff.next_delay()
                    logger.warning("%s tap: batch not stored, reconnecting in %gs: %s", self.kind, delay, error)
                    self.report(f"batch not stored ({error}); reconnecting in {delay:g}s")
                    self.disconnect()
                    connected = False
                    wait_unless_stopped(delay, should_stop)
        finally:
            self.disconnect()


def wait_unless_stopped(seconds: float, should_stop: Callable[[], bool]) -> None:
    """Sleep ``seconds`` in short steps, so a stop request is not kept waiting for a long backoff."""
    deadline = time.monotonic() + seconds
    while not should_stop() and (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.2))
