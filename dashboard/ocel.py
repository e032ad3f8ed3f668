"""OCEL 2.0 JSON (the Object-Centric Event Log standard, ocel-standard.org) from flows, for
process-mining tools (PM4Py's ``read_ocel2_json``, Celonis, ocpa).

The mapping:

- an OCEL **event** is a business event (an observation of kind ``event``: a CloudEvent, or an
  OTLP log record with ``event.name``); its id is the observation's identity, its type the
  CloudEvents type, its time the event's own timestamp, with attributes ``service`` and
  ``status``. Spans are left out: they are the technical steps between business events, and
  would drown the activities an analyst mines in HTTP handlers and consumer polls.
- an OCEL **object** is a flow's business key (``order-1042``); its type is the key's prefix
  (``order``) when the key has one (letters before a ``-``), else the flow's type; attributes
  ``flow_id``, ``flow_type`` and ``status`` (as people see it), stamped at the flow's start.
- each event is related (**e2o**) to its flow's object, qualified ``key`` when the event
  carries that business key itself and ``step`` when it belongs to the flow by causality alone.
- an event that is a shared step of several flows (an aggregate event serving many orders) is
  written once and related to each of their objects: its primary flow's as above, the others
  qualified ``shared`` (those among the exported flows).
- objects are related (**o2o**, qualified ``follows``) when an observation of one flow caused
  one of the other (a cross-flow edge).

The document is written piece by piece (``ocel_chunks``), objects and events first, the types
they used last (JSON objects are unordered), so a large export never sits whole in memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from dashboard.api.serializers import OcelAttributeType, OcelEvent, OcelObject, OcelRelationship, OcelType

KEY_PREFIX = re.compile(r"^([A-Za-z][A-Za-z_]*)-.")
OBJECT_ATTRIBUTES = (("flow_id", "integer"), ("flow_type", "string"), ("status", "string"))
EVENT_ATTRIBUTES = (("service", "string"), ("status", "string"))


def object_type(key: str, flow_type: str) -> str:
    """``order-1042`` → ``order``; a key without such a prefix takes the flow's type."""
    match = KEY_PREFIX.match(key)
    return match.group(1) if match else (flow_type or "flow")


def ocel_time(ns: int) -> str:
    """An instant as OCEL writes it: ISO 8601 in UTC, to the microsecond."""
    return datetime.fromtimestamp(ns // 1000 / 1e6, tz=UTC).isoformat().replace("+00:00", "Z")


def ocel_object(flow: Mapping[str, Any], follows: Iterable[str] = ()) -> OcelObject:
    """A flow as an OCEL object; ``flow`` has id, key, type, status and started_at."""
    at = flow["started_at"].astimezone(UTC).isoformat().replace("+00:00", "Z")
    values = {"flow_id": flow["id"], "flow_type": flow["type"], "status": flow["status"]}
    return {
        "id": flow["key"],
        "type": object_type(flow["key"], flow["type"]),
        "attributes": [{"name": name, "time": at, "value": values[name]} for name, _ in OBJECT_ATTRIBUTES],
        "relationships": [{"objectId": other, "qualifier": "follows"} for other in follows],
    }


def ocel_event(row: Mapping[str, Any], flow_key: str, shared_keys: Iterable[str] = ()) -> OcelEvent:
    """A business event row (identity, name, service, status, start_ns, business_key) as an
    OCEL event related to its flow's object, and to the objects of the other flows it serves
    as a shared step (qualified ``shared``)."""
    relationships: list[OcelRelationship] = [
        {"objectId": flow_key, "qualifier": "key" if row["business_key"] == flow_key else "step"}
    ]
    relationships += [{"objectId": key, "qualifier": "shared"} for key in shared_keys if key != flow_key]
    return {
        "id": row["identity"],
        "type": row["name"],
        "time": ocel_time(row["start_ns"]),
        "attributes": [{"name": "service", "value": row["service"]}, {"name": "status", "value": row["status"]}],
        "relationships": relationships,
    }


def _types(names: Iterable[str], attributes: tuple[tuple[str, str], ...]) -> list[OcelType]:
    declared: list[OcelAttributeType] = [{"name": name, "type": kind} for name, kind in attributes]
    return [{"name": name, "attributes": declared} for name in sorted(names)]


CHUNK_BYTES = 64 * 1024  # a piece per item would cost the server a write per event


def _array(key: str, items: Iterable[OcelObject] | Iterable[OcelEvent], first: bool) -> Iterator[bytes]:
    buffer = bytearray((b"{" if first else b",") + orjson.dumps(key) + b":[")
    for index, item in enumerate(items):
        if index:
            buffer += b","
        buffer += orjson.dumps(item)
        if len(buffer) >= CHUNK_BYTES:
            yield bytes(buffer)
            buffer.clear()
    yield bytes(buffer + b"]")


def ocel_chunks(
    flows: Sequence[Mapping[str, Any]], follows: Mapping[int, list[str]], event_rows: Iterable[tuple[int, Mapping[str, Any]]]
) -> Iterator[bytes]:
    """The OCEL 2.0 JSON document, in pieces: ``flows`` as objects (``follows`` maps a flow id to
    the keys of flows it follows), then each ``(flow id, event row)`` as an event."""
    keys = {flow["id"]: flow["key"] for flow in flows}
    object_types: set[str] = set()
    event_types: set[str] = set()
    seen_keys: set[str] = set()

    def objects() -> Iterator[OcelObject]:
        for flow in flows:
            if flow["key"] in seen_keys:  # keys are unique among surviving flows; guard anyway
                continue
            seen_keys.add(flow["key"])
            item = ocel_object(flow, follows.get(flow["id"], ()))
            object_types.add(item["type"])
            yield item

    def events() -> Iterator[OcelEvent]:
        for flow_id, row in event_rows:
            event_types.add(row["name"])
            shared = [keys[other] for other in row.get("shared_with", ()) if other in keys]
            yield ocel_event(row, keys[flow_id], shared)

    yield from _array("objects", objects(), first=True)
    yield from _array("events", events(), first=False)
    yield b',"objectTypes":' + orjson.dumps(_types(object_types, OBJECT_ATTRIBUTES))
    yield b',"eventTypes":' + orjson.dumps(_types(event_types, EVENT_ATTRIBUTES)) + b"}"
