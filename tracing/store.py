"""The bulk writer: one request's observations in one statement batch, in one transaction.

Idempotent on ``Observation.identity``: a span or event sent again is counted as a duplicate and
changes nothing. ``flow`` is left NULL, which means "not yet correlated"; after commit the
correlation task is kicked (``choreoscope.dispatch``), and if that fails (broker down, task
error) the periodic sweep finds the rows through the partial index on uncorrelated observations.

On PostgreSQL the rows are COPYed into a temporary table and moved with one
``INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING id``; row-at-a-time saves and
``bulk_create`` are several times slower. On SQLite, one ``executemany`` of ``INSERT OR IGNORE``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count

from choreoscope import dispatch
from tracing.bulk import chunks
from tracing.models import Observation, SpanLog
from tracing.records import ObservationRecord, SpanLogRecord
from tracing.signals import observations_stored
from tracing.tasks import correlate_pending

COLUMNS = (
    "kind",
    "identity",
    "name",
    "service",
    "start_ns",
    "end_ns",
    "trace_id",
    "span_id",
    "parent_span_id",
    "span_kind",
    "status",
    "status_message",
    "event_source",
    "event_id",
    "attributes",
    "resource",
    "detail",
    "received_at",
)
JSON_COLUMNS = frozenset({"attributes", "resource", "detail"})
TEXT_LIMITS = {"name": 255, "service": 255}
STAGING = "choreoscope_ingest_staging"
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
STAGING_COLUMNS = (
    "kind varchar(5), identity varchar(80), name varchar(255), service varchar(255), start_ns bigint, end_ns bigint, "
    "trace_id varchar(32), span_id varchar(16), parent_span_id varchar(16), span_kind smallint, status varchar(5), "
    "status_message text, event_source text, event_id text, attributes jsonb, resource jsonb, detail jsonb, "
    "received_at timestamptz"
)


@dataclass(frozen=True, slots=True)
class StoreResult:
    inserted_ids: list[int]
    duplicates: int

    @property
    def inserted(self) -> int:
        return len(self.inserted_ids)


# --- values PostgreSQL will take -----------------------------------------------------------------
# PostgreSQL text cannot hold NUL, and UTF-8 cannot hold lone surrogates (JSON "\ud800" decodes to
# one); both are replaced rather than failing the request. The fast checks keep the common case cheap.


def clean_text(value: str, limit: int | None = None) -> str:
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = LONE_SURROGATE.sub("\ufffd", value)
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    return value[:limit] if limit is not None else value


def _clean_json_value(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(key)): _clean_json_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clean_json_value(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


_encoder = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def json_text(value: Any) -> str:
    try:
        text = orjson.dumps(value).decode()
    except TypeError:  # lone surrogates, integers beyond 64 bits: the careful path
        try:
            text = _encoder.encode(value)
        except ValueError:
            text = _encoder.encode(_clean_json_value(value))
    if "\\u0000" in text or "\\ud" in text:
        text = _encoder.encode(_clean_json_value(value))
    return text


class JsonCache:
    """JSON text of values shared by many records of one request (a span batch's resource)."""

    def __init__(self) -> None:
        self._texts: dict[int, tuple[Any, str]] = {}

    def text(self, value: Any) -> str:
        cached = self._texts.get(id(value))
        if cached is None or cached[0] is not value:
            cached = (value, json_text(value))
            self._texts[id(value)] = cached
        return cached[1]


def _row(record: ObservationRecord, received_at: Any, shared: JsonCache) -> tuple[Any, ...]:
    return (
        record.kind,
        record.identity,
        clean_text(record.name, 255),
        clean_text(record.service, 255),
        record.start_ns,
        record.end_ns,
        record.trace_id,
        record.span_id,
        record.parent_span_id,
        record.span_kind,
        record.status,
        clean_text(record.status_message),
        clean_text(record.event_source),
        clean_text(record.event_id),
        json_text(record.attributes),
        shared.text(record.resource),
        json_text(record.detail),
        received_at,
    )


def distinct_by_identity(records: Iterable[ObservationRecord]) -> list[ObservationRecord]:
    """The first record of each identity, in order."""
    seen: dict[str, ObservationRecord] = {}
    for record in records:
        seen.setdefault(record.identity, record)
    return list(seen.values())


# --- writers -----------------------------------------------------------------------------------


def _insert_postgresql(rows: list[tuple[Any, ...]], inside_outer_transaction: bool) -> list[tuple[int, str]]:
    table = Observation._meta.db_table
    columns = ", ".join(COLUMNS)
    with connection.cursor() as wrapper, connection.wrap_database_errors:
        cursor = wrapper.cursor  # the psycopg cursor, for COPY
        # Per session; checked on every call because a rolled-back transaction may have undone its creation.
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {STAGING} ({STAGING_COLUMNS}) ON COMMIT DELETE ROWS")
        with cursor.copy(f"COPY {STAGING} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {STAGING} "  # noqa: S608 - fixed names
            "ON CONFLICT (identity) DO NOTHING RETURNING id, identity"
        )
        inserted = cursor.fetchall()
        if inside_outer_transaction:
            # ON COMMIT DELETE ROWS empties it only at commit; the caller may write again before that.
            cursor.execute(f"DELETE FROM {STAGING}")  # noqa: S608
        return inserted


def _insert_sqlite(rows: list[tuple[Any, ...]]) -> list[tuple[int, str]]:
    table = Observation._meta.db_table
    placeholders = ", ".join("%s" for _ in COLUMNS)
    with connection.cursor() as cursor:
        # The transaction holds SQLite's write lock from BEGIN IMMEDIATE, and the table's ids come from
        # AUTOINCREMENT, so every id above the current maximum is one this statement inserted.
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}")  # noqa: S608
        before = cursor.fetchone()[0]
        cursor.executemany(f"INSERT OR IGNORE INTO {table} ({', '.join(COLUMNS)}) VALUES ({placeholders})", rows)  # noqa: S608
        cursor.execute(f"SELECT id, identity FROM {table} WHERE id > %s ORDER BY id", [before])  # noqa: S608
        return cursor.fetchall()


def correlate_one_batch() -> bool:
    """One bounded batch of correlation in the caller's thread; True when more may be waiting."""
    from tracing.services import correlate_batch

    size = settings.CORRELATION_BATCH_SIZE
    return len(correlate_batch(size).observation_ids) >= size


def enqueue_correlation() -> None:
    """Hand the new rows to correlation; never fails the request (the sweep is the safety net).
    Where tasks run in-process, the whole correlation loop in the request's thread would make one
    request wait for everybody's rows under steady traffic; instead the committing thread
    correlates one bounded batch (its own rows, in the common case, so a lone client still sees
    its flow on the next read) and the task finishes any remainder in the background."""
    dispatch.kick(correlate_pending, first_step=correlate_one_batch)


def store_observations(records: Sequence[ObservationRecord]) -> StoreResult:
    """Write ``records`` in one transaction; answer which rows are new and how many were already stored."""
    unique = distinct_by_identity(records)
    if not unique:
        return StoreResult([], len(records))
    now = datetime.now(UTC)
    received_at = connection.ops.adapt_datetimefield_value(now)
    shared = JsonCache()
    rows = [_row(record, received_at, shared) for record in unique]
    inside_outer_transaction = connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql":
            inserted = _insert_postgresql(rows, inside_outer_transaction)
        else:
            inserted = _insert_sqlite(rows)
        if inserted:
            transaction.on_commit(enqueue_correlation)
            if observations_stored.has_listeners(Observation):
                by_identity = {record.identity: record for record in unique}
                stored = [(obs_id, by_identity[identity]) for obs_id, identity in inserted if identity in by_identity]
                observations_stored.send(sender=Observation, stored=stored, received_at=now)
    return StoreResult([obs_id for obs_id, _ in inserted], len(records) - len(inserted))


# --- Plain log records on their spans --------------------------------------------------------------

SPAN_LOG_BODY_CHARS = 4096


def span_log_room(records: Sequence[SpanLogRecord], stored: dict[tuple[str, str], int], limit: int) -> list[SpanLogRecord]:
    """The records to keep, earliest first, so that no span holds more than ``limit`` (counting
    the ``stored`` ones); the same record twice is kept once."""
    room = {span: limit - count for span, count in stored.items()}
    kept, seen = [], set()
    for record in sorted(records, key=lambda record: record.time_ns):
        span = (record.trace_id, record.span_id)
        if record.digest in seen or room.get(span, limit) <= 0:
            continue
        seen.add(record.digest)
        room[span] = room.get(span, limit) - 1
        kept.append(record)
    return kept


def stored_span_log_counts(spans: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for trace_ids in chunks(sorted({trace_id for trace_id, _ in spans}), 500):
        rows = SpanLog.objects.filter(trace_id__in=trace_ids).values_list("trace_id", "span_id").annotate(n=Count("id"))
        counts.update({(trace_id, span_id): n for trace_id, span_id, n in rows if (trace_id, span_id) in spans})
    return counts


def store_span_logs(records: Sequence[SpanLogRecord]) -> int:
    """Keep plain log records on their spans, at most ``SPAN_LOGS_PER_SPAN`` per span (the first
    to arrive), in one transaction; returns how many were stored (a record stored before is not
    stored again)."""
    limit = settings.SPAN_LOGS_PER_SPAN
    if not records or limit <= 0:
        return 0
    with transaction.atomic():
        # A record sent again (an exporter's retry) is left out before room is given out.
        digests = sorted({record.digest for record in records})
        known: set[str] = set()
        for part in chunks(digests, 500):
            known.update(SpanLog.objects.filter(digest__in=part).values_list("digest", flat=True))
        fresh = [record for record in records if record.digest not in known]
        kept = span_log_room(fresh, stored_span_log_counts({(r.trace_id, r.span_id) for r in fresh}), limit)
        rows = [
            SpanLog(
                digest=record.digest,
                trace_id=record.trace_id,
                span_id=record.span_id,
                time_ns=record.time_ns,
                service=clean_text(record.service, 255),
                severity=clean_text(record.severity, 32),
                body=clean_text(record.body, SPAN_LOG_BODY_CHARS),
                attributes=_clean_json_value(record.attributes),
            )
            for record in kept
        ]
        SpanLog.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=True)
    return len(rows)
