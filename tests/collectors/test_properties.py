"""Property tests: whatever arrives at the ingestion endpoints, the answer is never a 500 and a
request is stored whole or not at all."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors import admission
from tests.collectors.payloads import cloudevent, json_request, json_span, protobuf_request
from tests.fuzz.strategies import EVENT_FIELDS, SPAN_FIELDS
from tracing.models import Observation

pytestmark = pytest.mark.django_db(transaction=True)
EXPECTED = {200, 202, 400, 413, 415}
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

NASTY = st.sampled_from(
    [
        "",
        "\x00",
        "\ud800",
        "\\ud800",
        "\ud83d\ude00",
        "é",
        " ",
        "%",
        "%FF",
        '"',
        "\\",
        "null",
        "-1",
        "1e309",
        "0" * 40,
        "2018-04-05T17:31:00Z",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    NASTY,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)),
    max_leaves=20,
)


@pytest.fixture(autouse=True)
def _no_back_pressure():
    admission.forget()


def check(response, before: int) -> int:
    """The answer is expected; a refusal wrote nothing. Returns the rows the request added."""
    assert response.status_code in EXPECTED, response.content[:300]
    added = Observation.objects.count() - before
    if response.status_code >= 400:
        assert added == 0
    return added


def mutate(data: bytes, positions: list[int], values: list[int], cut: int) -> bytes:
    buffer = bytearray(data)
    for position, value in zip(positions, values, strict=False):
        if buffer:
            buffer[position % len(buffer)] = value
    return bytes(buffer[: max(0, len(buffer) - cut)])


VALID_PROTOBUF = protobuf_request([{"name": "a"}, {"name": "b"}, {"name": "c"}])


@PROPERTY_SETTINGS
@given(
    positions=st.lists(st.integers(0, 10_000), max_size=6),
    values=st.lists(st.integers(0, 255), max_size=6),
    cut=st.integers(0, 40),
    junk=st.binary(max_size=200),
    use_junk=st.booleans(),
)
def test_mangled_protobuf_never_gets_a_500_nor_a_partial_write(client, positions, values, cut, junk, use_junk):
    body = junk if use_junk else mutate(VALID_PROTOBUF, positions, values, cut)
    before = Observation.objects.count()
    response = client.post("/v1/traces", body, content_type="application/x-protobuf")
    added = check(response, before)
    if response.status_code == 200:
        assert added <= 3


@PROPERTY_SETTINGS
@given(overrides=st.dictionaries(SPAN_FIELDS, JSON_VALUES, max_size=4), top=st.one_of(st.none(), JSON_VALUES))
def test_odd_otlp_json_never_gets_a_500_nor_a_partial_write(client, overrides, top):
    body = json.dumps(top).encode() if top is not None else json_request([json_span(), json_span(**overrides)])
    before = Observation.objects.count()
    response = client.post("/v1/traces", body, content_type="application/json")
    added = check(response, before)
    if response.status_code == 200:
        rejected = int(response.json().get("partialSuccess", {}).get("rejectedSpans", 0))
        assert added + rejected <= 2


@PROPERTY_SETTINGS
@given(overrides=st.dictionaries(EVENT_FIELDS, JSON_VALUES, max_size=4), batch_size=st.integers(0, 3), as_batch=st.booleans())
def test_odd_cloudevents_never_get_a_500_and_a_batch_is_stored_whole_or_not_at_all(client, overrides, batch_size, as_batch):
    events = [cloudevent() for _ in range(batch_size)] + [{**cloudevent(), **overrides}]
    body = json.dumps(events if as_batch else events[-1]).encode()
    content_type = "application/cloudevents-batch+json" if as_batch else "application/cloudevents+json"
    before = Observation.objects.count()
    response = client.post("/v1/events", body, content_type=content_type)
    added = check(response, before)
    if response.status_code == 202:
        assert added == response.json()["stored"] == (len(events) if as_batch else 1)


HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=30) | NASTY


@PROPERTY_SETTINGS
@given(
    headers=st.dictionaries(
        st.sampled_from(
            [
                "ce-specversion",
                "ce-id",
                "ce-source",
                "ce-type",
                "ce-time",
                "ce-subject",
                "ce-dataschema",
                "ce-correlationid",
                "ce-data",
                "ce-BadName",
                "Content-Type",
            ]
        ),
        HEADER_TEXT,
        max_size=6,
    ),
    body=st.binary(max_size=100),
)
def test_odd_binary_mode_headers_never_get_a_500(client, headers, body):
    base = {"ce-specversion": "1.0", "ce-id": "h", "ce-source": "/s", "ce-type": "t"}
    merged = {**base, **headers}
    content_type = merged.pop("Content-Type", "application/octet-stream")
    before = Observation.objects.count()
    check(client.post("/v1/events", body, content_type=content_type, headers=merged), before)


@PROPERTY_SETTINGS
@given(
    coding=st.sampled_from(["gzip", "deflate", "x-gzip", "br", "gzip, deflate", "identity", "", "zstd", "gzip,gzip"]),
    compress=st.sampled_from(["gzip", "deflate", "none"]),
    cut=st.integers(0, 10),
    endpoint=st.sampled_from(["traces", "events"]),
)
def test_any_content_encoding_gets_an_answer_not_a_500(client, coding, compress, cut, endpoint):
    raw = json_request([json_span()]) if endpoint == "traces" else json.dumps(cloudevent()).encode()
    compressors: dict[str, Callable[[bytes], bytes]] = {"gzip": gzip.compress, "deflate": zlib.compress, "none": bytes}
    body = compressors[compress](raw)
    body = body[: len(body) - cut]
    content_type = "application/json" if endpoint == "traces" else "application/cloudevents+json"
    before = Observation.objects.count()
    check(client.post(f"/v1/{endpoint}", body, content_type=content_type, headers={"Content-Encoding": coding}), before)


def test_nul_characters_and_lone_surrogates_are_stored_not_refused(client):
    event = cloudevent(id="nul\x00id", type="Order\ud800Created", data={"note\x00": ["\udfff", "\x00"]}, subject="s\x00")
    response = client.post("/v1/events", json.dumps(event).encode(), content_type="application/cloudevents+json")
    assert response.status_code == 202
    stored = Observation.objects.get()
    assert stored.name == "Order\ufffdCreated" and "\x00" not in stored.event_id
