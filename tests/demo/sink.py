"""A tiny Choreoscope stand-in for demo tests: records the OTLP spans and CloudEvents it is sent."""

from __future__ import annotations

import gzip
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse


@dataclass
class SinkSpan:
    service: str
    name: str
    kind: int  # OTLP SpanKind: 4 producer, 5 consumer
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    links: list[tuple[str, str]]
    status_code: int
    start_ns: int = 0


@dataclass
class SinkLogLine:
    service: str
    severity: str
    body: str
    trace_id: str
    span_id: str


def decode_log_lines(body: bytes) -> list[SinkLogLine]:
    request = ExportLogsServiceRequest()
    request.ParseFromString(body)
    lines = []
    for resource_logs in request.resource_logs:
        service = next(a.value.string_value for a in resource_logs.resource.attributes if a.key == "service.name")
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                text = record.body.string_value
                lines.append(SinkLogLine(service, record.severity_text, text, record.trace_id.hex(), record.span_id.hex()))
    return lines


@dataclass
class Sink:
    url: str = ""
    spans: list[SinkSpan] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    log_lines: list[SinkLogLine] = field(default_factory=list)
    authorizations: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def events_of(self, event_type: str) -> list[dict[str, Any]]:
        with self.lock:
            return [event for event in self.events if event["type"] == event_type]


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def decode_spans(body: bytes) -> list[SinkSpan]:
    request = ExportTraceServiceRequest.FromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    SinkSpan(
                        service=resource.get("service.name", ""),
                        name=span.name,
                        kind=span.kind,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        attributes={a.key: _value(a.value) for a in span.attributes},
                        links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
                        status_code=span.status.code,
                        start_ns=span.start_time_unix_nano,
                    )
                )
    return spans


def start_sink() -> tuple[Sink, ThreadingHTTPServer]:
    sink = Sink()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            with sink.lock:
                sink.authorizations.add(self.headers.get("Authorization", ""))
            if self.path == "/v1/traces":
                spans = decode_spans(body)
                with sink.lock:
                    sink.spans.extend(spans)
                self._answer(200, "application/x-protobuf", ExportTraceServiceResponse().SerializeToString())
            elif self.path == "/v1/logs":
                lines = decode_log_lines(body)
                with sink.lock:
                    sink.log_lines.extend(lines)
                self._answer(200, "application/x-protobuf", ExportLogsServiceResponse().SerializeToString())
            elif self.path == "/v1/events":
                parsed = json.loads(body)
                with sink.lock:
                    sink.events.extend(parsed if isinstance(parsed, list) else [parsed])
                self._answer(202, "application/json", b"{}")
            else:
                self._answer(404, "text/plain", b"not here")

        def _answer(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return sink, server


def delete_rabbit_namespace(prefix: str) -> None:
    """Delete the demo's exchanges and queues of ``prefix`` from RabbitMQ, if it runs there."""
    import os

    import pika
    import pika.exceptions

    from demo.bus import exchange_name, queue_name
    from demo.catalog import SERVICES, TOPICS

    url = os.environ.get("CHOREOSCOPE_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
    try:
        connection = pika.BlockingConnection(pika.URLParameters(url))
    except pika.exceptions.AMQPError:
        return  # no broker here: nothing was made on it
    with connection:
        channel = connection.channel()
        for group in (*SERVICES, "choreoscope"):
            channel.queue_delete(queue_name(prefix, group))
        for topic in TOPICS:
            channel.exchange_delete(exchange_name(prefix, topic))
