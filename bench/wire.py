"""Observation records back on the wire, for benchmarks that load a real server: spans as one
OTLP/HTTP protobuf export request (grouped by service, as each service's SDK would send them),
events as one CloudEvents batch (the HTTP binding's batched mode)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from tracing.records import ObservationRecord

OTLP_PATH, OTLP_TYPE = "/v1/traces", "application/x-protobuf"
EVENTS_PATH, EVENTS_TYPE = "/v1/events", "application/cloudevents-batch+json"
STATUS_ERROR = 2


def otlp_request(spans: Sequence[ObservationRecord]) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    def attributes(values: dict[str, Any]) -> list[KeyValue]:
        return [KeyValue(key=key, value=AnyValue(string_value=str(value))) for key, value in values.items()]

    by_service: dict[str, list[ObservationRecord]] = defaultdict(list)
    for record in spans:
        by_service[record.service].append(record)
    request = ExportTraceServiceRequest()
    for service, records in by_service.items():
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.extend(attributes({"service.name": service}))
        scope_spans = resource_spans.scope_spans.add()
        scope_spans.scope.name = "bench"
        for record in records:
            span = scope_spans.spans.add()
            span.trace_id, span.span_id = bytes.fromhex(record.trace_id), bytes.fromhex(record.span_id)
            if record.parent_span_id:
                span.parent_span_id = bytes.fromhex(record.parent_span_id)
            span.name, span.kind = record.name, record.span_kind
            span.start_time_unix_nano, span.end_time_unix_nano = record.start_ns, record.end_ns or record.start_ns
            span.attributes.extend(attributes(record.attributes))
            for link in record.detail.get("links", []):
                added = span.links.add()
                added.trace_id, added.span_id = bytes.fromhex(link["trace_id"]), bytes.fromhex(link["span_id"])
            if record.status == "error":
                span.status.code = STATUS_ERROR
    return request.SerializeToString()


def cloudevents_batch(events: Sequence[ObservationRecord]) -> bytes:
    batch = []
    for record in events:
        event = {
            "specversion": "1.0",
            "id": record.event_id,
            "source": record.event_source,
            "type": record.name,
            "time": datetime.fromtimestamp(record.start_ns / 1e9, tz=UTC).isoformat(),
            **{name: str(value) for name, value in record.attributes.items()},
        }
        if record.trace_id:
            event["traceparent"] = f"00-{record.trace_id}-{record.span_id}-01"
        if "data" in record.detail:
            event["datacontenttype"] = record.detail.get("datacontenttype", "application/json")
            event["data"] = record.detail["data"]
        batch.append(event)
    return json.dumps(batch).encode()


def requests_for(records: Sequence[ObservationRecord], events_per_batch: int = 100) -> list[tuple[str, str, bytes, int]]:
    """``(path, content type, body, observations)`` for one slice of arrivals: its spans in one
    export request, its events in batches."""
    spans = [record for record in records if record.kind == "span"]
    events = [record for record in records if record.kind == "event"]
    requests = [(OTLP_PATH, OTLP_TYPE, otlp_request(spans), len(spans))] if spans else []
    for start in range(0, len(events), events_per_batch):
        part = events[start : start + events_per_batch]
        requests.append((EVENTS_PATH, EVENTS_TYPE, cloudevents_batch(part), len(part)))
    return requests
