"""Unmodified real clients against a running Choreoscope (``manage.py serve``): the OpenTelemetry
SDK's OTLP exporters (protobuf with and without gzip, and OTLP/JSON) and the CloudEvents SDK."""

from __future__ import annotations

import json
import uuid

import pytest
from cloudevents.v1.conversion import to_binary, to_structured
from cloudevents.v1.http import CloudEvent
from opentelemetry.exporter.otlp.common.http import Compression as JsonCompression
from opentelemetry.exporter.otlp.json.http import OTLPSpanExporter as JsonSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from tests.http import post

pytestmark = pytest.mark.slow

STORED = """
import json
from tracing.models import Observation
rows = Observation.objects.filter({field}__startswith={prefix!r}).order_by("id")
print(json.dumps([{{"name": o.name, "service": o.service, "kind": o.kind, "span_kind": o.span_kind, "status": o.status,
    "trace_id": o.trace_id, "span_id": o.span_id, "parent_span_id": o.parent_span_id, "start_ns": o.start_ns, "end_ns": o.end_ns,
    "attributes": o.attributes, "resource": o.resource, "detail": o.detail, "event_id": o.event_id}} for o in rows]))
"""


def stored(server, field: str, prefix: str) -> list[dict]:
    output = server.manage("shell", "-c", STORED.format(field=field, prefix=prefix)).stdout
    return json.loads(output.strip().splitlines()[-1])


def finished_spans(service: str) -> list:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service, "service.version": "2.1"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("checkout.orders", "1.0")
    with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER, attributes={"order.id": "1042"}) as parent:  # noqa: SIM117 - the child links to the parent
        with tracer.start_as_current_span(
            "publish OrderCreated", kind=SpanKind.PRODUCER, links=[Link(parent.get_span_context(), {"link.reason": "batch"})]
        ) as child:
            child.add_event("retry", {"attempt": 2})
            child.set_status(Status(StatusCode.ERROR, "broker slow"))
    provider.shutdown()
    return list(memory.get_finished_spans())


@pytest.mark.parametrize(
    ("exporter_class", "compression"),
    [
        (OTLPSpanExporter, Compression.NoCompression),
        (OTLPSpanExporter, Compression.Gzip),
        (JsonSpanExporter, JsonCompression.NONE),
        (JsonSpanExporter, JsonCompression.DEFLATE),
    ],
    ids=["protobuf", "protobuf-gzip", "json", "json-deflate"],
)
def test_the_opentelemetry_sdk_exporters_deliver_spans_with_everything_kept(server, exporter_class, compression):
    service = f"checkout-{uuid.uuid4().hex[:8]}"
    spans = finished_spans(service)
    exporter = exporter_class(endpoint=f"{server.otlp_url}/v1/traces", compression=compression)
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    rows = {row["name"]: row for row in stored(server, "service", service)}
    assert set(rows) == {"POST /orders", "publish OrderCreated"}
    parent, child = rows["POST /orders"], rows["publish OrderCreated"]
    assert child["parent_span_id"] == parent["span_id"] and child["trace_id"] == parent["trace_id"]
    assert (child["span_kind"], child["status"], parent["attributes"]) == (4, "error", {"order.id": "1042"})
    assert child["start_ns"] == spans[0].start_time and child["end_ns"] == spans[0].end_time  # nanosecond precision
    assert child["resource"]["service.version"] == "2.1"
    assert child["detail"]["scope"] == {"name": "checkout.orders", "version": "1.0"}
    assert child["detail"]["events"][0]["attributes"] == {"attempt": 2}
    assert child["detail"]["links"][0]["span_id"] == parent["span_id"]
    assert child["detail"]["links"][0]["attributes"] == {"link.reason": "batch"}
    # Exporting the same spans again changes nothing.
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    assert len(stored(server, "service", service)) == 2


@pytest.mark.parametrize("mode", [to_binary, to_structured], ids=["binary", "structured"])
def test_the_cloudevents_sdk_delivers_events_in_binary_and_structured_mode(server, mode):
    event_id = f"sdk-{uuid.uuid4().hex}"
    event = CloudEvent(
        {
            "id": event_id,
            "type": "OrderCreated",
            "source": "/checkout",
            "correlationid": "order-1042",
            "datacontenttype": "application/json",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        },
        {"order_id": 1042},
    )
    headers, body = mode(event)
    assert post(f"{server.url}/v1/events", body, dict(headers)) == 202
    [row] = stored(server, "event_id", event_id)
    assert (row["kind"], row["name"], row["service"]) == ("event", "OrderCreated", "/checkout")
    assert (row["trace_id"], row["span_id"]) == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
    assert row["attributes"]["correlationid"] == "order-1042" and row["detail"]["data"] == {"order_id": 1042}
