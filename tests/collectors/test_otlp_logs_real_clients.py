"""Unmodified OpenTelemetry SDK exporters against a running Choreoscope (``manage.py serve``):
spans and event log records over OTLP/gRPC, event log records over OTLP/HTTP (protobuf and
JSON). The checkout sent as spans and log records comes out as the same flow as the checkout sent
as spans and CloudEvents."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.json.http._log_exporter import OTLPLogExporter as JsonLogExporter
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind

from collectors.otlp_grpc import LOGS_SERVICE
from tests.collectors.test_real_clients import stored
from tests.conftest import RunningServer, start_server, stop_server
from tests.http import read_token
from tests.tracing.test_end_to_end import REACTIONS, api, run_checkout, wait_for_flow

pytestmark = pytest.mark.slow


class LoggingService:
    """One instrumented service that emits its business events as log records with an event name."""

    def __init__(self, name: str) -> None:
        resource = Resource.create({"service.name": name})
        self.spans, self.logs = InMemorySpanExporter(), InMemoryLogRecordExporter()
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.logs))
        self.tracer = self.tracer_provider.get_tracer(f"shop.{name}")
        self.logger = self.logger_provider.get_logger(f"shop.{name}")

    def emit_event(self, event_type: str, key: str, cause: str | None = None) -> str:
        """An event in the current span's context; returns its id."""
        event_id = f"{event_type}-{uuid.uuid4().hex[:12]}"
        attributes = {"correlationid": key, "cloudevents.event_id": event_id}
        if cause:
            attributes["causationid"] = cause
        self.logger.emit(event_name=event_type, body={"order_id": key}, attributes=attributes)
        return event_id

    def export_grpc(self, target: str, headers: dict[str, str] | None = None) -> tuple[SpanExportResult, LogRecordExportResult]:
        spans = GrpcSpanExporter(endpoint=target, insecure=True, headers=headers, compression=grpc.Compression.Gzip, timeout=10)
        logs = GrpcLogExporter(endpoint=target, insecure=True, headers=headers, timeout=10)
        try:
            return spans.export(self.spans.get_finished_spans()), logs.export(self.logs.get_finished_logs())
        finally:
            spans.shutdown()
            logs.shutdown()


def run_checkout_with_log_events(target: str, key: str) -> int:
    """The running example with every event a log record, consumers delivered first; returns
    how many observations were sent."""
    checkout = LoggingService("checkout")
    with (
        checkout.tracer.start_as_current_span("POST /checkout", kind=SpanKind.SERVER, attributes={"order.id": key}),
        checkout.tracer.start_as_current_span(
            "OrderCreated send", kind=SpanKind.PRODUCER, attributes={"messaging.operation.type": "send"}
        ) as producer,
    ):
        order_created = checkout.emit_event("OrderCreated", key)
    consumers = []
    for name, reaction in REACTIONS.items():
        service = LoggingService(name)
        with service.tracer.start_as_current_span(
            "OrderCreated process",
            context=Context(),
            kind=SpanKind.CONSUMER,
            links=[Link(producer.get_span_context())],
            attributes={"messaging.operation.type": "process", "cloudevents.event_id": order_created},
        ):
            with service.tracer.start_as_current_span(f"{name} work"):
                pass
            service.emit_event(reaction, key, cause=order_created)
        consumers.append(service)
    for service in [*consumers, checkout]:
        assert service.export_grpc(target) == (SpanExportResult.SUCCESS, LogRecordExportResult.SUCCESS)
    return 1 + 2 + len(REACTIONS) * 3


def flow_shape(flow: dict) -> tuple:
    """A flow without its ids and times: what any transport must agree on."""
    names = {node["id"]: (node["service"], node["name"], node["kind"]) for node in flow["nodes"]}
    edges = sorted((names[edge["source"]], names[edge["target"]], edge["kind"]) for edge in flow["edges"])
    return flow["type"], flow["status"], flow["services"], sorted(names.values()), edges


def test_the_checkout_over_grpc_with_log_events_is_the_same_flow_as_over_http_with_cloudevents(server):
    token = read_token(server)
    http_key, grpc_key = f"order-{uuid.uuid4().hex[:8]}", f"order-{uuid.uuid4().hex[:8]}"
    over_http = wait_for_flow(server, http_key, token, run_checkout(server, http_key))
    over_grpc = wait_for_flow(server, grpc_key, token, run_checkout_with_log_events(server.grpc_target, grpc_key))
    assert flow_shape(over_grpc) == flow_shape(over_http)
    assert over_grpc["type"] == "OrderCreated" and len(over_grpc["edges"]) >= 10
    assert api(server, f"/api/flows?key={grpc_key}", token)["results"][0]["id"] == over_grpc["id"]


def sdk_events(service: str) -> tuple[LoggingService, list]:
    """Two events and a plain log line, as the SDK hands them to an exporter."""
    emitter = LoggingService(service)
    with emitter.tracer.start_as_current_span("POST /orders"):
        emitter.logger.emit(event_name="OrderCreated", body={"order_id": "1042"}, attributes={"correlationid": "o-1042"})
        # The older convention: the event's name in an attribute.
        emitter.logger.emit(attributes={"event.domain": "shop", "event.name": "PaymentCaptured", "order.id": "1042"})
        emitter.logger.emit(body="cache warmed")
    return emitter, list(emitter.logs.get_finished_logs())


@pytest.mark.parametrize(
    "exporter",
    [
        lambda server: OTLPLogExporter(endpoint=f"{server.otlp_url}/v1/logs", compression=Compression.Gzip),
        lambda server: JsonLogExporter(endpoint=f"{server.otlp_url}/v1/logs"),
        lambda server: GrpcLogExporter(endpoint=server.grpc_target, insecure=True, compression=grpc.Compression.Gzip),
    ],
    ids=["http-protobuf-gzip", "http-json", "grpc-gzip"],
)
def test_sdk_log_exporters_deliver_events_once_however_often_they_export(server, exporter):
    service = f"orders-{uuid.uuid4().hex[:8]}"
    emitter, records = sdk_events(service)
    client = exporter(server)
    assert client.export(records) == LogRecordExportResult.SUCCESS
    rows = {row["name"]: row for row in stored(server, "service", service)}
    assert set(rows) == {"OrderCreated", "PaymentCaptured"}  # the plain log line is no step
    [span] = emitter.spans.get_finished_spans()
    created = rows["OrderCreated"]
    assert (created["kind"], created["trace_id"]) == ("event", format(span.context.trace_id, "032x"))
    assert created["span_id"] == format(span.context.span_id, "016x")
    assert created["detail"]["data"] == {"order_id": "1042"} and created["attributes"]["correlationid"] == "o-1042"
    assert rows["PaymentCaptured"]["detail"]["data"]["order.id"] == "1042"
    assert client.export(records) == LogRecordExportResult.SUCCESS
    assert len(stored(server, "service", service)) == 2
    client.shutdown()


def test_undecodable_grpc_messages_get_invalid_argument_from_a_running_server(server):
    with grpc.insecure_channel(server.grpc_target) as channel, pytest.raises(grpc.RpcError) as refused:
        channel.unary_unary(f"/{LOGS_SERVICE}/Export")(b"\x0a\x05\x0a\x03\xff", timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid protobuf ExportLogsServiceRequest" in refused.value.details()


@pytest.fixture(scope="module")
def guarded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("guarded"), {"CHOREOSCOPE_INGEST_AUTH": "required", "DATABASE_URL": ""})
    yield running
    stop_server(running)


def test_exporters_without_a_valid_ingest_token_are_refused_and_with_one_accepted(guarded_server):
    service = f"orders-{uuid.uuid4().hex[:8]}"
    emitter, records = sdk_events(service)
    with grpc.insecure_channel(guarded_server.grpc_target) as channel, pytest.raises(grpc.RpcError) as refused:
        channel.unary_unary(f"/{LOGS_SERVICE}/Export")(b"", timeout=10, metadata=[("authorization", "Bearer wrong")])
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED and "Invalid token" in refused.value.details()
    assert GrpcLogExporter(endpoint=guarded_server.grpc_target, insecure=True).export(records) == LogRecordExportResult.FAILURE
    assert OTLPLogExporter(endpoint=f"{guarded_server.url}/v1/logs").export(records) == LogRecordExportResult.FAILURE
    assert stored(guarded_server, "service", service) == []
    created = guarded_server.manage("token", "create", "orders", "--scope", "ingest")
    headers = {"authorization": f"Bearer {created.stdout.strip().splitlines()[-1]}"}
    assert emitter.export_grpc(guarded_server.grpc_target, headers) == (SpanExportResult.SUCCESS, LogRecordExportResult.SUCCESS)
    names = {row["name"] for row in stored(guarded_server, "service", service)}
    assert names == {"POST /orders", "OrderCreated", "PaymentCaptured"}


def test_plain_log_records_show_on_the_span_that_emitted_them_once_however_often_exported(server):
    token = read_token(server)
    key = f"order-{uuid.uuid4().hex[:8]}"
    payments = LoggingService(f"payments-{uuid.uuid4().hex[:6]}")
    with payments.tracer.start_as_current_span("POST /payments", kind=SpanKind.SERVER) as span:
        payments.emit_event("PaymentCaptured", key)
        payments.logger.emit(severity_text="WARN", body="card issuer slow; retrying", attributes={"attempt": 2})
        payments.logger.emit(severity_number=SeverityNumber.ERROR, body={"gateway": "declined", "code": 51})
    payments.logger.emit(body="cache warmed")  # outside any span: counted, not kept
    records = list(payments.logs.get_finished_logs())
    exporter = OTLPLogExporter(endpoint=f"{server.otlp_url}/v1/logs", compression=Compression.Gzip)
    assert payments.export_grpc(server.grpc_target)[0] == SpanExportResult.SUCCESS
    assert exporter.export(records) == LogRecordExportResult.SUCCESS
    assert exporter.export(records) == LogRecordExportResult.SUCCESS  # an exporter's retry
    exporter.shutdown()

    flow = wait_for_flow(server, key, token, nodes=2)
    [node] = [node for node in flow["nodes"] if node["kind"] == "span"]
    assert node["span_id"] == format(span.get_span_context().span_id, "016x")
    assert [(log["severity"], log["body"]) for log in node["logs"]] == [
        ("WARN", "card issuer slow; retrying"),
        ("ERROR", '{"gateway": "declined", "code": 51}'),
    ]
    assert node["logs"][0]["attributes"] == {"attempt": 2}
    assert [n["name"] for n in flow["nodes"] if n["kind"] == "event"] == ["PaymentCaptured"]  # log lines are no steps
