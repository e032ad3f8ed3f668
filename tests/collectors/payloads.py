"""Request bodies the tests send, built with the generated OTLP classes or as OTLP/JSON."""

from __future__ import annotations

import json
import os
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


def random_hex(n_bytes: int) -> str:
    return os.urandom(n_bytes).hex()


def kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def protobuf_request(spans: list[dict[str, Any]], service: str = "checkout") -> bytes:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend([kv("service.name", service), kv("deployment.environment", "test")])
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "tests.collectors"
    scope_spans.scope.version = "1.0"
    for spec in spans:
        span = scope_spans.spans.add()
        span.trace_id = bytes.fromhex(spec.get("trace_id", TRACE_ID))
        span.span_id = bytes.fromhex(spec.get("span_id") or random_hex(8))
        if spec.get("parent_span_id"):
            span.parent_span_id = bytes.fromhex(spec["parent_span_id"])
        span.name = spec.get("name", "POST /orders")
        span.kind = spec.get("kind", Span.SPAN_KIND_SERVER)
        span.start_time_unix_nano = spec.get("start", 1_700_000_000_123_456_789)
        span.end_time_unix_nano = spec.get("end", 1_700_000_000_223_456_789)
        span.attributes.extend(kv(key, value) for key, value in spec.get("attributes", {}).items())
        if spec.get("error"):
            span.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message=spec["error"]))
    return request.SerializeToString()


def json_span(**overrides: Any) -> dict[str, Any]:
    span = {
        "traceId": TRACE_ID.upper(),
        "spanId": random_hex(8),
        "name": "publish OrderCreated",
        "kind": 4,
        "startTimeUnixNano": "1700000000123456789",
        "endTimeUnixNano": 1700000000223456789,
        "attributes": [{"key": "order.id", "value": {"stringValue": "1042"}}, {"key": "retries", "value": {"intValue": "3"}}],
        "status": {"code": 1},
        "someFutureField": {"ignored": True},
    }
    span.update(overrides)
    return span


def json_request(spans: list[dict[str, Any]], service: str = "checkout") -> bytes:
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                    "scopeSpans": [{"scope": {"name": "tests.collectors", "version": "1.0"}, "spans": spans}],
                }
            ]
        }
    ).encode()


def cloudevent(**overrides: Any) -> dict[str, Any]:
    event = {
        "specversion": "1.0",
        "id": random_hex(8),
        "source": "/checkout",
        "type": "OrderCreated",
        "time": "2026-11-22T10:00:00.123456789Z",
        "datacontenttype": "application/json",
        "correlationid": "order-1042",
        "data": {"order_id": 1042},
    }
    event.update(overrides)
    return {key: value for key, value in event.items() if value is not None}
