"""Reads of flows, for the pages, the JSON API and the live sockets: plain, validated arguments in,
model rows and plain rows out (parsing requests and shaping JSON belong to ``dashboard.api``).

``flow_page`` walks surviving flows newest first (``started_at`` desc, ``id`` desc) from a keyset
position, so page N costs what page 1 costs. ``flow_graph`` loads one flow's observations in
causal order and its edges from cause to effect.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from django.db.models import Exists, F, OuterRef, Q, QuerySet, TextField
from django.db.models.functions import Cast

from tracing.correlation import causal_order
from tracing.models import Edge, Flow, FlowFacet, Observation, SpanLog

# A place in the newest-first order of flows: (started_at, id) of the last flow already seen.
Position = tuple[datetime, int]
# A further condition on flows that tracing does not own (e.g. a status another app derives).
Narrowing = Callable[[QuerySet[Flow]], QuerySet[Flow]]


@dataclass(frozen=True)
class FlowFilters:
    key: str | None = None
    type: str | None = None
    service: str | None = None
    event_type: str | None = None
    since: datetime | None = None  # flows still active at or after this instant (last_seen_at >= since)
    until: datetime | None = None  # flows started before this instant (started_at < until)


def flow_conditions(filters: FlowFilters, prefix: str = "") -> Q:
    """The filters that live on the flow row itself, as seen from ``prefix`` (e.g. ``flow__``)."""
    conditions = Q(**{f"{prefix}merged_into__isnull": True})
    for name in ("key", "type"):
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


def after_position(after: Position | None, started_field: str, id_field: str) -> Q:
    if after is None:
        return Q()
    started_at, flow_id = after
    return Q(**{f"{started_field}__lt": started_at}) | Q(**{started_field: started_at, f"{id_field}__lt": flow_id})


def flow_page(
    filters: FlowFilters,
    after: Position | None = None,
    limit: int = 50,
    narrow: Narrowing | None = None,
) -> list[Flow]:
    """Up to ``limit`` flows after ``after``, newest first.

    A filter on the flow row (key, type, or the caller's ``narrow``) walks that index newest
    first and checks any service or event type through the facet's unique index. A service or
    event type alone walks the facet index (value, newest first) instead, so a rare service costs
    one short index range rather than a walk over every flow."""
    facets = facet_filters(filters)
    if facets and filters.key is None and filters.type is None and narrow is None:
        (facet, value), others = facets[0], facets[1:]
        rows = FlowFacet.objects.filter(
            flow_conditions(filters, "flow__"), after_position(after, "started_at", "flow_id"), facet=facet, value=value
        )
        for other_facet, other_value in others:
            also = FlowFacet.objects.filter(flow_id=OuterRef("flow_id"), facet=other_facet, value=other_value)
            rows = rows.filter(Exists(also))
        return [row.flow for row in rows.select_related("flow").order_by("-started_at", "-flow_id")[:limit]]
    flows = Flow.objects.filter(flow_conditions(filters), after_position(after, "started_at", "id"))
    if narrow is not None:
        flows = narrow(flows)
    for facet, value in facets:
        flows = flows.filter(Exists(FlowFacet.objects.filter(flow_id=OuterRef("id"), facet=facet, value=value)))
    return list(flows.order_by("-started_at", "-id")[:limit])


def flow_position(flow: Flow) -> Position:
    return flow.started_at, flow.id


def resolve_flow(flow_id: int) -> Flow | None:
    """The flow with this id, or the flow that absorbed it when a late observation merged them."""
    seen: set[int] = set()
    flow = Flow.objects.filter(id=flow_id).first()
    while flow is not None and flow.merged_into_id is not None and flow.id not in seen:
        seen.add(flow.id)
        flow = Flow.objects.filter(id=flow.merged_into_id).first()
    return flow


OBSERVATION_FIELDS = (
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
JSON_FIELDS = ("attributes", "resource", "detail")
# JSON columns come back as text and are parsed with orjson: for a flow of a thousand nodes,
# the ORM's per-value json.loads would be a third of the response time.
JSON_AS_TEXT = {f"{name}_json": Cast(name, TextField()) for name in JSON_FIELDS}


@dataclass(frozen=True)
class FlowGraph:
    """One flow's observations (``OBSERVATION_FIELDS`` plus the parsed ``JSON_FIELDS``) in causal
    order, causality first and timestamps second, and its edges as (cause, effect, kind)."""

    observations: list[dict[str, Any]]
    edges: list[tuple[int, int, str]]
    # Plain log records of its spans, by (trace_id, span_id), earliest first.
    span_logs: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)


def _parsed(row: dict[str, Any]) -> dict[str, Any]:
    for name in JSON_FIELDS:
        text = row.pop(f"{name}_json")
        row[name] = orjson.loads(text) if text else {}
    return row


def flow_graph(flow_id: int) -> FlowGraph:
    rows = list(Observation.objects.filter(flow_id=flow_id).values(*OBSERVATION_FIELDS, **JSON_AS_TEXT))
    edges = list(Edge.objects.filter(flow_id=flow_id).values_list("source_id", "target_id", "kind"))
    ordered = causal_order({row["id"]: (row["start_ns"], row["id"]) for row in rows}, [(s, t) for s, t, _ in edges])
    by_id = {row["id"]: row for row in rows}
    spans = {(row["trace_id"], row["span_id"]) for row in rows if row["kind"] == Observation.Kind.SPAN}
    return FlowGraph([_parsed(by_id[node_id]) for node_id in ordered], edges, span_logs_of(spans))


def span_logs_of(spans: set[tuple[str, str]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The plain log records kept for ``spans`` (one query per few hundred traces)."""
    logs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    trace_ids = sorted({trace_id for trace_id, _ in spans})
    for start in range(0, len(trace_ids), 500):
        rows = (
            SpanLog.objects.filter(trace_id__in=trace_ids[start : start + 500])
            .order_by("time_ns", "id")
            .values_list("trace_id", "span_id", "time_ns", "severity", "body", "attributes")
        )
        for trace_id, span_id, time_ns, severity, body, attributes in rows:
            if (trace_id, span_id) in spans:
                entry = {"time_ns": time_ns, "severity": severity, "body": body, "attributes": attributes}
                logs.setdefault((trace_id, span_id), []).append(entry)
    return logs


# --- Exports --------------------------------------------------------------------------------------

EXPORT_EVENT_FIELDS = ("identity", "name", "service", "status", "start_ns", "business_key")
EXPORT_CHUNK = 200  # flows whose events one query reads, so an export streams in bounded memory


def flows_business_events(flow_ids: Sequence[int]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(flow id, event row) for the business events of these flows, flow by flow in the order
    given, each flow's events by time (``EXPORT_EVENT_FIELDS``)."""
    for start in range(0, len(flow_ids), EXPORT_CHUNK):
        part = flow_ids[start : start + EXPORT_CHUNK]
        rows = Observation.objects.filter(flow_id__any=part, kind=Observation.Kind.EVENT).values("flow_id", *EXPORT_EVENT_FIELDS)
        by_flow: dict[int, list[dict[str, Any]]] = {flow_id: [] for flow_id in part}
        for row in rows.order_by("flow_id", "start_ns", "id"):
            by_flow[row.pop("flow_id")].append(row)
        for flow_id in part:
            yield from ((flow_id, row) for row in by_flow[flow_id])


def cross_flow_causes(flow_ids: Sequence[int]) -> dict[int, list[int]]:
    """For each of these flows, the others among them where an observation caused one of its own."""
    wanted, causes = set(flow_ids), defaultdict(set)
    for start in range(0, len(flow_ids), EXPORT_CHUNK):
        edges = Edge.objects.filter(target__flow_id__any=flow_ids[start : start + EXPORT_CHUNK]).exclude(
            source__flow_id=F("target__flow_id")
        )
        for effect, cause in edges.values_list("target__flow_id", "source__flow_id"):
            if cause in wanted:
                causes[effect].add(cause)
    return {flow_id: sorted(found) for flow_id, found in causes.items()}
