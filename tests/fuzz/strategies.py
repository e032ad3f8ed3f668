"""Hostile values: text with NULs, lone surrogates and odd digits; JSON nested past every limit;
instants and numbers at the edges of what Python and the databases hold."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import strategies as st

EDGE_INSTANTS = st.sampled_from(
    [
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+23:59",
        "2026-01-01T00:00:00+16:00",
        "2026-01-01T00:00:00-23:59",
        "2026-13-45T25:61:61Z",
        "2026-01-01 12:00:00 02:00",
    ]
)
NASTY_TEXT = st.one_of(
    st.sampled_from(["\x00", "\ud800", "\udfff\ud800", "9" * 25, "9" * 5000, "", "%FF", "-1", "NaN", "\u202e"]),
    EDGE_INSTANTS,
)
# Half hostile, half anything at all (every code point, surrogates included).
TEXT = st.one_of(NASTY_TEXT, st.text(st.characters(codec=None), max_size=8))
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(TEXT, children, max_size=3)),
    max_leaves=12,
)


def nest(depth: int, inner: Any, as_object: bool) -> Any:
    value = inner
    for _ in range(depth):
        value = {"k": value} if as_object else [value]
    return value


# Nesting around and far beyond the depth limit (32), the JSON encoders' limits (255) and Python's
# recursion limit (1000).
DEEP_JSON = st.builds(nest, st.sampled_from([31, 32, 33, 100, 254, 256, 300, 1200]), SCALARS, st.booleans())
ANY_JSON = st.one_of(JSON_VALUES, DEEP_JSON)


def json_text(value: Any) -> str:
    """JSON as a hostile client writes it: lone surrogates escaped, huge nesting allowed."""
    try:
        return json.dumps(value)
    except (RecursionError, ValueError):
        return "[" * 100_000 + "]" * 100_000


INSTANTS = st.one_of(
    EDGE_INSTANTS, st.datetimes(timezones=st.timezones() | st.none()).map(lambda moment: moment.isoformat()), TEXT
)


def cursor_of(value: Any) -> str:
    return base64.urlsafe_b64encode(json_text(value).encode("utf-8", "surrogatepass")).decode().rstrip("=")


CURSORS = st.one_of(
    TEXT,
    st.tuples(INSTANTS, st.integers(min_value=-(2**70), max_value=2**70)).map(lambda pair: cursor_of(list(pair))),
    ANY_JSON.map(cursor_of),
)

# The fields of an OTLP/JSON span, to override with hostile values.
SPAN_FIELDS = st.sampled_from(
    [
        "traceId",
        "spanId",
        "parentSpanId",
        "name",
        "kind",
        "startTimeUnixNano",
        "endTimeUnixNano",
        "attributes",
        "events",
        "links",
        "status",
        "flags",
        "traceState",
        "droppedAttributesCount",
        "droppedEventsCount",
    ]
)

# The attributes of a CloudEvent (and extensions correlation reads), to set to hostile values.
EVENT_FIELDS = st.sampled_from(
    [
        "specversion",
        "id",
        "source",
        "type",
        "time",
        "subject",
        "dataschema",
        "datacontenttype",
        "data",
        "data_base64",
        "correlationid",
        "traceparent",
        "causationid",
        "ext",
        "sequence",
    ]
)
