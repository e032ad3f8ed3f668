"""The pure decoders: wire formats in, observation records out, no database."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from collectors import cloudevents, otlp
from collectors.bodies import BodyError, decompress
from collectors.cloudevents import CloudEventError
from tests.collectors.payloads import TRACE_ID, cloudevent, json_request, json_span, protobuf_request


def test_protobuf_spans_keep_resource_scope_kind_times_status_and_attributes():
    body = protobuf_request(
        [
            {
                "span_id": "b7ad6b7169203331",
                "parent_span_id": "00f067aa0ba902b7",
                "error": "card declined",
                "attributes": {"order.id": "1042", "amount": 12.5, "paid": False, "items": 3},
            }
        ]
    )
    [record] = otlp.decode_protobuf(body).records
    assert record.identity == f"s:{TRACE_ID}:b7ad6b7169203331"
    assert (record.service, record.name, record.span_kind) == ("checkout", "POST /orders", 2)
    assert (record.start_ns, record.end_ns) == (1_700_000_000_123_456_789, 1_700_000_000_223_456_789)
    assert (record.status, record.status_message, record.parent_span_id) == ("error", "card declined", "00f067aa0ba902b7")
    assert record.attributes == {"order.id": "1042", "amount": 12.5, "paid": False, "items": 3}
    assert record.resource == {"service.name": "checkout", "deployment.environment": "test"}
    assert record.detail["scope"] == {"name": "tests.collectors", "version": "1.0"}


def test_otlp_json_is_decoded_like_protobuf_with_case_insensitive_ids_and_string_integers():
    [record] = otlp.decode_json(json_request([json_span(spanId="B7AD6B7169203331", parentSpanId="")])).records
    assert record.trace_id == TRACE_ID and record.span_id == "b7ad6b7169203331" and record.parent_span_id == ""
    assert record.start_ns == 1_700_000_000_123_456_789 and record.end_ns == 1_700_000_000_223_456_789
    assert record.attributes == {"order.id": "1042", "retries": 3}
    assert (record.status, record.span_kind, record.service) == ("ok", 4, "checkout")


def test_span_events_and_links_are_kept_with_their_ids_attributes_and_flags():
    span = json_span(
        events=[
            {
                "timeUnixNano": "1700000000150000000",
                "name": "exception",
                "attributes": [{"key": "exception.type", "value": {"stringValue": "Timeout"}}],
            }
        ],
        links=[
            {
                "traceId": "5B8EFFF798038103D269B633813FC60C",
                "spanId": "EEE19B7EC3C1B174",
                "flags": 257,
                "attributes": [{"key": "messaging.operation", "value": {"stringValue": "create"}}],
            }
        ],
    )
    [record] = otlp.decode_json(json_request([span])).records
    assert record.detail["events"] == [
        {"name": "exception", "time_ns": 1_700_000_000_150_000_000, "attributes": {"exception.type": "Timeout"}}
    ]
    assert record.detail["links"] == [
        {
            "trace_id": "5b8efff798038103d269b633813fc60c",
            "span_id": "eee19b7ec3c1b174",
            "attributes": {"messaging.operation": "create"},
            "flags": 257,
        }
    ]


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"traceId": "0" * 32}, "traceId is all zeros"),
        ({"spanId": "abcd"}, "spanId must be 8 bytes"),
        ({"traceId": ""}, "traceId must be 16 bytes"),
    ],
)
def test_a_span_with_unusable_ids_is_rejected_alone(override, reason):
    batch = otlp.decode_json(json_request([json_span(), json_span(**override)]))
    assert len(batch.records) == 1 and batch.rejected == 1
    assert reason in batch.error_message


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (json.dumps({"resourceSpans": {"x": 1}}).encode(), "resourceSpans must be a JSON array"),
        (
            json_request([json_span(startTimeUnixNano="soon")]),
            "resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano must be an integer",
        ),
        (json_request([json_span(spanId="xyz!")]), "spanId must be hex-encoded"),
    ],
)
def test_a_malformed_json_body_is_an_error_that_says_where(document, message):
    with pytest.raises(otlp.OtlpDecodeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        otlp.decode_json(document)


def test_a_malformed_protobuf_body_is_an_error():
    with pytest.raises(otlp.OtlpDecodeError, match="not a valid protobuf"):
        otlp.decode_protobuf(b"\x0a\xff\xff\xff\xff\x0f")


def test_answers_follow_the_otlp_http_encodings():
    assert otlp.export_response(otlp.JSON) == b"{}"
    partial = json.loads(otlp.export_response(otlp.JSON, 2, "bad ids"))
    assert partial == {"partialSuccess": {"rejectedSpans": "2", "errorMessage": "bad ids"}}
    response = ExportTraceServiceResponse.FromString(otlp.export_response(otlp.PROTOBUF, 1, "bad"))
    assert response.partial_success.rejected_spans == 1
    assert status_pb2.Status.FromString(otlp.status_body(otlp.PROTOBUF, 3, "nope")).message == "nope"


def test_decompression_stops_a_gzip_bomb_at_the_limit():
    bomb = gzip.compress(b"\0" * 10_000_000)
    with pytest.raises(BodyError) as error:
        decompress(bomb, "gzip", 1_000_000)
    assert error.value.status == 413
    assert decompress(gzip.compress(b"abc"), "gzip", 100) == b"abc"
    assert decompress(zlib.compress(b"abc"), "deflate", 100) == b"abc"
    assert decompress(gzip.compress(b"ab") + gzip.compress(b"c"), "gzip", 100) == b"abc"


@pytest.mark.parametrize(
    ("body", "coding", "status"),
    [(b"not gzip", "gzip", 400), (gzip.compress(b"x" * 100, mtime=0)[:20], "gzip", 400), (b"x", "br", 415)],
    ids=["not-gzip", "truncated-gzip", "brotli"],
)
def test_undecodable_or_unknown_encodings_are_refused(body, coding, status):
    with pytest.raises(BodyError) as error:
        decompress(body, coding, 1000)
    assert error.value.status == status


# --- CloudEvents --------------------------------------------------------------------------------


def test_a_structured_event_becomes_a_record_with_its_extensions_and_nanosecond_time():
    event = cloudevent(
        id="e-1", traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", causationid="e-0", sequence="7"
    )
    [record] = cloudevents.decode_structured(json.dumps(event).encode())
    assert (record.kind, record.name, record.service, record.event_source, record.event_id) == (
        "event",
        "OrderCreated",
        "/checkout",
        "/checkout",
        "e-1",
    )
    assert (record.trace_id, record.span_id) == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
    assert record.attributes == {
        "correlationid": "order-1042",
        "causationid": "e-0",
        "sequence": "7",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    }
    assert record.start_ns % 1_000_000_000 == 123_456_789
    assert record.detail["data"] == {"order_id": 1042}


def test_an_event_without_time_is_stamped_with_its_receipt():
    [record] = cloudevents.decode_structured(json.dumps(cloudevent(time=None)).encode(), received_ns=42)
    assert record.start_ns == 42


def test_rfc3339_offsets_are_applied():
    assert cloudevents.rfc3339_ns("2018-04-05T18:31:00+01:00") == cloudevents.rfc3339_ns("2018-04-05T17:31:00Z")
    for bad in ("2018-04-05T18:31Z", "2018-04-05T18:31:00+05", "2018-02-30T00:00:00Z", "lunchtime"):
        assert cloudevents.rfc3339_ns(bad) is None


def test_an_invalid_batch_names_every_bad_event_by_index():
    batch = [cloudevent(), cloudevent(id=""), cloudevent(), cloudevent(specversion="0.3", time="noon")]
    with pytest.raises(CloudEventError) as error:
        cloudevents.decode_batch(json.dumps(batch).encode())
    assert [index for index, _ in error.value.problems] == [1, 3]
    assert "specversion must be '1.0'" in error.value.problems[1][1] and "RFC 3339" in error.value.problems[1][1]


def test_binary_mode_unquotes_and_percent_decodes_header_values():
    headers = {
        "ce-specversion": "1.0",
        "ce-id": '"a b"',
        "ce-source": "/shop%2Ffront",
        "ce-type": "Caf%C3%A9Ordered",
        "ce-correlationid": "order-7",
        "Content-Type": "application/json",
    }
    [record] = cloudevents.decode_binary(headers, b'{"order_id": 7}')
    assert (record.event_id, record.event_source, record.name) == ("a b", "/shop/front", "CaféOrdered")
    assert record.detail["data"] == {"order_id": 7} and record.attributes == {"correlationid": "order-7"}


def test_binary_mode_keeps_opaque_data_as_base64():
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "1",
        "ce-source": "s",
        "ce-type": "t",
        "Content-Type": "application/octet-stream",
    }
    [record] = cloudevents.decode_binary(headers, b"\xff\x00")
    assert record.detail["data_base64"] == "/wA="


def test_binary_mode_rejects_invalid_utf8_in_a_header():
    headers = {"ce-specversion": "1.0", "ce-id": "%FF", "ce-source": "s", "ce-type": "t"}
    with pytest.raises(CloudEventError, match="percent-encoded UTF-8"):
        cloudevents.decode_binary(headers, b"")
