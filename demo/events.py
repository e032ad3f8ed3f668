"""The shop's business events as CloudEvents 1.0 (the cloudevents SDK, structured JSON), and the
reporter that sends them to Choreoscope's ``/v1/events`` in batched mode."""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

logger = logging.getLogger("demo.events")

# Reactions get ids derived from their cause, so a duplicate delivery that slips past a
# consumer's de-duplication re-emits the *same* event (same source + id), as an idempotent
# consumer should.
_REACTION_NAMESPACE = uuid.UUID("6f1c2b1e-5d7a-4d0e-9c8b-3a1f0e2d4c5b")
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"


@dataclass(frozen=True, slots=True)
class ShopEvent:
    """What a consumer needs from a received event."""

    id: str
    type: str
    source: str
    order_id: str
    traceparent: str


def event_source(service: str) -> str:
    """The service's name: a valid URI-reference, and the same name its spans carry, so an event
    whose emitting span has not arrived yet is already shown under the right service."""
    return service


def reaction_event_id(cause_id: str, service: str, event_type: str) -> str:
    return str(uuid.uuid5(_REACTION_NAMESPACE, f"{cause_id}/{service}/{event_type}"))


def build_event(
    *,
    event_type: str,
    service: str,
    event_id: str,
    order_id: str,
    data: dict[str, Any],
    traceparent: str,
    causation_id: str | None,
    time_ns: int,
) -> bytes:
    """A structured-mode CloudEvent: traceparent is the producing span, correlationid the order,
    causationid the event this one reacts to."""
    attributes: dict[str, Any] = {
        "id": event_id,
        "source": event_source(service),
        "type": event_type,
        "specversion": "1.0",
        "subject": order_id,
        "time": datetime.fromtimestamp(time_ns / 1e9, tz=UTC),
        "datacontenttype": "application/json",
        "traceparent": traceparent,
        "correlationid": order_id,
    }
    if causation_id:
        attributes["causationid"] = causation_id
    return JSONFormat().write(CloudEvent(attributes, {"order_id": order_id, **data}))


def read_event(payload: bytes) -> ShopEvent:
    event = JSONFormat().read(None, payload)
    data = event.get_data()
    attributes = event.get_attributes()
    order_id = str(data.get("order_id", "")) if isinstance(data, dict) else ""
    return ShopEvent(
        id=str(attributes["id"]),
        type=str(attributes["type"]),
        source=str(attributes["source"]),
        order_id=order_id or str(attributes.get("correlationid", "")),
        traceparent=str(attributes.get("traceparent", "")),
    )


def batch_body(payloads: list[bytes]) -> bytes:
    return b"[" + b",".join(payloads) + b"]"


class EventReporter:
    """Sends a service's events to ``/v1/events`` in batches, a few times a second, keeping them
    (bounded) and retrying while Choreoscope is unreachable or busy."""

    MAX_BUFFER = 20_000

    def __init__(self, events_url: str, token: str | None, interval: float = 0.25, batch_size: int = 200) -> None:
        self.events_url = events_url
        self.token = token
        self.interval = interval
        self.batch_size = batch_size
        self.sent = 0
        self._buffer: list[bytes] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-reporter", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def report(self, payload: bytes) -> None:
        with self._lock:
            if len(self._buffer) >= self.MAX_BUFFER:
                self._buffer.pop(0)
            self._buffer.append(payload)

    def pending(self) -> int:
        with self._lock:
            return len(self._buffer)

    def stop(self, timeout: float = 6.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        backoff = self.interval
        while True:
            stopping = self._stop.wait(backoff)
            delivered = self._flush_all()
            backoff = self.interval if delivered else min(backoff * 2, 5.0)
            if stopping:
                return

    def _flush_all(self) -> bool:
        while True:
            with self._lock:
                batch = self._buffer[: self.batch_size]
            if not batch:
                return True
            if not self._post(batch):
                return False
            with self._lock:
                del self._buffer[: len(batch)]
            self.sent += len(batch)

    def _post(self, batch: list[bytes]) -> bool:
        """True when the batch is done with: stored, or rejected for good (logged)."""
        headers = {"Content-Type": BATCH_CONTENT_TYPE}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.events_url, data=batch_body(batch), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5):
                return True
        except urllib.error.HTTPError as error:
            if error.code in (408, 425, 429) or error.code >= 500:
                return False
            logger.error("%s rejected %d events (%s): %s", self.events_url, len(batch), error.code, _reason(error))
            return True
        except OSError:
            return False


def _reason(error: urllib.error.HTTPError) -> str:
    try:
        return json.dumps(json.loads(error.read()))[:500]
    except (ValueError, OSError):
        return error.reason or ""
