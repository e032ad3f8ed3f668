"""The decoders, fuzzed as pure functions: whatever bytes, JSON, nesting or Unicode arrive, they
raise nothing but their own error, which carries a message and a 4xx status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from hypothesis import given
from hypothesis import strategies as st

from collectors import cloudevents, otlp
from collectors.limits import Limits
from tests.collectors.payloads import cloudevent, json_request, json_span, protobuf_request
from tests.fuzz import fuzz_settings
from tests.fuzz.strategies import ANY_JSON, EVENT_FIELDS, SPAN_FIELDS, TEXT, json_text
from tracing import asyncapi

LIMITS = Limits()
VALID_PROTOBUF = protobuf_request([{"name": "a", "attributes": {"k": "v", "n": 1}}, {"name": "b"}])


def assert_decoder_error(error: otlp.OtlpDecodeError | cloudevents.CloudEventError) -> None:
    assert 400 <= error.status < 500 and str(error)


@fuzz_settings(150)
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.builds(
            lambda at, raw: VALID_PROTOBUF[:at] + raw + VALID_PROTOBUF[at:],
            st.integers(0, len(VALID_PROTOBUF)),
            st.binary(max_size=8),
        ),
    )
)
def test_protobuf_decoding_raises_only_its_own_error(body):
    try:
        otlp.decode_protobuf(body, LIMITS)
    except otlp.OtlpDecodeError as error:
        assert_decoder_error(error)


def _attribute(value):
    return {"key": "fuzzed", "value": value}


@fuzz_settings(150)
@given(
    overrides=st.dictionaries(SPAN_FIELDS, ANY_JSON, max_size=3),
    attribute=ANY_JSON,
    top=st.one_of(st.none(), ANY_JSON),
)
def test_otlp_json_decoding_raises_only_its_own_error(overrides, attribute, top):
    span = json_span(**overrides)
    span.setdefault("attributes", [])
    if isinstance(span["attributes"], list):
        span["attributes"] = [*span["attributes"], _attribute(attribute)]
    body = json_text(top).encode("utf-8", "surrogatepass") if top is not None else json_request([span])
    try:
        otlp.decode_json(body, LIMITS)
    except otlp.OtlpDecodeError as error:
        assert_decoder_error(error)


@fuzz_settings(150)
@given(overrides=st.dictionaries(EVENT_FIELDS, ANY_JSON, max_size=4), batch=st.booleans(), raw=st.one_of(st.none(), ANY_JSON))
def test_cloudevents_decoding_raises_only_its_own_error(overrides, batch, raw):
    event = {**cloudevent(), **overrides}
    value = raw if raw is not None else ([event, cloudevent()] if batch else event)
    body = json_text(value).encode("utf-8", "surrogatepass")
    try:
        (cloudevents.decode_batch if batch else cloudevents.decode_structured)(body, limits=LIMITS)
    except cloudevents.CloudEventError as error:
        assert_decoder_error(error)


@fuzz_settings(100)
@given(
    headers=st.dictionaries(st.sampled_from(["ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time", "ce-x"]), TEXT),
    body=st.binary(max_size=50) | ANY_JSON.map(lambda v: json_text(v).encode("utf-8", "surrogatepass")),
)
def test_binary_mode_decoding_raises_only_its_own_error(headers, body):
    merged = {
        "ce-specversion": "1.0",
        "ce-id": "i",
        "ce-source": "/s",
        "ce-type": "t",
        "Content-Type": "application/json",
        **headers,
    }
    try:
        cloudevents.decode_binary(merged, body)
    except cloudevents.CloudEventError as error:
        assert_decoder_error(error)


def test_what_the_cloudevents_decoder_accepts_is_json_the_store_can_write():
    """A smallest case of the property above, kept as a plain test: data at the depth limit."""
    event = cloudevent(data=json.loads("[" * 32 + "1" + "]" * 32))
    assert len(cloudevents.decode_structured(json.dumps(event).encode(), limits=LIMITS)) == 1


CHECKOUT_DOCUMENT = json.loads((Path(__file__).parents[1] / "tracing" / "asyncapi_checkout" / "checkout.json").read_text())
DOCUMENT_PATHS = st.sampled_from(
    [
        ("asyncapi",),
        ("info",),
        ("info", "title"),
        ("channels", "orderEvents"),
        ("channels", "orderEvents", "address"),
        ("channels", "orderEvents", "messages", "orderCreated", "$ref"),
        ("operations", "publishOrderCreated", "channel"),
        ("operations", "publishOrderCreated", "messages"),
        ("operations", "publishOrderCreated", "action"),
        ("components", "messages", "orderCreated", "payload"),
        ("components", "messages", "orderCreated", "correlationId"),
        ("components", "correlationIds", "order", "location"),
        ("components", "schemas", "order", "properties"),
    ]
)


LOCAL_REFS = st.sampled_from([{"$ref": "#/components"}, {"$ref": "#"}, {"$ref": "#/channels/orderEvents"}])


def with_value(document: Any, path: tuple[str, ...], value: Any) -> Any:
    """A copy of ``document`` with ``value`` at ``path`` (copying only the mappings on the way)."""
    if not path:
        return value
    changed = dict(document) if isinstance(document, dict) else {}
    changed[path[0]] = with_value(changed.get(path[0]), path[1:], value)
    return changed


@fuzz_settings(150)
@given(
    changes=st.lists(st.tuples(DOCUMENT_PATHS, ANY_JSON | LOCAL_REFS), max_size=3),
    raw=st.one_of(st.none(), TEXT, st.binary(max_size=200)),
)
def test_asyncapi_parsing_raises_only_its_own_error_naming_the_source(changes, raw):
    document = CHECKOUT_DOCUMENT
    for path, value in changes:
        document = with_value(document, path, value)
    text = raw if raw is not None else json_text(document)
    try:
        application = asyncapi.parse_asyncapi(text, "fuzzed.json")
    except ImproperlyConfigured as error:
        assert str(error).startswith("fuzzed.json")
        return
    for message in application.sends:
        validator = asyncapi.payload_validator(application, message)
        if validator is not None:
            validator.is_valid({"order_id": "order-1", "total": 1})


def _messages_in(message) -> int:
    """The messages nested in a parsed protobuf message, counted through its fields."""
    count, pending = 0, [message]
    while pending:
        for descriptor, value in pending.pop().ListFields():
            if descriptor.message_type is None:
                continue
            children = list(value) if descriptor.is_repeated else [value]
            count += len(children)
            pending.extend(children)
    return count


def _any_value(depth: int):
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue

    scalar = st.builds(AnyValue, string_value=st.text(max_size=3)) | st.just(AnyValue())
    if depth == 0:
        return scalar
    return scalar | st.builds(
        lambda values: AnyValue(array_value=ArrayValue(values=values)), st.lists(_any_value(depth - 1), max_size=3)
    )


@fuzz_settings(100)
@given(
    spans=st.lists(
        st.tuples(
            st.lists(st.tuples(st.text(max_size=3), _any_value(3)), max_size=4),
            st.integers(0, 3),
            st.integers(0, 3),
        ),
        max_size=4,
    )
)
def test_the_wire_count_is_every_parsed_message_and_its_bound_is_above_it(spans):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue

    from collectors.limits import _upper_bound_of_elements, count_wire_elements
    from collectors.otlp import TRACES_LAYOUT

    request = ExportTraceServiceRequest()
    scope_spans = request.resource_spans.add().scope_spans.add()
    for attributes, events, links in spans:
        span = scope_spans.spans.add(name="s")
        span.attributes.extend(KeyValue(key=key, value=value) for key, value in attributes)
        for _ in range(events):
            span.events.add().attributes.extend(KeyValue(key=key, value=value) for key, value in attributes)
        for _ in range(links):
            span.links.add()
    body = request.SerializeToString()
    parsed = ExportTraceServiceRequest.FromString(body)
    assert count_wire_elements(body, TRACES_LAYOUT, 10**9) == _messages_in(parsed)
    assert _upper_bound_of_elements(body, TRACES_LAYOUT) >= _messages_in(parsed)
