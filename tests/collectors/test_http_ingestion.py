"""The ingestion endpoints over HTTP (Django's test client): answers, storage, idempotency."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from choreoscope import dispatch
from collectors import admission
from tests.collectors.payloads import cloudevent, json_request, json_span, protobuf_request
from tokens.models import ApiToken
from tracing.models import Observation

pytestmark = pytest.mark.django_db(transaction=True)
CORPORA = Path("/work/shared/corpora/cloudevents")
if not CORPORA.exists():
    CORPORA = Path(__file__).resolve().parents[2].parent / "shared" / "corpora" / "cloudevents"


@pytest.fixture(autouse=True)
def _fresh_admission():
    admission.forget()
    yield
    admission.forget()


def post_traces(client, body: bytes, content_type: str = "application/x-protobuf", **headers):
    return client.post("/v1/traces", body, content_type=content_type, headers=headers)


def post_events(client, body, content_type: str = "application/cloudevents+json", **headers):
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/v1/events", payload, content_type=content_type, headers=headers)


def test_protobuf_spans_are_stored_and_answered_with_an_empty_export_response(client):
    response = post_traces(client, protobuf_request([{"name": "POST /orders"}, {"name": "charge card"}]))
    assert response.status_code == 200 and response["Content-Type"] == "application/x-protobuf"
    assert not ExportTraceServiceResponse.FromString(response.content).HasField("partial_success")
    assert sorted(Observation.objects.values_list("name", flat=True)) == ["POST /orders", "charge card"]


def test_gzipped_json_spans_are_stored(client):
    response = post_traces(
        client, gzip.compress(json_request([json_span(name="publish")])), "application/json", content_encoding="gzip"
    )
    assert response.status_code == 200 and response.json() == {}
    assert Observation.objects.get().name == "publish"


def test_the_same_span_sent_twice_is_stored_once(client):
    body = protobuf_request([{"span_id": "b7ad6b7169203331"}])
    assert post_traces(client, body).status_code == 200
    assert post_traces(client, body).status_code == 200
    assert Observation.objects.count() == 1


def test_spans_with_bad_ids_are_rejected_one_by_one_and_the_rest_stored(client):
    body = json_request([json_span(), json_span(spanId="0000000000000000"), json_span(traceId="abc")])
    response = post_traces(client, body, "application/json")
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "2" and "spanId is all zeros" in partial["errorMessage"]
    assert Observation.objects.count() == 1


def test_an_undecodable_body_gets_400_with_a_status_in_the_request_encoding(client):
    response = post_traces(client, b"\x0a\xff\xff", "application/x-protobuf")
    assert response.status_code == 400
    assert "not a valid protobuf" in status_pb2.Status.FromString(response.content).message
    response = post_traces(client, b'{"resourceSpans": 5}', "application/json")
    assert response.status_code == 400 and response.json()["message"] == "resourceSpans must be a JSON array."
    assert Observation.objects.count() == 0


def test_unknown_content_types_and_encodings_get_415(client):
    assert post_traces(client, b"x", "text/plain").status_code == 415
    assert post_traces(client, b"x", "application/json", content_encoding="br").status_code == 415
    assert post_events(client, b"{}", "application/json").status_code == 415


def test_a_body_over_the_limit_after_decompression_gets_413(client, settings):
    settings.MAX_BODY_BYTES = 10_000
    bomb = gzip.compress(json_request([json_span(name="x" * 50_000)]))
    assert len(bomb) < 10_000
    response = post_traces(client, bomb, "application/json", content_encoding="gzip")
    assert response.status_code == 413 and "10000 bytes" in response.json()["message"]


@pytest.fixture
def broker_down(monkeypatch):
    """Tasks go to a broker (not run in-process), and the broker refuses them."""
    from tracing.tasks import correlate_pending

    def refuse() -> None:
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(correlate_pending, "delay", refuse)
    previous = correlate_pending.app.conf.task_always_eager
    correlate_pending.app.conf.task_always_eager = False
    yield
    dispatch.wait_idle(5)  # let the pending publication fail first
    correlate_pending.app.conf.task_always_eager = previous


def test_a_broker_outage_after_commit_does_not_fail_the_request_and_leaves_rows_for_the_sweep(client, broker_down):
    assert post_events(client, cloudevent()).status_code == 202
    assert Observation.objects.filter(flow__isnull=True).count() == 1


def test_overload_answers_429_with_retry_after(client, settings, broker_down):
    settings.MAX_PENDING = 1
    settings.RETRY_AFTER_SECONDS = 7
    assert post_traces(client, protobuf_request([{}, {}])).status_code == 200
    admission.forget()
    response = post_traces(client, protobuf_request([{}]))
    assert response.status_code == 429 and response["Retry-After"] == "7"
    assert status_pb2.Status.FromString(response.content).code == 8
    response = post_events(client, cloudevent())
    assert response.status_code == 429 and response["Retry-After"] == "7"


def test_a_required_token_is_checked_with_a_clear_message(client, settings):
    settings.INGEST_AUTH = "required"
    response = post_traces(client, json_request([json_span()]), "application/json")
    assert response.status_code == 401 and "Missing token" in response.json()["message"]
    assert post_events(client, cloudevent(), HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    _, raw = ApiToken.issue("checkout", "ingest")
    assert post_events(client, cloudevent(), authorization=f"Bearer {raw}").status_code == 202
    _, read_only = ApiToken.issue("viewer", "read")
    response = post_events(client, cloudevent(), authorization=f"Bearer {read_only}")
    assert response.status_code == 401 and "scope 'ingest'" in response.json()["error"]


def test_a_structured_event_is_stored_once_however_often_it_is_sent(client):
    event = cloudevent(id="order-created-1042")
    assert post_events(client, event).json() == {"accepted": 1, "stored": 1, "duplicates": 0}
    assert post_events(client, event).json() == {"accepted": 1, "stored": 0, "duplicates": 1}
    stored = Observation.objects.get()
    assert (stored.kind, stored.name, stored.service, stored.event_id) == (
        "event",
        "OrderCreated",
        "/checkout",
        "order-created-1042",
    )
    assert stored.attributes == {"correlationid": "order-1042"}


def test_a_batch_is_stored_whole_or_rejected_whole_with_every_bad_index(client):
    good = [cloudevent(), cloudevent()]
    response = post_events(client, good, "application/cloudevents-batch+json")
    assert response.status_code == 202 and response.json()["stored"] == 2
    bad = [cloudevent(), {"specversion": "1.0", "id": "x", "source": "/s"}, cloudevent(time="yesterday")]
    response = post_events(client, bad, "application/cloudevents-batch+json")
    assert response.status_code == 400
    assert [problem["index"] for problem in response.json()["problems"]] == [1, 2]
    assert Observation.objects.count() == 2


def test_binary_mode_events_are_accepted(client):
    response = client.post(
        "/v1/events",
        b'{"order_id": 9}',
        content_type="application/json",
        headers={
            "ce-specversion": "1.0",
            "ce-id": "b-1",
            "ce-source": "/warehouse",
            "ce-type": "ShipmentPrepared",
            "ce-causationid": "a-1",
        },
    )
    assert response.status_code == 202
    stored = Observation.objects.get()
    assert stored.detail["data"] == {"order_id": 9} and stored.attributes == {"causationid": "a-1"}


def test_options_answers_the_webhook_abuse_protection_handshake(client):
    response = client.options(
        "/v1/events", headers={"WebHook-Request-Origin": "eventemitter.example.com", "WebHook-Request-Rate": "120"}
    )
    assert response.status_code == 200
    assert response["WebHook-Allowed-Origin"] == "eventemitter.example.com" and response["WebHook-Allowed-Rate"] == "*"
    assert "POST" in response["Allow"]


def test_other_methods_are_not_allowed(client):
    assert client.get("/v1/traces").status_code == 405
    assert client.get("/v1/events").status_code == 405


def _corpus(name: str) -> list[dict]:
    return json.loads((CORPORA / name).read_text())["tests"]


@pytest.mark.parametrize("case", _corpus("valid-events.json"), ids=lambda case: case["id"])
def test_every_valid_conformance_event_is_accepted(client, case):
    assert post_events(client, case["event"]).status_code == 202


@pytest.mark.parametrize("case", _corpus("invalid-events.json"), ids=lambda case: case["id"])
def test_every_invalid_conformance_event_is_refused_with_a_reason(client, case):
    response = post_events(client, case["event"])
    assert response.status_code == 400 and response.json()["error"]
    assert Observation.objects.count() == 0


def test_an_unavailable_database_gets_503_with_retry_after_not_500(client, monkeypatch, settings):
    from django.db import OperationalError

    def database_down(records):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr("collectors.ingestion.store_observations", database_down)
    settings.RETRY_AFTER_SECONDS = 3
    response = post_traces(client, protobuf_request([{}]))
    assert response.status_code == 503 and response["Retry-After"] == "3"
    assert status_pb2.Status.FromString(response.content).code == 14
    response = post_events(client, cloudevent())
    assert response.status_code == 503 and "unavailable" in response.json()["error"]
