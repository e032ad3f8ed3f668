"""CloudEvents 1.0: validation and decoding of structured, batched and binary HTTP messages into
observation records.

Validation is ours, done before anything else: the SDKs fill in missing attributes, so they
cannot tell a receiver what a sender got wrong. Every problem is reported with the attribute it
concerns; a batch with one bad event is rejected whole.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import functools
import json
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

from collectors.limits import (
    LimitExceeded,
    Limits,
    ProblemList,
    TooManyElements,
    check_json_elements,
    check_json_value,
    check_string,
    current,
    load_json_array,
    too_many_items,
)
from tracing.records import ObservationRecord, event_identity

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
REQUIRED = ("id", "source", "specversion", "type")
OPTIONAL = ("datacontenttype", "dataschema", "subject", "time")
CORE = frozenset(REQUIRED + OPTIONAL)
DETAIL = ("specversion", "subject", "datacontenttype", "dataschema", "time", "data", "data_base64")
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()

ATTRIBUTE_NAME = re.compile(r"[a-z0-9]+")
# RFC 3339 date-time (section 5.6): seconds required, offset Z or ±hh:mm.
RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))")
# RFC 2046 media type: type "/" subtype, optional parameters.
HTTP_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
MEDIA_TYPE = re.compile(rf"{HTTP_TCHARS}/{HTTP_TCHARS}(?:\s*;\s*{HTTP_TCHARS}=(?:{HTTP_TCHARS}|\"[^\"]*\"))*\s*")
ABSOLUTE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s]*")
TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


class CloudEventError(Exception):
    """Invalid CloudEvent(s); ``problems`` are the first (index in the batch or None, reason) pairs,
    ``total`` how many there were in all; ``status`` is the HTTP status to answer with."""

    def __init__(self, problems: list[tuple[int | None, str]], total: int | None = None, status: int = 400) -> None:
        self.problems = problems
        self.total = len(problems) if total is None else total
        self.status = status
        super().__init__(self.message)

    @property
    def message(self) -> str:
        if len(self.problems) == 1 and self.problems[0][0] is None and self.total == 1:
            return self.problems[0][1]
        listed = "; ".join(f"event {index}: {reason}" if index is not None else reason for index, reason in self.problems)
        more = self.total - len(self.problems)
        return f"{listed} (and {more} more problem(s))" if more > 0 else listed

    @classmethod
    def single(cls, reason: str, status: int = 400) -> CloudEventError:
        return cls([(None, reason)], status=status)


@functools.lru_cache(maxsize=4096)
def rfc3339_ns(text: str) -> int | None:
    """Unix nanoseconds of an RFC 3339 timestamp, or None when it is not one. (Cached: validation
    and the record both need it, and a batch often repeats timestamps.)"""
    match = RFC3339.fullmatch(text)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    h, mi, s = int(hour), int(minute), int(second)
    try:
        days = datetime.date(int(year), int(month), int(day)).toordinal() - EPOCH_ORDINAL
    except ValueError:
        return None
    if h > 23 or mi > 59 or s > 60:
        return None
    offset = 0
    if not zulu:
        if int(off_h) > 23 or int(off_m) > 59:
            return None
        offset = (int(off_h) * 60 + int(off_m)) * 60 * (1 if sign == "+" else -1)
    seconds = days * 86400 + h * 3600 + mi * 60 + min(s, 59) - offset  # a leap second counts as :59
    nanos = int(fraction[:9].ljust(9, "0")) if fraction else 0
    return seconds * 1_000_000_000 + nanos


def _problems_with_string(name: str, value: Any) -> str | None:
    if not isinstance(value, str):
        return f"attribute '{name}' must be a string, got {type(value).__name__}"
    if name in REQUIRED and name != "specversion" and not value:
        return f"required attribute '{name}' must not be empty"
    if name == "specversion" and value != "1.0":
        return f"specversion must be '1.0', got {value!r:.40}"
    if name == "source" and any(char.isspace() or ord(char) < 32 for char in value):
        return "attribute 'source' must be a URI-reference (no spaces or control characters)"
    if name == "time":
        nanos = rfc3339_ns(value)
        if nanos is None:
            return f"attribute 'time' must be an RFC 3339 timestamp, got {value!r:.40}"
        if not INT64_MIN <= nanos <= INT64_MAX:
            return "attribute 'time' is outside the years 1677-2262 that can be stored"
    if name == "dataschema" and not ABSOLUTE_URI.fullmatch(value):
        return f"attribute 'dataschema' must be an absolute URI, got {value!r:.60}"
    if name == "datacontenttype" and not MEDIA_TYPE.fullmatch(value):
        return f"attribute 'datacontenttype' must be an RFC 2046 media type (type/subtype), got {value!r:.60}"
    if name == "subject" and not value:
        return "attribute 'subject' must not be empty when present"
    return None


def _extension_problem(name: str, value: Any) -> str | None:
    if not ATTRIBUTE_NAME.fullmatch(name):
        return f"extension attribute name {name!r:.40} must consist of lower-case letters a-z and digits 0-9 only"
    if isinstance(value, bool | str):
        return None
    if isinstance(value, int):
        return None if INT32_MIN <= value <= INT32_MAX else f"extension '{name}' is an integer outside the 32-bit signed range"
    return f"extension '{name}' must be a string, a boolean or an integer, got {type(value).__name__}"


def _bound_problem(event: dict[str, Any], limits: Limits) -> str | None:
    """Why the event goes beyond a limit (attribute count, string length, data nesting), or None."""
    if len(event) > limits.attributes + len(CORE) + 2:
        return (
            f"the event has {len(event)} attributes; at most {limits.attributes} extensions are taken "
            "(CHOREOSCOPE_MAX_ATTRIBUTES)"
        )
    try:
        for name, value in event.items():
            check_string(name, "an attribute name", limits)
            # data_base64 is bytes in disguise: the body limit bounds it.
            if isinstance(value, str) and name not in ("data", "data_base64"):
                check_string(value, f"attribute '{name:.40}'", limits)
        check_json_value(event.get("data"), "'data'", limits)
    except LimitExceeded as error:
        return str(error).rstrip(".")
    return None


def event_problems(event: Any, limits: Limits | None = None) -> list[str]:
    """Everything wrong with a structured-mode event (a decoded JSON value), up to
    ``limits.problems`` of it; empty when valid."""
    if not isinstance(event, dict):
        return [f"a CloudEvent must be a JSON object, got {type(event).__name__}"]
    limits = limits or current()
    bound = _bound_problem(event, limits)
    if bound:
        return [bound]
    problems = [f"required attribute '{name}' is missing" for name in REQUIRED if event.get(name) is None]
    for name, value in event.items():
        if len(problems) >= limits.problems:
            break
        if value is None or name in ("data", "data_base64"):
            continue
        problem = _problems_with_string(name, value) if name in CORE else _extension_problem(name, value)
        if problem:
            problems.append(problem)
    if event.get("data") is not None and event.get("data_base64") is not None:
        problems.append("'data' and 'data_base64' are mutually exclusive")
    encoded = event.get("data_base64")
    if encoded is not None:
        try:
            if not isinstance(encoded, str):
                raise ValueError
            base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error):
            problems.append("'data_base64' must be a base64 string")
    return problems


def parse_traceparent(value: Any) -> tuple[str, str]:
    """(trace_id, span_id) from a W3C traceparent, or empty strings when it is not a valid one."""
    if not isinstance(value, str):
        return "", ""
    match = TRACEPARENT.fullmatch(value.strip())
    if not match or match.group(1) == "ff" or set(match.group(2)) == {"0"} or set(match.group(3)) == {"0"}:
        return "", ""
    return match.group(2), match.group(3)


def event_record(event: dict[str, Any], received_ns: int) -> ObservationRecord:
    """The record of a validated event (see ``event_problems``)."""
    extensions = {
        name: value
        for name, value in event.items()
        if name not in CORE and name not in ("data", "data_base64") and value is not None
    }
    trace_id, span_id = parse_traceparent(extensions.get("traceparent"))
    detail = {name: event[name] for name in DETAIL if event.get(name) is not None}
    timestamp = event.get("time")
    return ObservationRecord(
        kind="event",
        identity=event_identity(event["source"], event["id"]),
        name=event["type"],
        service=event["source"],
        start_ns=rfc3339_ns(timestamp) or received_ns if timestamp else received_ns,
        trace_id=trace_id,
        span_id=span_id,
        event_source=event["source"],
        event_id=event["id"],
        attributes=extensions,
        detail=detail,
    )


def _load_json(body: bytes, limits: Limits) -> Any:
    try:
        check_json_elements(body, limits)
        return json.loads(body)
    except LimitExceeded as error:
        raise CloudEventError.single(str(error)) from None
    except (ValueError, RecursionError) as error:
        raise CloudEventError.single(f"The body is not valid JSON: {error}") from None


def decode_structured(body: bytes, received_ns: int | None = None, limits: Limits | None = None) -> list[ObservationRecord]:
    limits = limits or current()
    event = _load_json(body, limits)
    problems = event_problems(event, limits)
    if problems:
        raise CloudEventError.single("; ".join(problems))
    return [event_record(event, received_ns or time.time_ns())]


def batch_problems(events: list[Any], limits: Limits) -> ProblemList:
    """The first ``limits.problems`` invalid events of a batch, and how many there are."""
    problems = ProblemList(limits.problems)
    for index, event in enumerate(events):
        found = event_problems(event, limits)
        if found:
            problems.add(index, "; ".join(found))
    return problems


def decode_batch(body: bytes, received_ns: int | None = None, limits: Limits | None = None) -> list[ObservationRecord]:
    limits = limits or current()
    try:
        check_json_elements(body, limits)
        events = load_json_array(body.decode("utf-8"), limits.items)
    except TooManyElements as error:
        raise CloudEventError.single(str(too_many_items(str(error), "events", limits))) from None
    except LimitExceeded as error:
        raise CloudEventError.single(str(error)) from None
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise CloudEventError.single(f"The body is not valid JSON: {error}") from None
    if events is None:
        raise CloudEventError.single("A batch (application/cloudevents-batch+json) must be a JSON array of events.")
    problems = batch_problems(events, limits)
    if problems.total:
        raise CloudEventError(problems.listed, problems.total)
    now = received_ns or time.time_ns()
    return [event_record(event, now) for event in events]


# --- binary mode -------------------------------------------------------------------------------


def header_value(raw: str) -> str:
    """A ``ce-*`` header value as the HTTP binding says: unquote a quoted-string (RFC 9110 §5.6.4),
    then percent-decode as UTF-8."""
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = re.sub(r"\\(.)", r"\1", value[1:-1])
    try:
        return unquote_to_bytes(value.encode("latin-1")).decode("utf-8")
    except (UnicodeDecodeError, UnicodeEncodeError):
        raise CloudEventError.single(f"header value {raw!r:.60} is not percent-encoded UTF-8") from None


def binary_data(body: bytes, content_type: str) -> dict[str, Any]:
    """The event's data: parsed JSON for a JSON media type, text for text, else base64."""
    essence = content_type.split(";")[0].strip().lower()
    if not body:
        return {}
    if not essence or essence == "application/json" or essence.endswith("+json"):
        try:
            check_json_elements(body, current())
        except LimitExceeded as error:
            raise CloudEventError.single(str(error)) from None
        try:
            return {"data": json.loads(body)}
        except (ValueError, RecursionError):
            pass
    if essence.startswith("text/") or not essence or essence.endswith(("/xml", "+xml")):
        try:
            return {"data": body.decode("utf-8")}
        except UnicodeDecodeError:
            pass
    return {"data_base64": base64.b64encode(body).decode()}


def decode_binary(headers: Mapping[str, str], body: bytes, received_ns: int | None = None) -> list[ObservationRecord]:
    """Binary mode: attributes in ``ce-*`` headers, ``Content-Type`` is the datacontenttype, the body is the data."""
    event: dict[str, Any] = {}
    for name, raw in headers.items():
        lower = name.lower()
        if lower.startswith("ce-") and len(lower) > 3:
            event[lower[3:]] = header_value(raw)
    content_type = headers.get("Content-Type", "")
    if content_type:
        event["datacontenttype"] = content_type
    for name in ("data", "data_base64"):
        if name in event:
            raise CloudEventError.single(f"header 'ce-{name}' is not allowed: '{name}' is not an attribute")
    problems = event_problems(event)
    if problems:
        raise CloudEventError.single("; ".join(problems))
    event.update(binary_data(body, content_type))
    try:
        if isinstance(event.get("data"), dict | list):  # text and bytes bodies are bounded by the body limit
            check_json_value(event["data"], "the JSON body (the event's data)", current())
    except LimitExceeded as error:
        raise CloudEventError.single(str(error)) from None
    return [event_record(event, received_ns or time.time_ns())]


def is_binary(headers: Mapping[str, str]) -> bool:
    return "ce-specversion" in {name.lower() for name in headers}


def decode_events(headers: Mapping[str, str], body: bytes, essence: str) -> list[ObservationRecord]:
    """Records from an HTTP request in any of the three modes; raises ``CloudEventError``."""
    if essence == STRUCTURED:
        return decode_structured(body)
    if essence == BATCH:
        return decode_batch(body)
    return decode_binary(headers, body)
