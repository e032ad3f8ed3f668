"""The normalised observation every collector produces: plain data, no ORM.

Collectors decode wire formats (OTLP, CloudEvents, bus entries) into ``ObservationRecord``s;
``tracing.store`` writes them in bulk. An observation's ``identity`` is what makes ingestion
idempotent: a span is ``trace_id``+``span_id``, an event is ``source``+``id``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["span", "event"]
Status = Literal["unset", "ok", "error"]

# OTLP SpanKind numbers (opentelemetry-proto trace.proto), the one declaration of span kinds.
SPAN_KIND_UNSPECIFIED, SPAN_KIND_INTERNAL, SPAN_KIND_SERVER, SPAN_KIND_CLIENT, SPAN_KIND_PRODUCER, SPAN_KIND_CONSUMER = range(6)
SPAN_KIND_NAMES = {
    SPAN_KIND_UNSPECIFIED: "unspecified",
    SPAN_KIND_INTERNAL: "internal",
    SPAN_KIND_SERVER: "server",
    SPAN_KIND_CLIENT: "client",
    SPAN_KIND_PRODUCER: "producer",
    SPAN_KIND_CONSUMER: "consumer",
}


def span_identity(trace_id: str, span_id: str) -> str:
    return f"s:{trace_id}:{span_id}"


def event_identity(source: str, event_id: str) -> str:
    # Sources are URI-references of any length; a digest keeps the unique index narrow.
    # surrogatepass: JSON may hold a lone surrogate ("\\ud800"), which strict UTF-8 cannot encode.
    digest = hashlib.sha256(f"{source}\n{event_id}".encode("utf-8", "surrogatepass")).hexdigest()[:40]
    return f"e:{digest}"


@dataclass(slots=True)
class ObservationRecord:
    kind: Kind
    identity: str
    name: str  # span name, or the CloudEvent's type
    service: str  # resource service.name, or the CloudEvent's source until its span is known
    start_ns: int  # unix nanoseconds; an event's time (or receipt time when it has none)
    end_ns: int | None = None
    trace_id: str = ""  # 32 lower-case hex; for an event, from its traceparent
    span_id: str = ""  # 16 lower-case hex; for an event, the emitting span from its traceparent
    parent_span_id: str = ""
    span_kind: int = SPAN_KIND_UNSPECIFIED
    status: Status = "unset"
    status_message: str = ""
    event_source: str = ""
    event_id: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)  # span attributes, or CloudEvent extensions
    resource: dict[str, Any] = field(default_factory=dict)  # resource attributes (spans)
    # Everything else a user may want later. Spans: scope, flags, trace_state, events, links,
    # dropped counts. Events: specversion, subject, datacontenttype, dataschema, time, data or
    # data_base64.
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class SpanLogRecord:
    """A plain log record (not a business event) emitted inside a span: shown on that span, never
    a step of a flow. ``digest`` identifies it, so that an export sent again stores nothing new."""

    trace_id: str  # 32 lower-case hex
    span_id: str  # 16 lower-case hex
    time_ns: int
    service: str
    severity: str  # the severity text, or the severity number's name ("INFO", "ERROR", ...)
    body: str  # the body as text (a structured body as JSON)
    digest: str
    attributes: dict[str, Any] = field(default_factory=dict)
