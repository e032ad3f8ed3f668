"""OTLP logs over HTTP (Django's test client) and OTLP/gRPC (a real grpcio server and channel in
this process): what is stored, and the status each kind of refusal gets."""

from __future__ import annotations

import gzip
import json

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub

from collectors import admission
from collectors.otlp_grpc import LOGS_SERVICE, start_otlp_grpc
from tests.collectors.payloads import protobuf_request as trace_request
from tests.conftest import free_port
from tokens.models import ApiToken
from tracing.models import Observation

pytestmark = pytest.mark.django_db(transaction=True)
TRACE_ID, SPAN_ID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"


@pytest.fixture(autouse=True)
def _fresh_admission():
    admission.forget()
    yield
    admission.forget()


def json_logs(*records: dict, service: str = "checkout") -> bytes:
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}
    return json.dumps({"resourceLogs": [{"resource": resource, "scopeLogs": [{"logRecords": list(records)}]}]}).encode()


def event_log(name: str, **fields) -> dict:
    return {
        "timeUnixNano": "1700000000000000000",
        "eventName": name,
        "traceId": TRACE_ID,
        "spanId": SPAN_ID,
        "attributes": [{"key": "correlationid", "value": {"stringValue": "order-1"}}],
        "body": {"kvlistValue": {"values": [{"key": "order_id", "value": {"stringValue": "1"}}]}},
        **fields,
    }


def protobuf_logs(*records: dict) -> bytes:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    attribute = resource_logs.resource.attributes.add()
    attribute.key, attribute.value.string_value = "service.name", "checkout"
    scope_logs = resource_logs.scope_logs.add()
    for fields in records:
        scope_logs.log_records.add(**fields)
    return request.SerializeToString()


def post_logs(client, body: bytes, content_type: str = "application/json", **headers):
    return client.post("/v1/logs", body, content_type=content_type, headers=headers)


# --- OTLP/HTTP logs ----------------------------------------------------------------------------


def test_json_event_logs_are_stored_once_and_plain_logs_accepted_without_a_step(client):
    body = json_logs(event_log("OrderCreated"), {"body": {"stringValue": "cache warmed"}, "timeUnixNano": "1"})
    response = post_logs(client, body)
    assert response.status_code == 200 and response.json() == {}
    event = Observation.objects.get()
    assert (event.kind, event.name, event.service, event.trace_id, event.span_id) == (
        "event",
        "OrderCreated",
        "checkout",
        TRACE_ID,
        SPAN_ID,
    )
    assert event.detail["data"] == {"order_id": "1"} and event.attributes["correlationid"] == "order-1"
    assert post_logs(client, gzip.compress(body), content_encoding="gzip").status_code == 200
    assert Observation.objects.count() == 1


def test_protobuf_logs_are_answered_with_an_export_logs_response(client):
    body = protobuf_logs({"event_name": "OrderCreated", "time_unix_nano": 5}, {"event_name": "Bad", "span_id": b"\x01"})
    response = post_logs(client, body, "application/x-protobuf")
    assert response.status_code == 200 and response["Content-Type"] == "application/x-protobuf"
    answer = ExportLogsServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_log_records == 1
    assert "log record 'Bad': span_id must be 8 bytes, got 1" in answer.partial_success.error_message
    assert list(Observation.objects.values_list("name", flat=True)) == ["OrderCreated"]


def test_bad_logs_get_400_with_a_status_saying_where(client):
    response = post_logs(client, json_logs({"eventName": 7}))
    assert response.status_code == 400
    assert response.json() == {"code": 3, "message": "resourceLogs[0].scopeLogs[0].logRecords[0].eventName must be a string."}
    response = post_logs(client, b"\x0a\xff", "application/x-protobuf")
    assert response.status_code == 400
    assert "not a valid protobuf ExportLogsServiceRequest" in status_pb2.Status.FromString(response.content).message
    assert post_logs(client, b"{}", "text/plain").status_code == 415
    assert client.get("/v1/logs").status_code == 405


def test_logs_need_a_token_when_tokens_are_required(client, settings):
    settings.INGEST_AUTH = "required"
    response = post_logs(client, json_logs(event_log("OrderCreated")))
    assert response.status_code == 401 and "Missing token" in response.json()["message"]
    _, raw = ApiToken.issue("checkout", "ingest")
    assert post_logs(client, json_logs(event_log("OrderCreated")), authorization=f"Bearer {raw}").status_code == 200


# --- OTLP/gRPC ---------------------------------------------------------------------------------


@pytest.fixture
def grpc_target(settings):
    port = free_port()
    server = start_otlp_grpc("127.0.0.1", port, 64 * 1024)
    yield f"127.0.0.1:{port}"
    server.stop(grace=2).wait()


@pytest.fixture
def channel(grpc_target):
    with grpc.insecure_channel(grpc_target) as channel:
        yield channel


def raw_logs_export(channel) -> grpc.UnaryUnaryMultiCallable:
    return channel.unary_unary(f"/{LOGS_SERVICE}/Export")  # bytes in, bytes out


def test_grpc_stores_spans_and_event_logs_with_gzip(channel):
    spans = ExportTraceServiceRequest.FromString(trace_request([{"name": "POST /orders"}]))
    answer = TraceServiceStub(channel).Export(spans, timeout=10, compression=grpc.Compression.Gzip)
    assert not answer.HasField("partial_success")
    logs = LogsServiceStub(channel).Export
    request = ExportLogsServiceRequest.FromString(protobuf_logs({"event_name": "OrderCreated", "time_unix_nano": 9}))
    response = logs(request, timeout=10, compression=grpc.Compression.Gzip)
    assert not response.HasField("partial_success")
    assert sorted(Observation.objects.values_list("name", flat=True)) == ["OrderCreated", "POST /orders"]
    logs(request, timeout=10)
    assert Observation.objects.count() == 2


def test_grpc_answers_partial_success_for_records_it_rejects(channel):
    logs = LogsServiceStub(channel).Export
    request = ExportLogsServiceRequest.FromString(protobuf_logs({"event_name": "Bad", "trace_id": b"\x01\x02\x03"}))
    response = logs(request, timeout=10)
    assert response.partial_success.rejected_log_records == 1
    assert "trace_id must be 16 bytes, got 3" in response.partial_success.error_message


def test_grpc_refuses_undecodable_messages_with_invalid_argument(channel):
    with pytest.raises(grpc.RpcError) as refused:
        raw_logs_export(channel)(b"\x0a\xff\xff", timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid protobuf ExportLogsServiceRequest" in refused.value.details()


def test_grpc_checks_the_bearer_token_in_metadata(channel, settings):
    settings.INGEST_AUTH = "required"
    logs = LogsServiceStub(channel).Export
    with pytest.raises(grpc.RpcError) as refused:
        logs(ExportLogsServiceRequest(), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED and "Missing token" in refused.value.details()
    with pytest.raises(grpc.RpcError) as refused:
        logs(ExportLogsServiceRequest(), timeout=10, metadata=[("authorization", "Bearer nope")])
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED and "Invalid token" in refused.value.details()
    _, raw = ApiToken.issue("checkout", "ingest")
    logs(ExportLogsServiceRequest(), timeout=10, metadata=[("authorization", f"Bearer {raw}")])


def retry_delay(error: grpc.RpcError) -> tuple[int, int]:
    """The RetryInfo delay in the google.rpc.Status details, and in the key the Python SDK reads."""
    trailers = dict(error.trailing_metadata())
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    [detail] = status.details
    info = error_details_pb2.RetryInfo()
    assert detail.Unpack(info)
    sdk_info = error_details_pb2.RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
    assert status.code == error.code().value[0]
    return info.retry_delay.seconds, sdk_info.retry_delay.seconds


def test_grpc_overload_is_resource_exhausted_with_retry_info(channel, settings, monkeypatch):
    settings.RETRY_AFTER_SECONDS = 7
    monkeypatch.setattr(admission, "overloaded", lambda: True)
    with pytest.raises(grpc.RpcError) as refused:
        LogsServiceStub(channel).Export(ExportLogsServiceRequest(), timeout=10)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert retry_delay(refused.value) == (7, 7)


def test_grpc_with_the_database_down_is_unavailable_with_retry_info(channel, settings, monkeypatch):
    from django.db import OperationalError

    def database_down(records):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr("collectors.ingestion.store_observations", database_down)
    settings.RETRY_AFTER_SECONDS = 3
    with pytest.raises(grpc.RpcError) as refused:
        TraceServiceStub(channel).Export(ExportTraceServiceRequest.FromString(trace_request([{}])), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE and retry_delay(refused.value) == (3, 3)


def test_grpc_refuses_messages_over_the_body_limit_even_when_compressed(channel):
    big = protobuf_logs({"event_name": "Big", "body": {"string_value": "x" * 100_000}})
    with pytest.raises(grpc.RpcError) as refused:
        raw_logs_export(channel)(big, timeout=10, compression=grpc.Compression.Gzip)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert Observation.objects.count() == 0


def test_a_grpc_port_already_taken_is_an_error_not_a_shared_port(grpc_target):
    from collectors.otlp_grpc import GrpcBindError

    with pytest.raises(GrpcBindError, match="Cannot listen on"):
        start_otlp_grpc("127.0.0.1", int(grpc_target.rsplit(":", 1)[1]), 1024)
