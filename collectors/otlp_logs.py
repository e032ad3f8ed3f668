"""OTLP logs: ``ExportLogsServiceRequest`` (protobuf or OTLP/JSON) into observation records.

A log record with an event name is a business event, the OpenTelemetry way of emitting one
(the Events API, or ``Logger.emit(event_name=...)``): the name is its type, the resource's
``service.name`` its service, its trace and span ids the span that emitted it, its attributes and
body its data. The name is the record's ``EventName`` field (OTLP 1.5), else the ``event.name``
attribute (which the older ``event.domain`` + ``event.name`` convention also sets).

Plain log records (no event name) are not steps of a flow: those emitted inside a span are kept
on that span (``tracing.store.store_span_logs``, bounded per span) for the flow page's inspector;
the rest are accepted and counted, not stored. A record that names an event but cannot be stored (bad ids, a time past 2262) is
rejected on its own (partial success); a body that cannot be decoded at all is an
``OtlpDecodeError``, as for traces.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber

from collectors.limits import Limits, Truncation, WireLayout, current
from collectors.otlp import (
    PROTOBUF,
    UNKNOWN_SERVICE,
    ExportBatch,
    OtlpDecodeError,
    _drop_empty,
    _enum,
    _hex_id,
    _integer,
    _json_attributes,
    _json_value,
    _list,
    _object,
    _pb_attributes,
    _pb_value,
    _string,
    loaded_json,
    parsed_request,
    partial_success_answer,
    time_problem,
)
from tracing.records import ObservationRecord, SpanLogRecord, event_identity

LOGS_LAYOUT = WireLayout.of(ExportLogsServiceRequest.DESCRIPTOR)
# OTLP/JSON may spell the severity by its proto name: SEVERITY_NUMBER_INFO for 9.
SEVERITY_ENUM = {name: int(number) for name, number in SeverityNumber.items()}
# Attributes that name an event's identity when the sender has one (a CloudEvent re-emitted as a
# log record keeps its id, so a consumer span's ``cloudevents.event_id`` finds it).
EVENT_ID_ATTRIBUTES = ("cloudevents.event_id", "event.id")
EVENT_SOURCE_ATTRIBUTE = "cloudevents.event_source"
MAX_JSON_DEPTH = 160


@dataclass(frozen=True, slots=True)
class OtlpLogRecord:
    """One log record with its resource and scope, the same whichever encoding it came in."""

    service: str
    resource: dict[str, Any]
    scope: dict[str, Any]
    time_ns: int
    observed_ns: int
    severity_number: int
    severity_text: str
    body: Any  # None when the record has no body
    attributes: dict[str, Any]
    trace_id: str  # hex as sent; empty when absent
    span_id: str
    flags: int = 0
    event_name: str = ""  # the EventName field
    dropped_attributes_count: int = 0


@dataclass(slots=True)
class LogBatch(ExportBatch):
    ITEMS: ClassVar[str] = "log record(s)"
    plain: int = 0  # accepted log records that are not events
    span_logs: list[SpanLogRecord] = field(default_factory=list)  # the plain ones emitted inside a span


class LogRecordRejected(Exception):
    """An event log record that cannot be stored; the message says why."""


def event_name_of(log: OtlpLogRecord) -> str:
    """The event a log record stands for, or "" for a plain log record."""
    if log.event_name:
        return log.event_name
    name = log.attributes.get("event.name")
    return name.strip() if isinstance(name, str) else ""


def _text_attribute(attributes: dict[str, Any], names: tuple[str, ...]) -> str:
    for name in names:
        value = attributes.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return ""


def stable_event_id(log: OtlpLogRecord, name: str) -> str:
    """A digest of everything the record says, so that an export sent twice (an exporter's retry)
    is stored once, whichever encoding carried it."""
    content = [log.service, name, log.time_ns, log.observed_ns, log.trace_id, log.span_id, log.attributes, log.body]
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return "otlp-log-" + hashlib.sha256(text.encode()).hexdigest()[:32]


def emitting_span(trace_id: str, span_id: str) -> tuple[str, str]:
    """(trace_id, span_id) of the span that emitted the record: both, or neither for a record
    emitted outside a span. Raises ``LogRecordRejected`` for ids of the wrong length."""
    trace_id, span_id = trace_id.lower(), span_id.lower()
    for value, size, what in ((trace_id, 16, "trace_id"), (span_id, 8, "span_id")):
        if value and len(value) != size * 2:
            raise LogRecordRejected(f"{what} must be {size} bytes, got {len(value) // 2}")
    if not trace_id.strip("0") or not span_id.strip("0"):
        return "", ""
    return trace_id, span_id


def event_observation(log: OtlpLogRecord, received_ns: int) -> ObservationRecord | None:
    """The business event a log record stands for; None for a plain log record. Raises
    ``LogRecordRejected`` when it names an event that cannot be stored."""
    name = event_name_of(log)
    if not name:
        return None
    problem = time_problem(log.time_ns, log.observed_ns)
    if problem:
        raise LogRecordRejected(problem)
    trace_id, span_id = emitting_span(log.trace_id, log.span_id)
    event_id = _text_attribute(log.attributes, EVENT_ID_ATTRIBUTES) or stable_event_id(log, name)
    source = _text_attribute(log.attributes, (EVENT_SOURCE_ATTRIBUTE,)) or log.service
    # ``data.*`` key paths read the body; a record whose data is all in its attributes (no body)
    # is read from those instead.
    data = log.body if log.body is not None else log.attributes
    detail = {"data": data, "scope": log.scope}
    detail.update(
        _drop_empty(
            {
                "severity_number": log.severity_number,
                "severity_text": log.severity_text,
                "observed_time_ns": log.observed_ns,
                "flags": log.flags,
                "dropped_attributes_count": log.dropped_attributes_count,
            }
        )
    )
    return ObservationRecord(
        kind="event",
        identity=event_identity(source, event_id),
        name=name,
        service=log.service,
        start_ns=log.time_ns or log.observed_ns or received_ns,
        trace_id=trace_id,
        span_id=span_id,
        event_source=source,
        event_id=event_id,
        attributes=log.attributes,
        resource=log.resource,
        detail=detail,
    )


SEVERITY_NAMES = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")  # OTel log data model: numbers 1-4 TRACE up to 21-24 FATAL


def severity_of(log: OtlpLogRecord) -> str:
    if log.severity_text:
        return log.severity_text
    if 1 <= log.severity_number <= 24:
        return SEVERITY_NAMES[(log.severity_number - 1) // 4]
    return ""


def body_text(body: Any) -> str:
    if body is None:
        return ""
    if isinstance(body, str):
        return body
    return json.dumps(body, ensure_ascii=False, default=str)


def span_log(log: OtlpLogRecord, received_ns: int) -> SpanLogRecord | None:
    """A plain log record as shown on the span that emitted it; None outside a span (or with
    ids that are not a span's)."""
    try:
        trace_id, span_id = emitting_span(log.trace_id, log.span_id)
    except LogRecordRejected:
        return None
    if not span_id:
        return None
    content = [log.service, log.time_ns, log.observed_ns, trace_id, span_id, log.severity_number, log.attributes, log.body]
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()[:32]
    return SpanLogRecord(
        trace_id=trace_id,
        span_id=span_id,
        time_ns=log.time_ns or log.observed_ns or received_ns,
        service=log.service,
        severity=severity_of(log),
        body=body_text(log.body),
        digest=digest,
        attributes=log.attributes,
    )


def collect(batch: LogBatch, log: OtlpLogRecord, received_ns: int) -> None:
    try:
        record = event_observation(log, received_ns)
    except LogRecordRejected as problem:
        batch.reject(f"log record {event_name_of(log)!r}: {problem}")
        return
    if record is not None:
        batch.records.append(record)
        return
    batch.plain += 1
    on_span = span_log(log, received_ns)
    if on_span is not None:
        batch.span_logs.append(on_span)


def service_of(resource: dict[str, Any]) -> str:
    service = resource.get("service.name")
    return service if isinstance(service, str) and service else UNKNOWN_SERVICE


# --- protobuf ----------------------------------------------------------------------------------


def decode_logs_protobuf(body: bytes, received_ns: int | None = None, limits: Limits | None = None) -> LogBatch:
    limits = limits or current()
    request = parsed_request(body, ExportLogsServiceRequest(), LOGS_LAYOUT, "log records", limits)
    received_ns = received_ns or time.time_ns()
    batch = LogBatch()
    for resource_logs in request.resource_logs:
        resource = _pb_attributes(resource_logs.resource.attributes, limits, Truncation(), "the resource's attributes")
        service = service_of(resource)
        for scope_logs in resource_logs.scope_logs:
            pb_scope = scope_logs.scope
            scope = _drop_empty(
                {
                    "name": pb_scope.name,
                    "version": pb_scope.version,
                    "schema_url": scope_logs.schema_url,
                    "attributes": _pb_attributes(pb_scope.attributes, limits, Truncation(), "the scope's attributes"),
                }
            )
            for log in scope_logs.log_records:
                # What the limits leave out of a record is added to the count the sender gives.
                truncation = Truncation()
                attributes = _pb_attributes(log.attributes, limits, truncation, "a log record's attributes")
                decoded = OtlpLogRecord(
                    service=service,
                    resource=resource,
                    scope=scope,
                    time_ns=log.time_unix_nano,
                    observed_ns=log.observed_time_unix_nano,
                    severity_number=log.severity_number,
                    severity_text=log.severity_text,
                    body=_pb_value(log.body, limits, "a log record's body") if log.HasField("body") else None,
                    attributes=attributes,
                    trace_id=log.trace_id.hex(),
                    span_id=log.span_id.hex(),
                    flags=log.flags,
                    event_name=log.event_name,
                    dropped_attributes_count=log.dropped_attributes_count + dropped(truncation),
                )
                collect(batch, decoded, received_ns)
    return batch


# --- OTLP/JSON ---------------------------------------------------------------------------------


def _json_log(
    log: dict[str, Any], path: str, service: str, resource: dict[str, Any], scope: dict[str, Any], limits: Limits
) -> OtlpLogRecord:
    truncation = Truncation()
    attributes = _json_attributes(log.get("attributes"), path + ".attributes", limits, truncation)
    sent_dropped = _integer(log.get("droppedAttributesCount"), path + ".droppedAttributesCount", 0, 2**32 - 1)
    return OtlpLogRecord(
        service=service,
        resource=resource,
        scope=scope,
        time_ns=_integer(log.get("timeUnixNano"), path + ".timeUnixNano"),
        observed_ns=_integer(log.get("observedTimeUnixNano"), path + ".observedTimeUnixNano"),
        severity_number=_enum(log.get("severityNumber"), SEVERITY_ENUM, path + ".severityNumber"),
        severity_text=_string(log.get("severityText"), path + ".severityText"),
        body=_json_value(log.get("body"), path + ".body", limits),
        attributes=attributes,
        trace_id=_hex_id(log.get("traceId"), path + ".traceId"),
        span_id=_hex_id(log.get("spanId"), path + ".spanId"),
        flags=_integer(log.get("flags"), path + ".flags", 0, 2**32 - 1),
        event_name=_string(log.get("eventName"), path + ".eventName"),
        dropped_attributes_count=sent_dropped + dropped(truncation),
    )


def dropped(truncation: Truncation) -> int:
    """Attributes the limits left out of a record (cut strings are kept, shortened)."""
    return truncation.counts.get("dropped_attributes_count", 0)


def _decode_json_document(document: Any, received_ns: int, limits: Limits) -> LogBatch:
    document = _object(document, "The body")
    batch = LogBatch()
    for r_index, resource_logs in enumerate(_list(document.get("resourceLogs"), "resourceLogs")):
        r_path = f"resourceLogs[{r_index}]"
        resource_logs = _object(resource_logs, r_path)
        resource = _json_attributes(
            _object(resource_logs.get("resource"), r_path + ".resource").get("attributes"),
            r_path + ".resource.attributes",
            limits,
            Truncation(),
        )
        service = service_of(resource)
        for s_index, scope_logs in enumerate(_list(resource_logs.get("scopeLogs"), r_path + ".scopeLogs")):
            s_path = f"{r_path}.scopeLogs[{s_index}]"
            scope_logs = _object(scope_logs, s_path)
            raw_scope = _object(scope_logs.get("scope"), s_path + ".scope")
            scope = _drop_empty(
                {
                    "name": _string(raw_scope.get("name"), s_path + ".scope.name"),
                    "version": _string(raw_scope.get("version"), s_path + ".scope.version"),
                    "attributes": _json_attributes(
                        raw_scope.get("attributes"), s_path + ".scope.attributes", limits, Truncation()
                    ),
                    "schema_url": _string(scope_logs.get("schemaUrl"), s_path + ".schemaUrl"),
                }
            )
            for index, log in enumerate(_list(scope_logs.get("logRecords"), s_path + ".logRecords")):
                path = f"{s_path}.logRecords[{index}]"
                collect(batch, _json_log(_object(log, path), path, service, resource, scope, limits), received_ns)
    return batch


def nesting_depth_exceeds(document: Any, limit: int) -> bool:
    """Whether JSON containers nest deeper than ``limit`` (walked without recursion)."""
    stack = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return False


def decode_logs_json(body: bytes, received_ns: int | None = None, limits: Limits | None = None) -> LogBatch:
    limits = limits or current()
    document = loaded_json(body, limits)
    # About as deep as protobuf's limit of 100 nested messages lets a value nest (three JSON
    # containers per level of AnyValue): deeper values cannot be stored (or walked) safely.
    if nesting_depth_exceeds(document, MAX_JSON_DEPTH):
        raise OtlpDecodeError(f"The body nests JSON objects and arrays more than {MAX_JSON_DEPTH} levels deep.")
    return _decode_json_document(document, received_ns or time.time_ns(), limits)


def decode_logs(body: bytes, content_type: str) -> LogBatch:
    """``content_type`` is the media type essence: application/x-protobuf or application/json."""
    return decode_logs_protobuf(body) if content_type == PROTOBUF else decode_logs_json(body)


# --- answers -----------------------------------------------------------------------------------


def logs_export_response(content_type: str, rejected: int = 0, error_message: str = "") -> bytes:
    """An ExportLogsServiceResponse."""
    return partial_success_answer(ExportLogsServiceResponse, "rejected_log_records", content_type, rejected, error_message)
