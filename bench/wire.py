"""Observation records back on the wire, for benchmarks that load a real server: spans as one
OTLP/HTTP protobuf export request (grouped by service, as each service's SDK would send them),
events as one CloudEvents batch (the HTTP binding's batched mode).

``python -m bench wire`` measures the decoders alone (no HTTP, no database): items decoded per
second of CPU time, the limits' checks on the wire included, for an SDK's export (512 spans, about 180 KB), an
OpenTelemetry Collector's batch (8,192 spans, 2.9 MB), a 16 MiB export (46,000 spans), the same as
OTLP/JSON, and CloudEvents batches of 100. Each figure is the median of ``BENCH_WIRE_ROUNDS`` (7)
rounds of about ``BENCH_WIRE_SECONDS`` (1) of CPU time each.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
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


# --- decoding alone ------------------------------------------------------------------------------


def _per_cpu_second(decode: Callable[[], object], items: int, seconds: float) -> float:
    """Items decoded per second of this process's CPU time: on a machine shared with other work,
    steadier than wall-clock time."""
    calls, started = 0, time.process_time()
    while calls == 0 or time.process_time() - started < seconds:
        decode()
        calls += 1
    return calls * items / (time.process_time() - started)


def _as_json(body: bytes) -> bytes:
    """The same export in OTLP/JSON (ids in hex, where proto3's JSON mapping has base64)."""
    import base64

    from google.protobuf.json_format import MessageToDict
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    document = MessageToDict(ExportTraceServiceRequest.FromString(body))
    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for name in ("traceId", "spanId", "parentSpanId"):
                    if name in span:
                        span[name] = base64.b64decode(span[name]).hex()
    return json.dumps(document).encode()


def main() -> dict[str, Any]:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "choreoscope.settings")
    django.setup()
    from bench.ingest import event_body, span_body
    from collectors import cloudevents, otlp

    rounds, seconds = int(os.environ.get("BENCH_WIRE_ROUNDS", "7")), float(os.environ.get("BENCH_WIRE_SECONDS", "1"))
    rng = random.Random(1)
    sdk, collector, large = span_body(rng, 512), span_body(rng, 8192), span_body(rng, 46_000)
    cases: dict[str, tuple[Callable[[], object], int, int]] = {
        "protobuf_512_spans": (lambda: otlp.decode_protobuf(sdk), 512, len(sdk)),
        "protobuf_8192_spans": (lambda: otlp.decode_protobuf(collector), 8192, len(collector)),
        "protobuf_46000_spans": (lambda: otlp.decode_protobuf(large), 46_000, len(large)),
    }
    sdk_json, events = _as_json(sdk), event_body(rng, 100)
    cases["json_512_spans"] = (lambda: otlp.decode_json(sdk_json), 512, len(sdk_json))
    cases["cloudevents_batch_100"] = (lambda: cloudevents.decode_batch(events), 100, len(events))
    results: dict[str, Any] = {"rounds": rounds, "note": "2-core machine shared with other work while measured"}
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):  # the cases alternate, so a busy moment of the machine spreads over all
        for name, (decode, items, _) in cases.items():
            samples[name].append(_per_cpu_second(decode, items, seconds))
    for name, (_, _, size) in cases.items():
        results[name] = {
            "body_bytes": size,
            "items_per_cpu_second_median": round(statistics.median(samples[name])),
            "items_per_cpu_second": sorted(round(value) for value in samples[name]),
        }
    return results
