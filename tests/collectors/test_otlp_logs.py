"""OTLP logs, decoded without a server: a log record with an event name is a business event, a
plain one is accepted and not stored, and no input makes the decoder raise anything but its own
error."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from collectors.otlp import OtlpDecodeError
from collectors.otlp_logs import (
    OtlpLogRecord,
    decode_logs,
    decode_logs_json,
    decode_logs_protobuf,
    event_observation,
    logs_export_response,
)
from tracing.correlation import EMITTED_BY, business_key, linkage, span_anchor, value_at
from tracing.flowconfig import EMPTY, parse_flows_config

TRACE_ID, SPAN_ID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
RECEIVED = 1_700_000_000_000_000_000


def log_record(**overrides) -> OtlpLogRecord:
    fields = {
        "service": "checkout",
        "resource": {"service.name": "checkout"},
        "scope": {"name": "shop.checkout"},
        "time_ns": 1_700_000_000_123_456_789,
        "observed_ns": 1_700_000_000_200_000_000,
        "severity_number": 9,
        "severity_text": "INFO",
        "body": {"order_id": "1042", "total": 99.5},
        "attributes": {"correlationid": "order-1042"},
        "trace_id": TRACE_ID,
        "span_id": SPAN_ID,
        "event_name": "OrderCreated",
    }
    return OtlpLogRecord(**{**fields, **overrides})


def test_a_log_record_with_an_event_name_becomes_an_event_emitted_by_its_span():
    record = event_observation(log_record(), RECEIVED)
    assert record is not None
    assert (record.kind, record.name, record.service) == ("event", "OrderCreated", "checkout")
    assert (record.trace_id, record.span_id) == (TRACE_ID, SPAN_ID)
    assert record.start_ns == 1_700_000_000_123_456_789
    assert record.detail["data"] == {"order_id": "1042", "total": 99.5}
    assert record.detail["severity_text"] == "INFO" and record.detail["scope"] == {"name": "shop.checkout"}
    anchors = linkage(record, EMPTY)
    assert any(ref.anchor == span_anchor(TRACE_ID, SPAN_ID) and ref.kind == EMITTED_BY for ref in anchors.references)
    assert anchors.business_key == "order-1042"


def test_a_plain_log_record_is_no_event():
    assert event_observation(log_record(event_name=""), RECEIVED) is None


@pytest.mark.parametrize(
    "attributes",
    [{"event.name": "OrderCreated"}, {"event.domain": "shop", "event.name": "OrderCreated"}],
    ids=["event.name", "event.domain+event.name"],
)
def test_the_event_name_attribute_names_an_event_too(attributes):
    record = event_observation(log_record(event_name="", attributes=attributes), RECEIVED)
    assert record is not None and record.name == "OrderCreated"


def test_the_event_id_is_the_senders_when_given_and_else_stable_for_the_same_record():
    given_id = event_observation(log_record(attributes={"cloudevents.event_id": "evt-7"}), RECEIVED)
    assert given_id is not None and given_id.event_id == "evt-7"
    first, again = event_observation(log_record(), RECEIVED), event_observation(log_record(), RECEIVED + 5)
    other = event_observation(log_record(time_ns=1_700_000_000_123_456_790), RECEIVED)
    assert first is not None and again is not None and other is not None
    assert first.identity == again.identity and first.event_id.startswith("otlp-log-")
    assert other.identity != first.identity


def test_causation_and_configured_key_paths_are_read_as_for_cloudevents():
    config = parse_flows_config("flows:\n  - type: order\n    key_paths: [data.order_id]\n    key_prefix: order-\n")
    record = event_observation(
        log_record(attributes={"causationid": "evt-1"}, body={"order_id": "1042"}, event_name="EmailSent"), RECEIVED
    )
    assert record is not None
    found = linkage(record, config)
    assert any(ref.kind == "caused_by" for ref in found.references)
    assert found.business_key == "order-1042"
    # With no body, data.* paths read the attributes.
    bodiless = event_observation(log_record(attributes={"order_id": "77"}, body=None), RECEIVED)
    assert bodiless is not None and value_at("data.order_id", bodiless.attributes, bodiless.detail) == "77"
    assert business_key(bodiless, config) == "order-77"
    assert business_key(bodiless, EMPTY) == ""


def test_a_record_outside_any_span_has_no_emitter_and_bad_ids_are_refused():
    outside = event_observation(log_record(trace_id="", span_id=""), RECEIVED)
    assert outside is not None and (outside.trace_id, outside.span_id) == ("", "")
    with pytest.raises(Exception, match="trace_id must be 16 bytes, got 3"):
        event_observation(log_record(trace_id="abcdef"), RECEIVED)


def test_time_falls_back_to_observed_time_then_receipt():
    observed = event_observation(log_record(time_ns=0), RECEIVED)
    received = event_observation(log_record(time_ns=0, observed_ns=0), RECEIVED)
    assert observed is not None and observed.start_ns == 1_700_000_000_200_000_000
    assert received is not None and received.start_ns == RECEIVED


def _attribute(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def protobuf_request(*records: LogRecord) -> bytes:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.append(_attribute("service.name", "checkout"))
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = "shop"
    scope_logs.log_records.extend(records)
    return request.SerializeToString()


def test_protobuf_and_json_of_the_same_record_give_the_same_event():
    body = AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key="order_id", value=AnyValue(int_value=1042))]))
    pb = protobuf_request(
        LogRecord(
            time_unix_nano=5,
            event_name="OrderCreated",
            body=body,
            attributes=[_attribute("correlationid", "o-1")],
            trace_id=bytes.fromhex(TRACE_ID),
            span_id=bytes.fromhex(SPAN_ID),
        ),
        LogRecord(time_unix_nano=6, body=AnyValue(string_value="just a log line")),
    )
    document = {
        "resourceLogs": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
                "scopeLogs": [
                    {
                        "scope": {"name": "shop"},
                        "logRecords": [
                            {
                                "timeUnixNano": "5",
                                "eventName": "OrderCreated",
                                "body": {"kvlistValue": {"values": [{"key": "order_id", "value": {"intValue": "1042"}}]}},
                                "attributes": [{"key": "correlationid", "value": {"stringValue": "o-1"}}],
                                "traceId": TRACE_ID.upper(),
                                "spanId": SPAN_ID,
                            },
                            {
                                "timeUnixNano": 6,
                                "body": {"stringValue": "just a log line"},
                                "severityNumber": "SEVERITY_NUMBER_INFO",
                            },
                        ],
                    }
                ],
            }
        ]
    }
    from_pb, from_json = decode_logs(pb, "application/x-protobuf"), decode_logs(json.dumps(document).encode(), "application/json")
    assert (from_pb.plain, from_json.plain, from_pb.rejected, from_json.rejected) == (1, 1, 0, 0)
    [pb_event], [json_event] = from_pb.records, from_json.records
    assert pb_event == json_event
    assert pb_event.detail["data"] == {"order_id": 1042} and pb_event.identity.startswith("e:")


def test_an_event_record_with_bad_ids_is_rejected_alone_and_said_so():
    pb = protobuf_request(
        LogRecord(event_name="OrderCreated", trace_id=b"\x01\x02", span_id=bytes.fromhex(SPAN_ID)),
        LogRecord(event_name="EmailSent"),
    )
    batch = decode_logs_protobuf(pb)
    assert [record.name for record in batch.records] == ["EmailSent"] and batch.rejected == 1
    assert batch.error_message == "1 log record(s) rejected: log record 'OrderCreated': trace_id must be 16 bytes, got 2"
    answer = ExportLogsServiceResponse.FromString(logs_export_response("application/x-protobuf", 1, batch.error_message))
    assert answer.partial_success.rejected_log_records == 1
    assert json.loads(logs_export_response("application/json", 1, "x")) == {
        "partialSuccess": {"rejectedLogRecords": "1", "errorMessage": "x"}
    }
    assert logs_export_response("application/json") == b"{}"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "The body is not valid JSON"),
        (b"[]", "The body must be a JSON object."),
        (b'{"resourceLogs": {}}', "resourceLogs must be a JSON array."),
        (b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "soon"}]}]}]}', "timeUnixNano must be an integer"),
        (b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "xyz"}]}]}]}', "traceId must be hex-encoded"),
    ],
)
def test_undecodable_json_says_where_the_problem_is(body, message):
    with pytest.raises(OtlpDecodeError, match=message):
        decode_logs_json(body)


@pytest.mark.parametrize("levels", [20, 40, 300, 2000])
def test_deeply_nested_json_is_a_decode_error_not_a_crash(levels):
    # Within CHOREOSCOPE_MAX_DEPTH (32) a nested body is taken; deeper is refused, never a crash.
    body = '{"arrayValue":{"values":[' * levels + '{"stringValue":"x"}' + "]}}" * levels
    text = '{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"eventName":"E","body":' + body + "}]}]}]}"
    if levels == 20:
        [record] = decode_logs_json(text.encode()).records
        assert record.name == "E"
        return
    with pytest.raises(OtlpDecodeError, match=r"nests deeper than 32 levels|levels deep|not valid JSON"):
        decode_logs_json(text.encode())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_never_raise_anything_but_a_decode_error(body):
    with contextlib.suppress(OtlpDecodeError):
        decode_logs_protobuf(body)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=30,
)
LOG_KEYS = st.sampled_from(
    [
        *("timeUnixNano", "observedTimeUnixNano", "severityNumber", "severityText", "body", "attributes", "traceId", "spanId"),
        *("flags", "eventName", "droppedAttributesCount", "stringValue", "kvlistValue", "arrayValue", "values", "key", "value"),
    ]
)
SHAPED = st.recursive(
    JSON_VALUES,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(LOG_KEYS, children, max_size=5),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(SHAPED)
def test_random_json_never_raises_anything_but_a_decode_error(records):
    document = {"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]}
    for body in (json.dumps(document).encode(), json.dumps(records).encode()):
        with contextlib.suppress(OtlpDecodeError):
            decode_logs_json(body)


def test_a_log_record_beyond_the_attribute_limit_keeps_the_first_and_counts_the_rest():
    from collectors.limits import Limits

    attributes = [{"key": "event.name", "value": {"stringValue": "OrderCreated"}}]
    attributes += [{"key": f"a{i}", "value": {"stringValue": "x"}} for i in range(9)]
    document = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "1", "attributes": attributes}]}]}]}
    batch = decode_logs_json(json.dumps(document).encode(), limits=Limits(attributes=4))
    [record] = batch.records
    assert record.name == "OrderCreated"
    assert len(record.attributes) <= 4
    assert record.detail["dropped_attributes_count"] == 6
