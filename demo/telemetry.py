"""Each demo service is instrumented as a real one would be: its own TracerProvider and
LoggerProvider with its own Resource, batch processors and the OTLP/HTTP protobuf exporters, and
its own clock."""

from __future__ import annotations

import time
from dataclasses import dataclass

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, SpanContext, TraceFlags

SERVICE_VERSION = "1.4.2"


@dataclass(frozen=True, slots=True)
class ServiceClock:
    """The service host's wall clock, ``skew_ms`` off true time."""

    skew_ms: float = 0.0

    def now_ns(self) -> int:
        return time.time_ns() + int(self.skew_ms * 1_000_000)


def traces_endpoint(target: str, environ: dict[str, str]) -> str:
    """Where spans go: the standard OTEL_EXPORTER_OTLP_* variables when set, else the target."""
    if environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or target
    return base.rstrip("/") + "/v1/traces"


def logs_endpoint(traces: str) -> str:
    """Where log records go: beside the spans (the OTLP/HTTP paths differ only in the signal)."""
    return traces[: -len("/v1/traces")] + "/v1/logs" if traces.endswith("/v1/traces") else traces.rstrip("/") + "/v1/logs"


def service_resource(service: str) -> Resource:
    return Resource.create(
        {
            "service.name": service,
            "service.namespace": "shop",
            "service.version": SERVICE_VERSION,
            "service.instance.id": f"{service}-1",
            "deployment.environment.name": "demo",
        }
    )


def service_tracer_provider(service: str, endpoint: str, token: str | None) -> TracerProvider:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    exporter = OTLPSpanExporter(endpoint=endpoint, headers=headers, compression=Compression.Gzip, timeout=5)
    provider = TracerProvider(resource=service_resource(service))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500, max_export_batch_size=512))
    return provider


def service_logger_provider(service: str, endpoint: str, token: str | None) -> LoggerProvider:
    """The service's plain log lines (not its business events), sent as OTLP log records; each
    carries the span it was written in."""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    exporter = OTLPLogExporter(endpoint=endpoint, headers=headers, compression=Compression.Gzip, timeout=5)
    provider = LoggerProvider(resource=service_resource(service))
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter, schedule_delay_millis=500, max_export_batch_size=512))
    return provider


def format_traceparent(context: SpanContext) -> str:
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def parse_traceparent(value: str) -> SpanContext | None:
    """W3C Trace Context ``version-traceid-spanid-flags``; None if malformed or all-zero."""
    parts = value.strip().split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16 or len(parts[3]) != 2:
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags))


def producer_link(traceparent: str, message_id: str) -> list[Link]:
    """The link a messaging consumer span carries to the context the message was created in."""
    context = parse_traceparent(traceparent)
    return [Link(context, {"messaging.message.id": message_id})] if context else []
