"""The Redis Streams tap: CloudEvents published on Redis Streams, read through a consumer group.

An entry holds either a structured CloudEvent (JSON) in one field named ``cloudevent`` or
``event``, or one field per attribute (``specversion``, ``id``, ``source``, ``type``, optional
``time``, ``subject``, ``datacontenttype``, ``dataschema``, extensions such as ``correlationid``,
and the payload in ``data`` or ``data_base64``). Entries are validated exactly like HTTP events.

Delivery: an entry is acknowledged only after its batch is committed. Entries this consumer read
but never acknowledged (a crash) are read again first on restart; entries left pending by another
consumer for longer than ``claim_idle_ms`` are claimed (XAUTOCLAIM). A bad entry is reported and
acknowledged, so one poison message never stops the tap.

``stream_lag`` says how far every consumer group of a stream is behind (for the map and
``/metrics``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from collectors.cloudevents import binary_data
from collectors.taps.base import BadMessage, Settled, Tap, validated_record
from tracing.records import ObservationRecord

STRUCTURED_FIELDS = ("cloudevent", "event")
LAG_COUNT_LIMIT = 10_000  # a lag is reported as "at least this" beyond it


class BadEntry(BadMessage):
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
    try:
        return validated_record(entry_event(fields), received_ns)
    except BadEntry:
        raise
    except BadMessage as error:
        raise BadEntry(str(error)) from None


@dataclass
class BatchOutcome:
    records: list[ObservationRecord] = field(default_factory=list)
    ids: dict[str, list[str]] = field(default_factory=dict)  # stream -> entry ids to acknowledge
    bad: list[tuple[str, str, str]] = field(default_factory=list)  # (stream, entry id, reason)
    size: int = 0  # bytes of the entries' field names and values


def decode_entries(entries: list[tuple[str, list[tuple[str, Mapping[Any, Any]]]]]) -> BatchOutcome:
    """Records from XREADGROUP-shaped results: [(stream, [(entry id, fields), ...]), ...]."""
    outcome = BatchOutcome()
    now = time.time_ns()
    for stream, stream_entries in entries:
        for entry_id, fields in stream_entries:
            outcome.ids.setdefault(stream, []).append(entry_id)
            if fields is None:  # deleted from the stream while pending
                continue
            outcome.size += sum(len(name) + len(value) for name, value in fields.items())
            try:
                outcome.records.append(entry_record(fields, now))
            except BadEntry as error:
                outcome.bad.append((stream, entry_id, str(error)))
    return outcome


def _name(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass
class StreamTap(Tap):
    """Reads ``streams`` as ``consumer`` of ``group`` and stores what it reads, batch by batch."""

    kind = "redis-stream"

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
    _recovered: bool = False
    _last_claim: float = 0.0

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
        started = time.perf_counter()
        outcome = decode_entries(normalised)
        settled: Settled[tuple[str, str]] = Settled(outcome.records, size=outcome.size, started=started)
        settled.rejected = [((stream, entry_id), reason) for stream, entry_id, reason in outcome.bad]
        self.settle(settled, describe=lambda entry: f"{entry[0]} {entry[1]}")  # nothing is acknowledged if it raises
        for stream, ids in outcome.ids.items():
            self.client.xack(stream, self.group, *ids)
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

    def connect(self) -> None:
        self.ensure_groups()
        self._recovered = False  # after a failure, what was read but not acknowledged comes first

    def poll(self) -> int:
        handled = 0
        if not self._recovered:
            handled += self.pending_of_mine()
            self._recovered = True
        if time.monotonic() - self._last_claim > self.claim_idle_ms / 1000:
            handled += self.claim_abandoned()
            self._last_claim = time.monotonic()
        return handled + self.read_new()


def stream_lag(client: Any, stream: str) -> dict[str, dict[str, int]]:
    """{consumer group: {"lag": entries not yet delivered to it, "pending": delivered but not
    acknowledged}} for one stream; empty when the stream does not exist. Undelivered entries are
    counted from the group's last-delivered id (at most ``LAG_COUNT_LIMIT``) rather than taken from
    XINFO's ``lag``, which Redis 7.0 can report stale."""
    import redis

    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError:
        return {}
    lags = {}
    for info in groups:
        undelivered = client.xrange(stream, min=f"({_name(info['last-delivered-id'])}", max="+", count=LAG_COUNT_LIMIT)
        lags[_name(info["name"])] = {"lag": len(undelivered), "pending": int(info.get("pending") or 0)}
    return lags
