"""Bounds on the work one ingestion request can cause, shared by every decoder (OTLP traces and
logs, CloudEvents over HTTP and on a bus).

Two kinds of bound: those that refuse (nesting deeper than ``depth``, more than ``items`` spans or
events in one request, a CloudEvent attribute or data string longer than ``string_length``) raise
``LimitExceeded`` with a message naming the setting; those that truncate, as the OpenTelemetry SDKs
do (attributes, events and links of one span, long attribute strings), keep the first ones and say
how much they left out on the stored item (``dropped_attributes_count`` and friends).

Everything here is iterative or depth-bounded: a hostile value never costs a deep recursion.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


class LimitExceeded(ValueError):
    """A request that goes beyond a refusing bound; the message says which and how to change it."""


@dataclass(frozen=True, slots=True)
class Limits:
    depth: int = 32
    string_length: int = 65_536
    attributes: int = 128
    span_events: int = 128
    span_links: int = 128
    items: int = 100_000
    elements: int = 2_000_000
    problems: int = 20


def current() -> Limits:
    """The limits the settings configure (``CHOREOSCOPE_MAX_*``)."""
    from django.conf import settings

    return Limits(
        depth=settings.MAX_DEPTH,
        string_length=settings.MAX_STRING_LENGTH,
        attributes=settings.MAX_ATTRIBUTES,
        span_events=settings.MAX_SPAN_EVENTS,
        span_links=settings.MAX_SPAN_LINKS,
        items=settings.MAX_ITEMS_PER_REQUEST,
        elements=settings.MAX_ELEMENTS_PER_REQUEST,
        problems=settings.MAX_PROBLEMS,
    )


# --- refusing bounds ---------------------------------------------------------------------------


def too_deep(what: str, limits: Limits) -> LimitExceeded:
    return LimitExceeded(f"{what} nests deeper than {limits.depth} levels (CHOREOSCOPE_MAX_DEPTH).")


def too_long(what: str, limits: Limits) -> LimitExceeded:
    return LimitExceeded(f"{what} holds a string longer than {limits.string_length} characters (CHOREOSCOPE_MAX_STRING_LENGTH).")


def too_many_items(count: int | str, what: str, limits: Limits) -> LimitExceeded:
    return LimitExceeded(
        f"The request holds {count} {what}; at most {limits.items} are taken in one request "
        "(CHOREOSCOPE_MAX_ITEMS_PER_REQUEST): send smaller batches."
    )


def _children(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        yield from value.keys()
        yield from value.values()
    elif isinstance(value, list):
        yield from value


def check_json_value(value: Any, what: str, limits: Limits) -> None:
    """Refuse a decoded JSON value (event data) nested deeper than the limit or holding a string
    (value or key) longer than the limit. Walks with an explicit stack: no recursion."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if len(item) > limits.string_length:
                raise too_long(what, limits)
        elif isinstance(item, dict | list):
            if depth >= limits.depth:
                raise too_deep(what, limits)
            stack.extend((child, depth + 1) for child in _children(item))


def check_string(value: str, what: str, limits: Limits) -> None:
    if len(value) > limits.string_length:
        raise too_long(what, limits)


class TooManyElements(ValueError):
    pass


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\n\r":
        index += 1
    return index


def load_json_array(text: str, limit: int) -> list[Any] | None:
    """The elements of a JSON array (None when the document is another JSON value), parsed one at
    a time: an array of more than ``limit`` elements is refused (``TooManyElements``) once its
    ``limit + 1``-th element is read, so a small gzip body that expands into a million tiny
    objects costs the memory of ``limit`` of them, not of all. Raises ``ValueError`` (or
    ``RecursionError``) where ``json.loads`` would."""
    decoder = json.JSONDecoder()
    index = _skip_space(text, 0)
    if not text.startswith("[", index):
        _, end = decoder.raw_decode(text, index)
        _expect_end(text, end)
        return None
    items: list[Any] = []
    index = _skip_space(text, index + 1)
    if text.startswith("]", index):
        _expect_end(text, index + 1)
        return items
    while True:
        item, index = decoder.raw_decode(text, index)
        items.append(item)
        if len(items) > limit:
            raise TooManyElements(f"more than {limit}")
        index = _skip_space(text, index)
        if text.startswith("]", index):
            _expect_end(text, index + 1)
            return items
        if not text.startswith(",", index):
            raise ValueError(f"Expecting ',' delimiter: char {index}")
        index = _skip_space(text, index + 1)


def _expect_end(text: str, end: int) -> None:
    if _skip_space(text, end) != len(text):
        raise ValueError(f"Extra data: char {end}")


# A parsed JSON value costs 30 to 70 bytes (a dict, a list, a float, a short string, and its slot in
# its parent) however short its text: "{}," is three bytes. Every value inside an array or object
# but the first of each is preceded by a comma, and every container begins with a bracket, so
# commas and brackets bound the values a document can hold; counting them is two passes in C.
# Only a document whose count is above the limit is counted again without its strings (a comma
# inside a string is not a value), and refused if still above it.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


def _json_punctuation(body: bytes) -> int:
    return body.count(b",") + body.count(b"{") + body.count(b"[")


def check_json_elements(body: bytes, limits: Limits) -> None:
    """Refuse a JSON document of more than ``limits.elements`` values and containers (its commas and
    opening brackets outside strings), before it is parsed."""
    if _json_punctuation(body) <= limits.elements or _json_punctuation(_JSON_STRING.sub(b'""', body)) <= limits.elements:
        return
    raise too_many_elements("JSON values and containers (objects, arrays)", limits)


def too_many_elements(what: str, limits: Limits) -> LimitExceeded:
    return LimitExceeded(
        f"The request holds more than {limits.elements} {what}; at most that many are taken in one request "
        "(CHOREOSCOPE_MAX_ELEMENTS_PER_REQUEST): send smaller batches."
    )


# --- truncating bounds -------------------------------------------------------------------------


@dataclass(slots=True)
class Truncation:
    """What truncation left out of one item, to be said on it."""

    strings: int = 0  # attribute strings cut to ``string_length``
    counts: dict[str, int] = field(default_factory=dict)  # e.g. {"dropped_attributes_count": 3}

    def drop(self, name: str, count: int) -> None:
        if count > 0:
            self.counts[name] = self.counts.get(name, 0) + count


def truncated_strings(value: Any, limits: Limits, truncation: Truncation) -> Any:
    """``value`` (an attribute value: scalars, lists and string-keyed dicts, already no deeper than
    the depth limit) with every string cut to ``string_length``; counts the cuts."""
    if isinstance(value, str):
        if len(value) > limits.string_length:
            truncation.strings += 1
            return value[: limits.string_length]
        return value
    if isinstance(value, list):
        return [truncated_strings(item, limits, truncation) for item in value]
    if isinstance(value, dict):
        return {
            truncated_strings(key, limits, truncation): truncated_strings(item, limits, truncation) for key, item in value.items()
        }
    return value


def bounded_attributes(attributes: dict[str, Any], limits: Limits, truncation: Truncation, counter: str) -> dict[str, Any]:
    """The first ``limits.attributes`` attributes with long strings cut; the number left out is
    added to ``truncation`` under ``counter`` (OTLP's ``dropped_attributes_count``)."""
    if len(attributes) > limits.attributes:
        truncation.drop(counter, len(attributes) - limits.attributes)
        attributes = dict(list(attributes.items())[: limits.attributes])
    if any(isinstance(value, str | list | dict) for value in attributes.values()) or any(
        len(key) > limits.string_length for key in attributes
    ):
        return truncated_strings(attributes, limits, truncation)
    return attributes


def say_truncation(detail: dict[str, Any], truncation: Truncation) -> dict[str, Any]:
    """Record on an item's detail what its truncation left out (added to what the sender said it dropped)."""
    for name, count in truncation.counts.items():
        detail[name] = int(detail.get(name) or 0) + count
    if truncation.strings:
        detail["truncated_strings_count"] = int(detail.get("truncated_strings_count") or 0) + truncation.strings
    return detail


# --- error answers -----------------------------------------------------------------------------


@dataclass(slots=True)
class ProblemList:
    """The first ``limit`` problems of a request, and how many there were in all: an answer that
    lists every problem of a million-event batch would be larger than the batch."""

    limit: int
    listed: list[tuple[int | None, str]] = field(default_factory=list)
    total: int = 0

    def add(self, index: int | None, reason: str) -> None:
        self.total += 1
        if len(self.listed) < self.limit:
            self.listed.append((index, reason))

    @property
    def full(self) -> bool:
        return len(self.listed) >= self.limit


# --- OTLP protobuf, before it is parsed ----------------------------------------------------------
# A parsed protobuf message costs tens of bytes however small its encoding: an empty span event or
# link is 2 bytes on the wire and 60 to 90 in memory (upb), so a 64 MiB body of empty ones would
# cost gigabytes before any truncating bound could drop them. Two counts on the wire, before
# parsing, refuse such bodies instead:
# - items: the request's resource groups, scope groups and items (spans, log records);
#   ExportTraceServiceRequest and ExportLogsServiceRequest share the layout: field 1 the resource
#   groups, in each field 2 the scope groups, in each field 2 the items;
# - elements: every message of the request, at every level (attributes, events, links, values),
#   found by walking the wire with the request's descriptor. That walk is Python and costs about
#   what parsing does, so it only runs where it could refuse: an element takes at least 2 bytes
#   (key and length), so a body under twice the limit is taken as it is; above that, the bytes that
#   could begin a message field's key are counted in C (``bytes.translate``), an upper bound of the
#   elements, and only a body whose bound is above the limit is walked.
# A field with a group wire type (proto2, never OTLP) is skipped as upb skips it, so it cannot
# stop either count early.
MAX_WIRE_NESTING = 100  # upb's own depth limit: deeper bodies fail to parse anyway
WIRE_CHUNK = 1 << 20


class WireFormatError(ValueError):
    """The body is not well-formed protobuf; the parser says so in its own words."""


def _varint(data: bytes, position: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= end or shift > 63:
            raise WireFormatError("truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7


def _skip_value(data: bytes, position: int, end: int, key: int) -> int:
    """The position after the value of the field whose ``key`` was just read (groups included)."""
    wire_type = key & 7
    if wire_type == 0:
        return _varint(data, position, end)[1]
    if wire_type == 1:
        return position + 8
    if wire_type == 5:
        return position + 4
    if wire_type == 2:
        length, position = _varint(data, position, end)
        return position + length
    if wire_type == 3:
        open_groups = 1
        while open_groups:
            inner, position = _varint(data, position, end)
            if inner & 7 == 3:
                open_groups += 1
            elif inner & 7 == 4:
                open_groups -= 1
            else:
                position = _skip_value(data, position, end, inner)
            if position > end:
                raise WireFormatError("group runs past its message")
        return position
    raise WireFormatError(f"wire type {wire_type} where a field begins")


def _submessages(data: bytes, start: int, end: int, wanted: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each length-delimited field number ``wanted`` in ``data[start:end]``."""
    position = start
    while position < end:
        key, position = _varint(data, position, end)
        if key == (wanted << 3 | 2):
            length, position = _varint(data, position, end)
            yield position, min(position + length, end)
            position += length
        else:
            position = _skip_value(data, position, end, key)
        if position > end:
            raise WireFormatError("field runs past its message")


def check_otlp_item_count(body: bytes, what: str, limits: Limits) -> None:
    """Refuse an OTLP export request with more than ``limits.items`` resource groups, scope groups
    and items (spans, log records) together. A body that is not well-formed protobuf is left to
    the parser, which says what is wrong with it."""
    count = 0
    try:
        for resource_start, resource_end in _submessages(body, 0, len(body), 1):
            count += 1
            for scope_start, scope_end in _submessages(body, resource_start, resource_end, 2):
                count += 1
                for _ in _submessages(body, scope_start, scope_end, 2):
                    count += 1
                    if count > limits.items:
                        break
                if count > limits.items:
                    break
            if count > limits.items:
                break
    except WireFormatError:
        return
    if count > limits.items:
        raise too_many_items(f"more than {limits.items}", f"{what}, resource and scope groups", limits)


@dataclass(frozen=True, slots=True)
class WireLayout:
    """Where a request type's messages are on the wire: for each message type (by full name), its
    message-typed fields (number → type); and the bytes that cannot begin such a field's key."""

    root: str
    fields: dict[str, dict[int, str]]
    not_key_starts: bytes

    @classmethod
    def of(cls, descriptor: Any) -> WireLayout:
        fields: dict[str, dict[int, str]] = {}
        pending = [descriptor]
        while pending:
            message = pending.pop()
            if message.full_name in fields:
                continue
            children = [field for field in message.fields if field.message_type is not None]
            fields[message.full_name] = {field.number: field.message_type.full_name for field in children}
            pending.extend(field.message_type for field in children)
        # A key is the varint number << 3 | 2; its first byte is what a count in C can look for.
        starts = {((number << 3 | 2) & 0x7F) | (0x80 if number >= 16 else 0) for table in fields.values() for number in table}
        return cls(descriptor.full_name, fields, bytes(byte for byte in range(256) if byte not in starts))


def _upper_bound_of_elements(body: bytes, layout: WireLayout) -> int:
    """At least the number of messages in ``body``: every one begins with a key byte counted here
    (and so may other bytes, inside strings and ids). A MiB at a time: what ``translate`` keeps
    of a hostile body would be half of it."""
    return sum(
        len(body[start : start + WIRE_CHUNK].translate(None, layout.not_key_starts)) for start in range(0, len(body), WIRE_CHUNK)
    )


def count_wire_elements(body: bytes, layout: WireLayout, stop_after: int) -> int:
    """The messages nested in ``body`` at every level (not counting the request itself), walked
    without recursion; stops counting once past ``stop_after``. Raises ``WireFormatError`` on a
    body that is not well-formed."""
    count, stack = 0, list[tuple[int, int, dict[int, str]]]()
    position, end, fields = 0, len(body), layout.fields[layout.root]
    while True:
        if position >= end:
            if position > end:
                raise WireFormatError("field runs past its message")
            if not stack:
                return count
            position, end, fields = stack.pop()
            continue
        key = body[position]
        if key < 0x80:
            position += 1
        else:
            key, position = _varint(body, position, end)
        child = fields.get(key >> 3) if key & 7 == 2 else None
        if child is None:
            position = _skip_value(body, position, end, key)
            continue
        length, position = _varint(body, position, end)
        count += 1
        if count > stop_after:
            return count
        if position + length > end or len(stack) >= MAX_WIRE_NESTING:
            raise WireFormatError("a message runs past its parent or nests too deep")
        stack.append((position + length, end, fields))
        end, fields = position + length, layout.fields[child]


def check_otlp_elements(body: bytes, layout: WireLayout, limits: Limits) -> None:
    """Refuse an OTLP export request of more than ``limits.elements`` messages in all (see above
    for why it is cheap where it does not refuse). A body that is not well-formed protobuf is
    left to the parser."""
    if len(body) < 2 * (limits.elements + 1) or _upper_bound_of_elements(body, layout) <= limits.elements:
        return
    try:
        count = count_wire_elements(body, layout, limits.elements)
    except WireFormatError:
        return
    if count > limits.elements:
        raise too_many_elements("protobuf messages (attributes, events, links, values, spans and their groups)", limits)


def check_otlp_request(body: bytes, layout: WireLayout, what: str, limits: Limits) -> None:
    """Both counts on the wire of an OTLP export request, before it is parsed."""
    check_otlp_item_count(body, what, limits)
    check_otlp_elements(body, layout, limits)
