"""The event-bus tap: CloudEvents published on Redis Streams, read through a consumer group.

An entry holds either a structured CloudEvent (JSON) in one field named ``cloudevent`` or
``event``, or one field per attribute (``specversion``, ``id``, ``source``, ``type``, optional
``time``, ``subject``, ``datacontenttype``, ``dataschema``, extensions such as ``correlationid``,
and the payload in ``data`` or ``data_base64``). Entries are validated exactly like HTTP events.

Delivery: an entry is acknowledged only after its batch is committed. Entries this consumer read
but never acknowledged (a crash) are read again first on restart; entries left pending by another
consumer for longer than ``claim_idle_ms`` are claimed (XAUTOCLAIM). A bad entry is reported and
acknowledged, so one poison message never stops the tap.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from collectors.cloudevents import binary_data, event_problems, event_record
from tracing.records import ObservationRecord

logger = logging.getLogger(__name__)
STRUCTURED_FIELDS = ("cloudevent", "event")


class BadEntry(Exception):
    """An entry that is not a valid CloudEvent; the message says why."""


def utf8_field(value: bytes | str) -> str:
    """A stream entry's field as text; an entry that is not UTF-8 is refused, not guessed at."""
    if isinstance(value, str):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise BadEntry("a field is not UTF-8 text") from None


def entry_event(fields: Mapping[bytes | str, bytes | str]) -> dict[str, Any]:
    """The CloudEvent (as a structured-mode dict) an entry holds."""
    decoded = {utf8_field(name): value for name, value in fields.items()}
    for name in STRUCTURED_FIELDS:
        if name in decoded:
            try:
                structured = json.loads(decoded[name])
            except (ValueError, RecursionError) as error:
                raise BadEntry(f"field '{name}' is not JSON: {error}") from None
            if not isinstance(structured, dict):
                raise BadEntry(f"field '{name}' must hold a JSON object")
            return structured
    event: dict[str, Any] = {name: utf8_field(value) for name, value in decoded.items() if name not in ("data", "data_base64")}
    if "data_base64" in decoded:
        event["data_base64"] = utf8_field(decoded["data_base64"])
    elif "data" in decoded:
        raw = decoded["data"]
        event.update(binary_data(raw if isinstance(raw, bytes) else raw.encode(), event.get("datacontenttype", "")))
    return event


def entry_record(fields: Mapping[bytes | str, bytes | str], received_ns: int) -> ObservationRecord:
    event = entry_event(fields)
    problems = event_problems(event)
    if problems:
        raise BadEntry("; ".join(problems))
    return event_record(event, received_ns)


@dataclass
class BatchOutcome:
    records: list[ObservationRecord] = field(default_factory=list)
    ids: dict[str, list[str]] = field(default_factory=dict)  # stream -> entry ids to acknowledge
    bad: list[tuple[str, str, str]] = field(default_factory=list)  # (stream, entry id, reason)


def decode_entries(entries: list[tuple[str, list[tuple[str, Mapping[Any, Any]]]]]) -> BatchOutcome:
    """Records from XREADGROUP-shaped results: [(stream, [(entry id, fields), ...]), ...]."""
    outcome = BatchOutcome()
    now = time.time_ns()
    for stream, stream_entries in entries:
        for entry_id, fields in stream_entries:
            outcome.ids.setdefault(stream, []).append(entry_id)
            if fields is None:  # deleted from the stream while pending
                continue
            try:
                outcome.records.append(entry_record(fields, now))
            except BadEntry as error:
                outcome.bad.append((stream, entry_id, str(error)))
    return outcome


def _name(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass
class StreamTap:
    """Reads ``streams`` as ``consumer`` of ``group`` and stores what it reads, batch by batch."""

    client: Any  # redis.Redis
    streams: list[str]
    group: str
    consumer: str
    store: Callable[[list[ObservationRecord]], Any]
    report: Callable[[str], None]
    batch_size: int = 500
    block_ms: int = 2000
    claim_idle_ms: int = 60_000
    start_id: str = "0"
    stored: int = 0
    rejected: int = 0

    def ensure_groups(self) -> None:
        import redis

        for stream in self.streams:
            try:
                self.client.xgroup_create(stream, self.group, id=self.start_id, mkstream=True)
            except redis.ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise

    def handle(self, entries: list[Any]) -> int:
        """Store a batch and acknowledge it; the number of entries handled."""
        normalised = [(_name(stream), [(_name(entry_id), fields) for entry_id, fields in items]) for stream, items in entries]
        outcome = decode_entries(normalised)
        for stream, entry_id, reason in outcome.bad:
            self.report(f"{stream} {entry_id}: {reason}")
        if outcome.records:
            self.store(outcome.records)  # commits; raises on failure, and nothing is acknowledged
        for stream, ids in outcome.ids.items():
            self.client.xack(stream, self.group, *ids)
        self.stored += len(outcome.records)
        self.rejected += len(outcome.bad)
        return sum(len(ids) for ids in outcome.ids.values())

    def pending_of_mine(self) -> int:
        """Entries delivered to this consumer before a restart and never acknowledged."""
        handled = 0
        while True:
            entries = self.client.xreadgroup(self.group, self.consumer, dict.fromkeys(self.streams, "0"), count=self.batch_size)
            entries = [(stream, items) for stream, items in entries or [] if items]
            if not entries:
                return handled
            handled += self.handle(entries)

    def claim_abandoned(self) -> int:
        handled = 0
        for stream in self.streams:
            cursor = "0-0"
            while True:
                reply = self.client.xautoclaim(
                    stream, self.group, self.consumer, self.claim_idle_ms, cursor, count=self.batch_size
                )
                cursor, claimed = reply[0], reply[1]
                if claimed:
                    handled += self.handle([(stream, claimed)])
                if _name(cursor) == "0-0":
                    break
        return handled

    def read_new(self) -> int:
        entries = self.client.xreadgroup(
            self.group, self.consumer, dict.fromkeys(self.streams, ">"), count=self.batch_size, block=self.block_ms
        )
        return self.handle(entries) if entries else 0

    def run(self, should_stop: Callable[[], bool], exit_when_idle: bool = False, retry_seconds: float = 2.0) -> None:
        self.ensure_groups()
        recovered = False
        last_claim = 0.0
        while not should_stop():
            try:
                if not recovered:
                    self.pending_of_mine()
                    recovered = True
                if time.monotonic() - last_claim > self.claim_idle_ms / 1000:
                    self.claim_abandoned()
                    last_claim = time.monotonic()
                if not self.read_new() and exit_when_idle:
                    return
            except Exception as error:  # the database or Redis is down: keep the entries pending, retry
                logger.warning("Tap batch not stored, will retry: %s", error)
                self.report(f"batch not stored ({error}); retrying in {retry_seconds:g}s")
                recovered = False
                time.sleep(retry_seconds)
