"""Hostile input at the ingestion endpoints, each case the smallest input that once got a 500 or
cost unbounded work: now a precise 4xx, or stored and readable through the API, with what the
limits truncated said on the stored item."""

from __future__ import annotations

import gzip
import json

import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from bench import memory as hostile
from collectors import admission
from collectors.limits import (
    Limits,
    ProblemList,
    check_json_elements,
    check_json_value,
    check_otlp_elements,
    check_otlp_item_count,
    count_wire_elements,
)
from collectors.otlp import TRACES_LAYOUT
from tests.collectors.payloads import cloudevent, json_request, json_span, protobuf_request
from tracing.models import Flow, Observation

pytestmark = pytest.mark.django_db(transaction=True)
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"


@pytest.fixture(autouse=True)
def _no_back_pressure():
    admission.forget()


def nested(depth: int, inner: object) -> object:
    value = inner
    for _ in range(depth):
        value = [value]
    return value


def post_event(client, raw: str | bytes, content_type: str = STRUCTURED, **headers: str):
    return client.post("/v1/events", raw, content_type=content_type, headers=headers)


def every_flow_is_readable(admin_client) -> None:
    for flow_id in Flow.objects.values_list("id", flat=True):
        assert admin_client.get(f"/api/flows/{flow_id}").status_code == 200
        assert admin_client.get(f"/flows/{flow_id}/").status_code in (200, 302)


# --- the 500s of the report ----------------------------------------------------------------------


@pytest.mark.parametrize("attribute", ["id", "source"])
def test_a_lone_surrogate_in_an_event_id_or_source_is_stored_and_readable(client, admin_client, attribute):
    raw = json.dumps({"specversion": "1.0", "id": "a", "source": "/s", "type": "T"}).replace(
        f'"{attribute}": "{"a" if attribute == "id" else "/s"}"', f'"{attribute}": "\\ud800"'
    )
    assert "\\ud800" in raw
    response = post_event(client, raw)
    assert response.status_code == 202, response.content
    stored = Observation.objects.get()
    assert "\ufffd" in (stored.event_id if attribute == "id" else stored.event_source)
    assert post_event(client, raw).json()["duplicates"] == 1  # the same identity both times
    every_flow_is_readable(admin_client)


def test_an_otlp_json_integer_of_thousands_of_digits_is_a_400(client):
    body = json_request([json_span(startTimeUnixNano="9" * 5000)])
    response = client.post("/v1/traces", body, content_type="application/json")
    assert response.status_code == 400
    assert "startTimeUnixNano must be an integer" in response.json()["message"]


@pytest.mark.parametrize("inner", ["\x00", "\ud800", 1])
def test_event_data_nested_hundreds_deep_is_a_400_naming_the_limit(client, inner):
    response = post_event(client, json.dumps(cloudevent(data=nested(300, inner))))
    assert response.status_code == 400
    assert "'data' nests deeper than 32 levels (CHOREOSCOPE_MAX_DEPTH)" in response.json()["error"]
    assert not Observation.objects.exists()


def test_event_data_at_the_depth_limit_is_stored_and_readable(client, admin_client):
    response = post_event(client, json.dumps(cloudevent(data=nested(32, "\x00\ud800"))))
    assert response.status_code == 202
    every_flow_is_readable(admin_client)


def test_binary_mode_json_data_nested_too_deep_is_a_400(client):
    headers = {"ce-specversion": "1.0", "ce-id": "b", "ce-source": "/s", "ce-type": "T"}
    response = post_event(client, json.dumps(nested(40, 1)), content_type="application/json", **headers)
    assert response.status_code == 400 and "CHOREOSCOPE_MAX_DEPTH" in response.json()["error"]


def test_otlp_attribute_values_nested_too_deep_are_a_400_in_both_encodings(client):
    value: dict = {"stringValue": "x"}
    for _ in range(40):
        value = {"arrayValue": {"values": [value]}}
    body = json_request([json_span(attributes=[{"key": "deep", "value": value}])])
    response = client.post("/v1/traces", body, content_type="application/json")
    assert response.status_code == 400 and "CHOREOSCOPE_MAX_DEPTH" in response.json()["message"]

    pb_value = AnyValue(string_value="x")
    for _ in range(40):
        outer = AnyValue()
        outer.array_value.values.append(pb_value)
        pb_value = outer
    request = ExportTraceServiceRequest.FromString(protobuf_request([{"name": "deep"}]))
    request.resource_spans[0].scope_spans[0].spans[0].attributes.append(KeyValue(key="deep", value=pb_value))
    response = client.post("/v1/traces", request.SerializeToString(), content_type="application/x-protobuf")
    assert response.status_code == 400 and not Observation.objects.exists()


def test_data_stored_before_the_limits_stays_readable_through_the_api(admin_client):
    """Rows written before the depth limit hold nesting and integers orjson cannot encode."""
    from tests.live.sockets import event, ingest

    record = event("Deep", "/s", "order-deep")
    record.detail = {"data": {"deep": nested(300, 1), "big": 2**80}}
    ingest(record)
    flow = Flow.objects.get()
    response = admin_client.get(f"/api/flows/{flow.id}")
    assert response.status_code == 200
    assert response.json()["nodes"][0]["data"]["big"] == 2**80


# --- memory amplification ------------------------------------------------------------------------


def test_a_gzip_bomb_of_empty_events_gets_a_small_400(client):
    body = gzip.compress(b"[" + b"{}," * 900_000 + b"{}]")
    assert len(body) < 20_000
    response = post_event(client, body, BATCH, **{"Content-Encoding": "gzip"})
    assert response.status_code == 400 and len(response.content) < 1000
    assert "holds more than 100000 events; at most 100000" in response.json()["error"]


def test_a_batch_of_bad_events_gets_a_small_400_listing_the_first_problems(client, settings):
    settings.MAX_ITEMS_PER_REQUEST, settings.MAX_ELEMENTS_PER_REQUEST = 2_000_000, 3_000_000
    body = gzip.compress(b"[" + b"{}," * 1_400_000 + b"{}]")
    response = post_event(client, body, BATCH, **{"Content-Encoding": "gzip"})
    assert response.status_code == 400
    assert len(response.content) < 10_000
    answer = response.json()
    assert len(answer["problems"]) == 20 and answer["problem_count"] == 1_400_001
    assert answer["problems"][0] == {"index": 0, "reason": answer["problems"][0]["reason"]}
    assert "(and 1399981 more problem(s))" in answer["error"]


def test_a_batch_over_the_item_limit_is_a_400(client, settings):
    settings.MAX_ITEMS_PER_REQUEST = 3
    response = post_event(client, json.dumps([cloudevent() for _ in range(4)]), BATCH)
    assert response.status_code == 400 and "CHOREOSCOPE_MAX_ITEMS_PER_REQUEST" in response.json()["error"]


def test_empty_protobuf_resource_spans_are_counted_on_the_wire_and_refused_before_parsing(client, settings):
    settings.MAX_ITEMS_PER_REQUEST = 1000
    response = client.post("/v1/traces", b"\x0a\x00" * 1001, content_type="application/x-protobuf")
    assert response.status_code == 400
    assert client.post("/v1/traces", b"\x0a\x00" * 1000, content_type="application/x-protobuf").status_code == 200


def test_the_wire_count_stops_at_the_limit_and_leaves_malformed_bodies_to_the_parser():
    limits = Limits(items=10)
    check_otlp_item_count(b"\x0a\x00" * 10, "spans", limits)
    check_otlp_item_count(b"\x0a\xff", "spans", limits)  # truncated: the parser's to report
    one_scope_many_spans = b"\x0a\x18\x12\x16" + b"\x12\x00" * 11
    with pytest.raises(ValueError, match="more than 10 spans, resource and scope groups"):
        check_otlp_item_count(one_scope_many_spans, "spans", limits)


# Inside one span: events, links and attributes are truncated to their limits once parsed, but
# parsing millions of empty ones would cost gigabytes first; every message is counted on the wire.
PROTOBUF_ELEMENT_BOMBS = {
    "span events": ("/v1/traces", hostile.span_events),
    "span links": ("/v1/traces", hostile.span_links),
    "span attributes": ("/v1/traces", hostile.span_attributes),
    "a span event's attributes": ("/v1/traces", hostile.event_attributes),
    "an attribute's array values": ("/v1/traces", hostile.array_values),
    "log record attributes": ("/v1/logs", hostile.log_attributes),
}


@pytest.mark.parametrize("bomb", PROTOBUF_ELEMENT_BOMBS)
def test_millions_of_empty_messages_inside_one_item_are_refused_before_parsing(client, settings, bomb):
    settings.MAX_ELEMENTS_PER_REQUEST = 1000
    path, build = PROTOBUF_ELEMENT_BOMBS[bomb]
    response = client.post(path, build(2_200), content_type="application/x-protobuf")
    assert response.status_code == 400
    message = Status.FromString(response.content).message
    assert "more than 1000 protobuf messages" in message and "CHOREOSCOPE_MAX_ELEMENTS_PER_REQUEST" in message
    assert not Observation.objects.exists()


def test_a_span_within_the_element_limit_is_stored_with_its_events_truncated(client, settings):
    settings.MAX_ELEMENTS_PER_REQUEST = 1000
    response = client.post("/v1/traces", hostile.span_events(1_900), content_type="application/x-protobuf")
    assert response.status_code == 200
    detail = Observation.objects.get().detail
    assert len(detail["events"]) == 128 and detail["dropped_events_count"] == (1_900 - 64) // 2 - 128


def test_a_group_field_in_front_stops_neither_count(client, settings):
    """upb skips an unknown group; a count that gave up on it let everything after it through."""
    settings.MAX_ITEMS_PER_REQUEST, settings.MAX_ELEMENTS_PER_REQUEST = 1000, 1000
    group = b"\x1b\x08\x01\x1c"  # field 3: start group, a varint inside, end group
    response = client.post("/v1/traces", group + b"\x0a\x00" * 1001, content_type="application/x-protobuf")
    assert response.status_code == 400 and "CHOREOSCOPE_MAX_ITEMS_PER_REQUEST" in Status.FromString(response.content).message
    bomb = hostile.one_span_request(group + hostile.empty_fields(11, 2_200))
    response = client.post("/v1/traces", bomb, content_type="application/x-protobuf")
    assert response.status_code == 400 and "CHOREOSCOPE_MAX_ELEMENTS_PER_REQUEST" in Status.FromString(response.content).message


def test_the_element_count_is_exact_and_its_cheap_bound_is_above_it():
    from collectors.limits import _upper_bound_of_elements

    body = protobuf_request([{"name": f"s{n}", "attributes": {"a": 1, "b": "x"}, "error": "e"} for n in range(3)])
    # 1 resource group + its resource + 2 attributes (+ 2 values), 1 scope group + its scope, and per
    # span: itself, 2 attributes with 2 values, its status.
    assert count_wire_elements(body, TRACES_LAYOUT, 10**9) == 1 + 1 + 4 + 1 + 1 + 3 * (1 + 4 + 1)
    assert _upper_bound_of_elements(body, TRACES_LAYOUT) >= 26
    assert count_wire_elements(hostile.span_events(10_000), TRACES_LAYOUT, 100) == 101  # stops past the limit


def test_a_small_body_is_not_walked_at_all():
    limits = Limits(elements=1000)
    check_otlp_elements(b"\x0a\x00" * 1000, TRACES_LAYOUT, limits)  # 1000 elements: at the limit
    with pytest.raises(ValueError, match="more than 1000 protobuf messages"):
        check_otlp_elements(b"\x0a\x00" * 1001, TRACES_LAYOUT, limits)


JSON_ELEMENT_BOMBS = {
    "OTLP/JSON traces": ("/v1/traces", "application/json", hostile.otlp_json_objects, {}),
    "OTLP/JSON logs": ("/v1/logs", "application/json", hostile.otlp_json_objects, {}),
    "a structured CloudEvent's data": ("/v1/events", STRUCTURED, hostile.cloudevent_data_objects, {}),
    "a batch": ("/v1/events", BATCH, hostile.cloudevents_gzip_bomb, {}),
    "binary-mode data": (
        "/v1/events",
        "application/json",
        lambda size: b"[" + b"0," * (size // 2) + b"0]",
        {"ce-specversion": "1.0", "ce-id": "b", "ce-source": "/s", "ce-type": "T"},
    ),
}


@pytest.mark.parametrize("bomb", JSON_ELEMENT_BOMBS)
def test_json_of_more_values_than_the_limit_is_refused_before_parsing(client, settings, bomb):
    settings.MAX_ELEMENTS_PER_REQUEST = 1000
    path, content_type, build, headers = JSON_ELEMENT_BOMBS[bomb]
    response = client.post(path, build(3_300), content_type=content_type, headers=headers)
    assert response.status_code == 400
    assert b"more than 1000 JSON values and containers" in response.content
    assert b"CHOREOSCOPE_MAX_ELEMENTS_PER_REQUEST" in response.content
    assert not Observation.objects.exists()


def test_commas_and_brackets_inside_json_strings_are_not_values():
    limits = Limits(elements=10)
    check_json_elements(json.dumps({"note": ",[{" * 100, "escaped": '\\",' * 50}).encode(), limits)
    with pytest.raises(ValueError, match="more than 10 JSON values"):
        check_json_elements(json.dumps({"note": ",[{" * 100, "values": list(range(11))}).encode(), limits)


def test_json_values_are_checked_without_recursion():
    with pytest.raises(ValueError, match="nests deeper than 5"):
        check_json_value(nested(100_000, 1), "'data'", Limits(depth=5))
    with pytest.raises(ValueError, match="longer than 256"):
        check_json_value({"k" * 257: 1}, "'data'", Limits(string_length=256))


def test_a_problem_list_keeps_the_first_ones_and_counts_all():
    problems = ProblemList(2)
    for index in range(5):
        problems.add(index, "bad")
    assert problems.listed == [(0, "bad"), (1, "bad")] and problems.total == 5


# --- truncating limits ---------------------------------------------------------------------------


def test_span_attributes_events_and_links_beyond_the_limits_are_dropped_and_counted(client, settings):
    settings.MAX_ATTRIBUTES, settings.MAX_SPAN_EVENTS, settings.MAX_SPAN_LINKS = 3, 2, 1
    settings.MAX_STRING_LENGTH = 256
    attributes = [{"key": f"a{n}", "value": {"stringValue": "v" * 300}} for n in range(5)]
    events = [{"name": f"e{n}", "attributes": attributes} for n in range(4)]
    links = [{"traceId": "1" * 32, "spanId": f"{n + 1:016x}"} for n in range(3)]
    span = json_span(attributes=attributes, events=events, links=links, droppedEventsCount=1)
    response = client.post("/v1/traces", json_request([span]), content_type="application/json")
    assert response.status_code == 200, response.content
    stored = Observation.objects.get()
    assert list(stored.attributes) == ["a0", "a1", "a2"]
    assert all(len(value) == 256 for value in stored.attributes.values())
    detail = stored.detail
    assert detail["dropped_attributes_count"] == 2
    assert detail["dropped_events_count"] == 1 + 2  # the sender's and ours
    assert detail["dropped_links_count"] == 2
    assert [event["dropped_attributes_count"] for event in detail["events"]] == [2, 2]
    assert detail["truncated_strings_count"] == 3 + 2 * 3


def test_protobuf_spans_are_truncated_the_same_way(client, settings):
    settings.MAX_ATTRIBUTES, settings.MAX_SPAN_EVENTS = 2, 1
    request = ExportTraceServiceRequest.FromString(protobuf_request([{"name": "many", "attributes": {"a": 1, "b": 2, "c": 3}}]))
    span = request.resource_spans[0].scope_spans[0].spans[0]
    for name in ("e1", "e2", "e3"):
        span.events.add(name=name)
    response = client.post("/v1/traces", request.SerializeToString(), content_type="application/x-protobuf")
    assert response.status_code == 200
    stored = Observation.objects.get()
    assert stored.attributes == {"a": 1, "b": 2}
    assert stored.detail["dropped_attributes_count"] == 1 and stored.detail["dropped_events_count"] == 2
    assert [event["name"] for event in stored.detail["events"]] == ["e1"]


def test_a_cloudevent_string_beyond_the_length_limit_is_a_400(client, settings):
    settings.MAX_STRING_LENGTH = 256
    response = post_event(client, json.dumps(cloudevent(subject="s" * 257)))
    assert response.status_code == 400 and "CHOREOSCOPE_MAX_STRING_LENGTH" in response.json()["error"]
    response = post_event(client, json.dumps(cloudevent(data={"note": "n" * 257})))
    assert response.status_code == 400 and "'data' holds a string longer than 256" in response.json()["error"]
