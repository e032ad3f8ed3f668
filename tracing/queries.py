"""The read side of flows, shared by the pages and the JSON API.

``flow_list`` pages through surviving flows newest first (``started_at`` desc, ``id`` desc) with
an opaque keyset cursor, so page N costs what page 1 costs. ``flow_detail`` builds the contract
shape of ``GET /api/flows/<id>``: nodes in causal order, edges from cause to effect.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from django.db.models import Exists, OuterRef, Q, TextField
from django.db.models.functions import Cast
from django.utils.dateparse import parse_datetime

from tracing.correlation import causal_order, iso_from_ns
from tracing.models import Edge, Flow, FlowFacet, Observation

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
UNESCAPED_OFFSET = re.compile(r"(\d) (\d{2}(?::?\d{2})?)$")
FILTER_NAMES = ("key", "status", "type", "service", "event_type", "since", "until")


class InvalidQuery(ValueError):
    """A filter or cursor a person sent that we cannot use; the message says how to fix it."""


@dataclass(frozen=True)
class FlowFilters:
    key: str | None = None
    status: str | None = None
    type: str | None = None
    service: str | None = None
    event_type: str | None = None
    since: datetime | None = None  # flows still active at or after this instant (last_seen_at >= since)
    until: datetime | None = None  # flows started before this instant (started_at < until)


def parse_instant(name: str, raw: str) -> datetime:
    """An ISO 8601 instant; a naive one is taken as UTC."""
    # An unescaped '+' of a UTC offset arrives as a space: "12:00:00 02:00" means "12:00:00+02:00".
    try:
        value = parse_datetime(UNESCAPED_OFFSET.sub(r"\1+\2", raw.strip()))
    except ValueError:  # well formed but impossible, such as month 13
        value = None
    if value is None:
        raise InvalidQuery(f"'{name}' must be an ISO 8601 date-time such as 2026-01-31T12:00:00Z, not {raw!r}.")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_flow_filters(params: Mapping[str, str]) -> FlowFilters:
    values: dict[str, Any] = {}
    for name in ("key", "type", "service", "event_type"):
        raw = params.get(name)
        if raw is not None and raw != "":
            if len(raw) > 255:
                raise InvalidQuery(f"'{name}' is longer than 255 characters.")
            if "\x00" in raw:
                raise InvalidQuery(f"'{name}' contains a NUL character, which no stored value holds.")
            values[name] = raw
    status = params.get("status")
    if status:
        if status not in Flow.Status.values:
            raise InvalidQuery(f"'status' must be one of {', '.join(Flow.Status.values)}, not {status!r}.")
        values["status"] = status
    for name in ("since", "until"):
        raw = params.get(name)
        if raw:
            values[name] = parse_instant(name, raw)
    if "since" in values and "until" in values and values["since"] >= values["until"]:
        raise InvalidQuery("'since' must be earlier than 'until'.")
    return FlowFilters(**values)


def parse_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise InvalidQuery(f"'limit' must be a whole number from 1 to {MAX_LIMIT}, not {raw!r}.") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidQuery(f"'limit' must be from 1 to {MAX_LIMIT}, not {limit}.")
    return limit


def encode_cursor(flow: Flow) -> str:
    raw = json.dumps([flow.started_at.isoformat(), flow.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        started, flow_id = json.loads(raw)
        started_at = parse_datetime(started)
        if started_at is None or not isinstance(flow_id, int):
            raise ValueError(cursor)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidQuery("'cursor' is not one this server handed out; start again without it.") from None
    return started_at, flow_id


def flow_conditions(filters: FlowFilters, prefix: str = "") -> Q:
    """The filters that live on the flow row itself, as seen from ``prefix`` (e.g. ``flow__``)."""
    conditions = Q(**{f"{prefix}merged_into__isnull": True})
    for name in ("key", "status", "type"):
        value = getattr(filters, name)
        if value is not None:
            conditions &= Q(**{f"{prefix}{name}": value})
    if filters.since is not None:
        conditions &= Q(**{f"{prefix}last_seen_at__gte": filters.since})
    if filters.until is not None:
        conditions &= Q(**{f"{prefix}started_at__lt": filters.until})
    return conditions


def facet_filters(filters: FlowFilters) -> list[tuple[str, str]]:
    pairs = [(FlowFacet.Facet.SERVICE, filters.service), (FlowFacet.Facet.EVENT_TYPE, filters.event_type)]
    return [(facet, value) for facet, value in pairs if value is not None]


def after_cursor(cursor: str | None, started_field: str, id_field: str) -> Q:
    if not cursor:
        return Q()
    started_at, flow_id = decode_cursor(cursor)
    return Q(**{f"{started_field}__lt": started_at}) | Q(**{started_field: started_at, f"{id_field}__lt": flow_id})


def flow_list(filters: FlowFilters, cursor: str | None = None, limit: int = DEFAULT_LIMIT) -> tuple[list[Flow], str | None]:
    """One page of flows, newest first, and the cursor of the next page (None on the last).

    A filter on the flow row (key, status, type) walks that index newest first and checks any
    service or event type through the facet's unique index. A service or event type alone walks
    the facet index (value, newest first) instead, so a rare service costs one short index range
    rather than a walk over every flow."""
    facets = facet_filters(filters)
    if facets and filters.key is None and filters.status is None and filters.type is None:
        (facet, value), others = facets[0], facets[1:]
        rows = FlowFacet.objects.filter(
            flow_conditions(filters, "flow__"), after_cursor(cursor, "started_at", "flow_id"), facet=facet, value=value
        )
        for other_facet, other_value in others:
            also = FlowFacet.objects.filter(flow_id=OuterRef("flow_id"), facet=other_facet, value=other_value)
            rows = rows.filter(Exists(also))
        page = [row.flow for row in rows.select_related("flow").order_by("-started_at", "-flow_id")[: limit + 1]]
    else:
        flows = Flow.objects.filter(flow_conditions(filters), after_cursor(cursor, "started_at", "id"))
        for facet, value in facets:
            flows = flows.filter(Exists(FlowFacet.objects.filter(flow_id=OuterRef("id"), facet=facet, value=value)))
        page = list(flows.order_by("-started_at", "-id")[: limit + 1])
    if len(page) > limit:
        return page[:limit], encode_cursor(page[limit - 1])
    return page, None


def resolve_flow(flow_id: int) -> Flow | None:
    """The flow with this id, or the flow that absorbed it when a late observation merged them."""
    seen: set[int] = set()
    flow = Flow.objects.filter(id=flow_id).first()
    while flow is not None and flow.merged_into_id is not None and flow.id not in seen:
        seen.add(flow.id)
        flow = Flow.objects.filter(id=flow.merged_into_id).first()
    return flow


def flow_summary(flow: Flow) -> dict[str, Any]:
    """A flow as it appears in lists: no nodes, just what a row needs."""
    return {
        "id": flow.id,
        "key": flow.key,
        "type": flow.type,
        "status": flow.status,
        "started_at": flow.started_at.isoformat(),
        "last_seen_at": flow.last_seen_at.isoformat(),
        "services": flow.services,
        "steps": flow.steps,
        "observation_count": flow.observation_count,
        "error_count": flow.error_count,
        "root_trace_id": flow.root_trace_id,
        "stuck_after": flow.stuck_after.isoformat() if flow.stuck_after else None,
        "missing": flow.missing,
    }


NODE_FIELDS = (
    "id",
    "kind",
    "name",
    "service",
    "start_ns",
    "end_ns",
    "trace_id",
    "span_id",
    "parent_span_id",
    "span_kind",
    "status",
    "status_message",
    "event_source",
    "event_id",
    "business_key",
)
# JSON columns come back as text and are parsed with orjson: for a flow of a thousand nodes,
# the ORM's per-value json.loads would be a third of the response time.
JSON_NODE_FIELDS = {f"{name}_json": Cast(name, TextField()) for name in ("attributes", "resource", "detail")}
SPAN_KIND_NAMES = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def _json(text: str | None) -> Any:
    return orjson.loads(text) if text else {}


def node_from_row(row: dict[str, Any], order: int) -> dict[str, Any]:
    detail = _json(row["detail_json"])
    start, end = row["start_ns"], row["end_ns"]
    node = {
        "id": row["id"],
        "kind": row["kind"],
        "name": row["name"],
        "service": row["service"],
        "start": iso_from_ns(start),
        "end": iso_from_ns(end),
        "start_ns": start,
        "end_ns": end,
        "duration_ms": round((end - start) / 1e6, 3) if end is not None else None,
        "status": row["status"],
        "status_message": row["status_message"],
        "trace_id": row["trace_id"],
        "span_id": row["span_id"],
        "event_id": row["event_id"],
        "order": order,
        "business_key": row["business_key"],
        "attributes": _json(row["attributes_json"]),
    }
    if row["kind"] == Observation.Kind.SPAN:
        node.update(
            parent_span_id=row["parent_span_id"],
            span_kind=SPAN_KIND_NAMES.get(row["span_kind"], str(row["span_kind"])),
            resource=_json(row["resource_json"]),
            events=detail.get("events", []),
            links=detail.get("links", []),
        )
    else:
        node.update(
            event_source=row["event_source"],
            data=detail.get("data", detail.get("data_base64")),
            subject=detail.get("subject"),
            datacontenttype=detail.get("datacontenttype"),
        )
    return node


def flow_detail(flow: Flow) -> dict[str, Any]:
    """The contract shape of ``GET /api/flows/<id>``; nodes come in causal order."""
    rows = list(Observation.objects.filter(flow_id=flow.id).values(*NODE_FIELDS, **JSON_NODE_FIELDS))
    edges = list(Edge.objects.filter(flow_id=flow.id).values_list("source_id", "target_id", "kind"))
    ordered = causal_order({row["id"]: (row["start_ns"], row["id"]) for row in rows}, [(s, t) for s, t, _ in edges])
    position = {node_id: index for index, node_id in enumerate(ordered)}
    rows.sort(key=lambda row: position[row["id"]])
    return {
        **flow_summary(flow),
        "nodes": [node_from_row(row, position[row["id"]]) for row in rows],
        "edges": [{"source": source, "target": target, "kind": kind} for source, target, kind in edges],
    }
