"""OTLP/HTTP traces: ``ExportTraceServiceRequest`` (protobuf or OTLP/JSON) into observation records,
and the answers the OTLP/HTTP specification prescribes.

Both encodings are flattened to the same records. A span whose ids cannot be stored is rejected
on its own (partial success); a body that cannot be decoded at all is an ``OtlpDecodeError``.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse

from collectors.limits import (
    LimitExceeded,
    Limits,
    Truncation,
    WireLayout,
    bounded_attributes,
    check_json_elements,
    check_otlp_request,
    current,
    say_truncation,
    too_deep,
    too_many_items,
)
from tracing.records import SPAN_KIND_NAMES, SPAN_KIND_UNSPECIFIED, ObservationRecord, span_identity

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
STATUS_NAMES = {0: "unset", 1: "ok", 2: "error"}
STATUS_ENUM = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
# OTLP/JSON may spell an enum by its proto name: SPAN_KIND_SERVER for 2.
KIND_ENUM = {f"SPAN_KIND_{name.upper()}": number for number, name in SPAN_KIND_NAMES.items()}
UNKNOWN_SERVICE = "unknown_service"
MAX_REASONS = 5
UINT64_MAX = 2**64 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# A 64-bit integer has at most 20 digits; longer ones are refused before int() has to read them.
DECIMAL = re.compile(r"-?[0-9]{1,20}")
# google.rpc.Code
INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE = 3, 8, 14
TRACES_LAYOUT = WireLayout.of(ExportTraceServiceRequest.DESCRIPTOR)


class OtlpDecodeError(Exception):
    """The body is not an ExportTraceServiceRequest, or goes beyond a limit; the message says what
    was wrong, ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class ExportBatch:
    """What one OTLP export decoded to: the records, and the items refused one by one (OTLP
    partial success: the rest of the export is still taken)."""

    ITEMS: ClassVar[str] = "item(s)"
    records: list[ObservationRecord] = field(default_factory=list)
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if len(self.reasons) < MAX_REASONS:
            self.reasons.append(reason)

    @property
    def error_message(self) -> str:
        if not self.rejected:
            return ""
        more = f" (and {self.rejected - len(self.reasons)} more)" if self.rejected > len(self.reasons) else ""
        return f"{self.rejected} {self.ITEMS} rejected: " + "; ".join(self.reasons) + more


@dataclass(slots=True)
class TraceBatch(ExportBatch):
    ITEMS: ClassVar[str] = "span(s)"


def time_problem(start_ns: int, end_ns: int) -> str | None:
    # Stored as signed 64-bit nanoseconds: up to the year 2262.
    if start_ns > INT64_MAX or end_ns > INT64_MAX:
        return "start or end time is beyond the year 2262"
    return None


def id_problem(raw_hex: str, expected_bytes: int, what: str) -> str | None:
    """Why a hex id cannot be stored, or None when it is fine."""
    if len(raw_hex) != expected_bytes * 2:
        return f"{what} must be {expected_bytes} bytes, got {len(raw_hex) // 2}"
    if raw_hex.count("0") == len(raw_hex):
        return f"{what} is all zeros"
    return None


def span_record(
    *,
    trace_id: str,
    span_id: str,
    parent_span_id: str,
    name: str,
    service: str,
    kind: int,
    start_ns: int,
    end_ns: int,
    status_code: int,
    status_message: str,
    attributes: dict[str, Any],
    resource: dict[str, Any],
    detail: dict[str, Any],
) -> ObservationRecord:
    return ObservationRecord(
        kind="span",
        identity=span_identity(trace_id, span_id),
        name=name,
        service=service,
        start_ns=start_ns,
        end_ns=end_ns or None,
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_span_id,
        span_kind=kind if kind in SPAN_KIND_NAMES else SPAN_KIND_UNSPECIFIED,
        status=STATUS_NAMES.get(status_code, "unset"),  # type: ignore[arg-type]
        status_message=status_message,
        attributes=attributes,
        resource=resource,
        detail=detail,
    )


def _drop_empty(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value not in (0, "", None, [], {})}


# --- protobuf ----------------------------------------------------------------------------------


_SCALARS = frozenset({"string_value", "int_value", "bool_value"})


def _nesting(depth: int, limits: Limits, path: str) -> int:
    """The depth of a nested attribute value one level down; refuses past the limit (before any
    recursion could go deep)."""
    if depth >= limits.depth:
        raise OtlpDecodeError(str(too_deep(f"The attribute value at {path}", limits)))
    return depth + 1


def _pb_value(value: Any, limits: Limits, path: str, depth: int = 0) -> Any:
    which = value.WhichOneof("value")
    if which in _SCALARS:
        return getattr(value, which)
    if which == "double_value":
        number = value.double_value
        return number if math.isfinite(number) else str(number)
    if which == "array_value":
        inner = _nesting(depth, limits, path)
        return [_pb_value(item, limits, path, inner) for item in value.array_value.values]
    if which == "kvlist_value":
        inner = _nesting(depth, limits, path)
        return {pair.key: _pb_value(pair.value, limits, path, inner) for pair in value.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None


def _pb_attributes(pairs: Sequence[Any], limits: Limits, truncation: Truncation, path: str) -> dict[str, Any]:
    """The first ``limits.attributes`` attributes (the rest counted as dropped), long strings cut."""
    kept = pairs[: limits.attributes]
    truncation.drop("dropped_attributes_count", len(pairs) - len(kept))
    values = {pair.key: _pb_value(pair.value, limits, f"{path}[{pair.key!r:.40}]") for pair in kept}
    return bounded_attributes(values, limits, truncation, "dropped_attributes_count")


def _pb_event(event: Any, limits: Limits, strings: Truncation) -> dict[str, Any]:
    own = Truncation()
    attributes = _pb_attributes(event.attributes, limits, own, "a span event's attributes")
    strings.strings += own.strings
    decoded = {"name": event.name, "time_ns": event.time_unix_nano, "attributes": attributes}
    decoded["dropped_attributes_count"] = event.dropped_attributes_count
    return _drop_empty(say_truncation(decoded, Truncation(counts=own.counts)))


def _pb_link(link: Any, limits: Limits, strings: Truncation) -> dict[str, Any]:
    own = Truncation()
    attributes = _pb_attributes(link.attributes, limits, own, "a span link's attributes")
    strings.strings += own.strings
    decoded = {
        "trace_id": link.trace_id.hex(),
        "span_id": link.span_id.hex(),
        "trace_state": link.trace_state,
        "attributes": attributes,
        "flags": link.flags,
        "dropped_attributes_count": link.dropped_attributes_count,
    }
    return _drop_empty(say_truncation(decoded, Truncation(counts=own.counts)))


def _pb_detail(span: Any, scope: dict[str, Any], limits: Limits, truncation: Truncation) -> dict[str, Any]:
    """The span's detail; ``truncation`` already holds what its attributes lost and gains what
    its events and links lose, all said on the detail."""
    detail: dict[str, Any] = {"scope": scope}
    if span.flags:
        detail["flags"] = span.flags
    if span.trace_state:
        detail["trace_state"] = span.trace_state
    events, links = span.events[: limits.span_events], span.links[: limits.span_links]
    truncation.drop("dropped_events_count", len(span.events) - len(events))
    truncation.drop("dropped_links_count", len(span.links) - len(links))
    if events:
        detail["events"] = [_pb_event(event, limits, truncation) for event in events]
    if links:
        detail["links"] = [_pb_link(link, limits, truncation) for link in links]
    for name in ("dropped_attributes_count", "dropped_events_count", "dropped_links_count"):
        if getattr(span, name):
            detail[name] = getattr(span, name)
    return say_truncation(detail, truncation)


def _pb_scope(scope_spans: Any, limits: Limits) -> dict[str, Any]:
    pb_scope = scope_spans.scope
    truncation = Truncation()
    attributes = _pb_attributes(pb_scope.attributes, limits, truncation, "scope attributes")
    scope = {
        "name": pb_scope.name,
        "version": pb_scope.version,
        "schema_url": scope_spans.schema_url,
        "attributes": attributes,
        "dropped_attributes_count": pb_scope.dropped_attributes_count,
    }
    return _drop_empty(say_truncation(scope, truncation))


Request = TypeVar("Request", bound=Message)


def parsed_request(body: bytes, request: Request, layout: WireLayout, what: str, limits: Limits) -> Request:
    """``request`` filled from a protobuf body, once its counts on the wire are within ``limits``
    (traces and logs alike)."""
    try:
        check_otlp_request(body, layout, what, limits)
    except LimitExceeded as error:
        raise OtlpDecodeError(str(error)) from None
    try:
        request.ParseFromString(body)
    except (DecodeError, ValueError, RecursionError) as error:
        raise OtlpDecodeError(f"The body is not a valid protobuf {type(request).__name__}: {error}") from None
    return request


def loaded_json(body: bytes, limits: Limits) -> Any:
    """A JSON body, refused unparsed past ``limits.elements`` values (traces and logs alike)."""
    try:
        check_json_elements(body, limits)
        return json.loads(body)
    except LimitExceeded as error:
        raise OtlpDecodeError(str(error)) from None
    except (ValueError, RecursionError) as error:
        raise OtlpDecodeError(f"The body is not valid JSON: {error}") from None


def decode_protobuf(body: bytes, limits: Limits | None = None) -> TraceBatch:
    limits = limits or current()
    request = parsed_request(body, ExportTraceServiceRequest(), TRACES_LAYOUT, "spans", limits)
    batch = TraceBatch()
    for resource_spans in request.resource_spans:
        resource_truncation = Truncation()
        resource = _pb_attributes(resource_spans.resource.attributes, limits, resource_truncation, "resource attributes")
        resource_dropped = resource_truncation.counts.get("dropped_attributes_count", 0)
        resource_dropped += resource_spans.resource.dropped_attributes_count
        service = resource.get("service.name")
        service = service if isinstance(service, str) and service else UNKNOWN_SERVICE
        for scope_spans in resource_spans.scope_spans:
            scope = _pb_scope(scope_spans, limits)
            for span in scope_spans.spans:
                trace_id, span_id, parent = span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex()
                problem = id_problem(trace_id, 16, "trace_id") or id_problem(span_id, 8, "span_id")
                if problem is None and parent and len(parent) != 16:
                    problem = f"parent_span_id must be 8 bytes, got {len(parent) // 2}"
                problem = problem or time_problem(span.start_time_unix_nano, span.end_time_unix_nano)
                if problem:
                    batch.reject(f"span {span.name!r:.80}: {problem}")
                    continue
                truncation = Truncation(strings=resource_truncation.strings)
                truncation.drop("resource_dropped_attributes_count", resource_dropped)
                attributes = _pb_attributes(span.attributes, limits, truncation, "span attributes")
                batch.records.append(
                    span_record(
                        trace_id=trace_id,
                        span_id=span_id,
                        parent_span_id="" if parent.count("0") == len(parent) else parent,
                        name=span.name,
                        service=service,
                        kind=span.kind,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        status_code=span.status.code,
                        status_message=span.status.message,
                        attributes=attributes,
                        resource=resource,
                        detail=_pb_detail(span, scope, limits, truncation),
                    )
                )
    return batch


# --- OTLP/JSON ---------------------------------------------------------------------------------
# The OTLP/JSON mapping: lowerCamelCase keys, trace and span ids as (case-insensitive) hex, enums
# as integers, 64-bit integers as decimal strings or numbers; unknown fields are ignored.


def _object(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise OtlpDecodeError(f"{path} must be a JSON object.")
    return value


def _list(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise OtlpDecodeError(f"{path} must be a JSON array.")
    return value


def _string(value: Any, path: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise OtlpDecodeError(f"{path} must be a string.")
    return value


def _integer(value: Any, path: str, low: int = 0, high: int = UINT64_MAX) -> int:
    if value is None:
        return 0
    if isinstance(value, str) and DECIMAL.fullmatch(value.strip()):
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    else:
        raise OtlpDecodeError(f"{path} must be an integer (a number or a decimal string), got {value!r:.40}.")
    if not low <= number <= high:
        raise OtlpDecodeError(f"{path} is out of range: {number}.")
    return number


def _enum(value: Any, names: dict[str, int], path: str) -> int:
    if isinstance(value, str) and value in names:
        return names[value]
    return _integer(value, path, INT64_MIN, INT64_MAX)


def _hex_id(value: Any, path: str) -> str:
    text = _string(value, path).lower()
    if text.strip("0123456789abcdef"):
        raise OtlpDecodeError(f"{path} must be hex-encoded, got {text!r:.40}.")
    return text


def _json_value(value: Any, path: str, limits: Limits, depth: int = 0) -> Any:
    value = _object(value, path)
    if "stringValue" in value:
        return _string(value["stringValue"], path + ".stringValue")
    if "boolValue" in value:
        if not isinstance(value["boolValue"], bool):
            raise OtlpDecodeError(f"{path}.boolValue must be true or false.")
        return value["boolValue"]
    if "intValue" in value:
        return _integer(value["intValue"], path + ".intValue", INT64_MIN, INT64_MAX)
    if "doubleValue" in value:
        number = value["doubleValue"]
        if isinstance(number, str) and number in ("NaN", "Infinity", "-Infinity"):
            return number
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise OtlpDecodeError(f"{path}.doubleValue must be a number.")
        return float(number)
    if "arrayValue" in value:
        inner = _nesting(depth, limits, path)
        items = _list(_object(value["arrayValue"], path + ".arrayValue").get("values"), path + ".arrayValue.values")
        return [_json_value(item, f"{path}.arrayValue.values[{index}]", limits, inner) for index, item in enumerate(items)]
    if "kvlistValue" in value:
        inner = _nesting(depth, limits, path)
        pairs = _list(_object(value["kvlistValue"], path + ".kvlistValue").get("values"), path + ".kvlistValue.values")
        return _json_pairs(pairs, path + ".kvlistValue.values", limits, inner)
    if "bytesValue" in value:
        return _string(value["bytesValue"], path + ".bytesValue")
    return None


def _json_pairs(pairs: list[Any], path: str, limits: Limits, depth: int = 0) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for index, pair in enumerate(pairs):
        pair = _object(pair, f"{path}[{index}]")
        key = _string(pair.get("key"), f"{path}[{index}].key")
        attributes[key] = _json_value(pair.get("value"), f"{path}[{index}].value", limits, depth)
    return attributes


def _json_attributes(pairs: Any, path: str, limits: Limits, truncation: Truncation) -> dict[str, Any]:
    """The first ``limits.attributes`` attributes (the rest counted as dropped), long strings cut."""
    pairs = _list(pairs, path)
    kept = pairs[: limits.attributes]
    truncation.drop("dropped_attributes_count", len(pairs) - len(kept))
    return bounded_attributes(_json_pairs(kept, path, limits), limits, truncation, "dropped_attributes_count")


def _json_events(events: Any, path: str, limits: Limits, truncation: Truncation) -> list[dict[str, Any]]:
    decoded = []
    events = _list(events, path)
    truncation.drop("dropped_events_count", len(events) - limits.span_events)
    for index, event in enumerate(events[: limits.span_events]):
        event = _object(event, f"{path}[{index}]")
        own = Truncation()
        attributes = _json_attributes(event.get("attributes"), f"{path}[{index}].attributes", limits, own)
        truncation.strings += own.strings
        item = {
            "name": _string(event.get("name"), f"{path}[{index}].name"),
            "time_ns": _integer(event.get("timeUnixNano"), f"{path}[{index}].timeUnixNano"),
            "attributes": attributes,
            "dropped_attributes_count": _integer(event.get("droppedAttributesCount"), f"{path}[{index}].droppedAttributesCount"),
        }
        decoded.append(_drop_empty(say_truncation(item, Truncation(counts=own.counts))))
    return decoded


def _json_links(links: Any, path: str, limits: Limits, truncation: Truncation) -> list[dict[str, Any]]:
    decoded = []
    links = _list(links, path)
    truncation.drop("dropped_links_count", len(links) - limits.span_links)
    for index, link in enumerate(links[: limits.span_links]):
        link = _object(link, f"{path}[{index}]")
        own = Truncation()
        attributes = _json_attributes(link.get("attributes"), f"{path}[{index}].attributes", limits, own)
        truncation.strings += own.strings
        item = {
            "trace_id": _hex_id(link.get("traceId"), f"{path}[{index}].traceId"),
            "span_id": _hex_id(link.get("spanId"), f"{path}[{index}].spanId"),
            "trace_state": _string(link.get("traceState"), f"{path}[{index}].traceState"),
            "attributes": attributes,
            "flags": _integer(link.get("flags"), f"{path}[{index}].flags", 0, 2**32 - 1),
            "dropped_attributes_count": _integer(link.get("droppedAttributesCount"), f"{path}[{index}].droppedAttributesCount"),
        }
        decoded.append(_drop_empty(say_truncation(item, Truncation(counts=own.counts))))
    return decoded


@dataclass(slots=True)
class _Group:
    """What the spans of one resource and scope share."""

    service: str
    resource: dict[str, Any]
    scope: dict[str, Any]
    resource_truncation: Truncation


def _json_span(span: dict[str, Any], path: str, group: _Group, batch: TraceBatch, limits: Limits) -> None:
    trace_id, span_id = _hex_id(span.get("traceId"), path + ".traceId"), _hex_id(span.get("spanId"), path + ".spanId")
    parent = _hex_id(span.get("parentSpanId"), path + ".parentSpanId")
    status = _object(span.get("status"), path + ".status")
    truncation = Truncation(strings=group.resource_truncation.strings)
    truncation.drop("resource_dropped_attributes_count", group.resource_truncation.counts.get("dropped_attributes_count", 0))
    attributes = _json_attributes(span.get("attributes"), path + ".attributes", limits, truncation)
    detail: dict[str, Any] = {"scope": group.scope}
    detail.update(
        _drop_empty(
            {
                "flags": _integer(span.get("flags"), path + ".flags", 0, 2**32 - 1),
                "trace_state": _string(span.get("traceState"), path + ".traceState"),
                "events": _json_events(span.get("events"), path + ".events", limits, truncation),
                "links": _json_links(span.get("links"), path + ".links", limits, truncation),
                "dropped_attributes_count": _integer(span.get("droppedAttributesCount"), path + ".droppedAttributesCount"),
                "dropped_events_count": _integer(span.get("droppedEventsCount"), path + ".droppedEventsCount"),
                "dropped_links_count": _integer(span.get("droppedLinksCount"), path + ".droppedLinksCount"),
            }
        )
    )
    record: dict[str, Any] = dict(
        name=_string(span.get("name"), path + ".name"),
        service=group.service,
        kind=_enum(span.get("kind"), KIND_ENUM, path + ".kind"),
        start_ns=_integer(span.get("startTimeUnixNano"), path + ".startTimeUnixNano"),
        end_ns=_integer(span.get("endTimeUnixNano"), path + ".endTimeUnixNano"),
        status_code=_enum(status.get("code"), STATUS_ENUM, path + ".status.code"),
        status_message=_string(status.get("message"), path + ".status.message"),
        attributes=attributes,
        resource=group.resource,
        detail=say_truncation(detail, truncation),
    )
    problem = id_problem(trace_id, 16, "traceId") or id_problem(span_id, 8, "spanId")
    if problem is None and parent and len(parent) != 16:
        problem = f"parentSpanId must be 8 bytes, got {len(parent) // 2}"
    problem = problem or time_problem(record["start_ns"], record["end_ns"])
    if problem:
        batch.reject(f"span {record['name']!r:.80}: {problem}")
        return
    parent = "" if parent.count("0") == len(parent) else parent
    batch.records.append(span_record(trace_id=trace_id, span_id=span_id, parent_span_id=parent, **record))


def _json_scope(scope_spans: dict[str, Any], s_path: str, limits: Limits) -> dict[str, Any]:
    raw_scope = _object(scope_spans.get("scope"), s_path + ".scope")
    truncation = Truncation()
    attributes = _json_attributes(raw_scope.get("attributes"), s_path + ".scope.attributes", limits, truncation)
    scope = {
        "name": _string(raw_scope.get("name"), s_path + ".scope.name"),
        "version": _string(raw_scope.get("version"), s_path + ".scope.version"),
        "attributes": attributes,
        "schema_url": _string(scope_spans.get("schemaUrl"), s_path + ".schemaUrl"),
        "dropped_attributes_count": _integer(raw_scope.get("droppedAttributesCount"), s_path + ".scope.droppedAttributesCount"),
    }
    return _drop_empty(say_truncation(scope, truncation))


def decode_json(body: bytes, limits: Limits | None = None) -> TraceBatch:
    limits = limits or current()
    document = _object(loaded_json(body, limits), "The body")
    batch = TraceBatch()
    items = 0
    for r_index, resource_spans in enumerate(_list(document.get("resourceSpans"), "resourceSpans")):
        r_path = f"resourceSpans[{r_index}]"
        resource_spans = _object(resource_spans, r_path)
        items += 1
        raw_resource = _object(resource_spans.get("resource"), r_path + ".resource")
        resource_truncation = Truncation()
        resource = _json_attributes(raw_resource.get("attributes"), r_path + ".resource.attributes", limits, resource_truncation)
        sender_dropped = _integer(raw_resource.get("droppedAttributesCount"), r_path + ".resource.droppedAttributesCount")
        resource_truncation.drop("dropped_attributes_count", sender_dropped)
        service = resource.get("service.name")
        service = service if isinstance(service, str) and service else UNKNOWN_SERVICE
        all_scope_spans = _list(resource_spans.get("scopeSpans"), r_path + ".scopeSpans")
        for s_index, scope_spans in enumerate(all_scope_spans):
            s_path = f"{r_path}.scopeSpans[{s_index}]"
            scope_spans = _object(scope_spans, s_path)
            spans = _list(scope_spans.get("spans"), s_path + ".spans")
            items += 1 + len(spans)
            if items > limits.items:
                too_many = too_many_items(f"more than {limits.items}", "spans, resource and scope groups", limits)
                raise OtlpDecodeError(str(too_many))
            group = _Group(service, resource, _json_scope(scope_spans, s_path, limits), resource_truncation)
            for index, span in enumerate(spans):
                path = f"{s_path}.spans[{index}]"
                _json_span(_object(span, path), path, group, batch, limits)
    return batch


def decode_traces(body: bytes, content_type: str, limits: Limits | None = None) -> TraceBatch:
    """``content_type`` is the media type essence: application/x-protobuf or application/json."""
    return decode_protobuf(body, limits) if content_type == PROTOBUF else decode_json(body, limits)


# --- answers -----------------------------------------------------------------------------------


def partial_success_answer(
    response_type: Any, rejected_field: str, content_type: str, rejected: int = 0, error_message: str = ""
) -> bytes:
    """An Export*ServiceResponse (``response_type``), with partial_success only when something was
    rejected; ``rejected_field`` is its count's name (``rejected_spans``, ``rejected_log_records``)."""
    if content_type == PROTOBUF:
        response = response_type()
        if rejected or error_message:
            setattr(response.partial_success, rejected_field, rejected)
            response.partial_success.error_message = error_message
        return response.SerializeToString()
    if not (rejected or error_message):
        return b"{}"
    # proto3 JSON: camelCase field names, int64 written as a decimal string.
    head, *rest = rejected_field.split("_")
    json_field = head + "".join(word.title() for word in rest)
    return json.dumps({"partialSuccess": {json_field: str(rejected), "errorMessage": error_message}}).encode()


def export_response(content_type: str, rejected: int = 0, error_message: str = "") -> bytes:
    """An ExportTraceServiceResponse."""
    return partial_success_answer(ExportTraceServiceResponse, "rejected_spans", content_type, rejected, error_message)


def status_body(content_type: str, code: int, message: str) -> bytes:
    """A google.rpc.Status, as OTLP/HTTP requires for 4xx and 5xx answers."""
    if content_type == PROTOBUF:
        return status_pb2.Status(code=code, message=message).SerializeToString()
    return json.dumps({"code": code, "message": message}).encode()


def answer_content_type(content_type: str) -> str:
    return PROTOBUF if content_type == PROTOBUF else JSON
