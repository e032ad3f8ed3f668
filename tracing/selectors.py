"""Reads of flows, for the pages, the JSON API and the live sockets: plain, validated arguments in,
model rows and plain rows out (parsing requests and shaping JSON belong to ``dashboard.api``).

``flow_page`` walks surviving flows newest first (``started_at`` desc, ``id`` desc) from a keyset
position, so page N costs what page 1 costs. ``flow_graph`` loads one flow's observations in
causal order and its edges from cause to effect. A flow's observations are its members: those
whose primary flow it is (``Observation.flow``) and its shared steps (``SharedStep``); read
them through ``flow_observation_ids``/``flow_members``, never ``Observation.flow`` alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from django.db.models import Exists, OuterRef, Q, QuerySet, TextField
from django.db.models.functions import Cast

from tracing.bulk import chunks
from tracing.correlation import causal_order, clock_skew
from tracing.models import Edge, Flow, FlowFacet, Observation, SharedStep, SpanLog

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


OtherFlow = tuple[int, str]  # id, key


@dataclass(frozen=True)
class CrossFlowEdge:
    """An edge between this flow and another that share no observation at its ends."""

    source: int
    target: int
    kind: str
    other_flow: OtherFlow
    direction: str  # "in": the cause is in the other flow; "out": the effect is


@dataclass(frozen=True)
class ClockSkew:
    service: str  # whose clock appears behind
    behind: str  # the service of the cause it appears behind
    skew_ns: int


@dataclass(frozen=True)
class FlowGraph:
    """One flow's observations (``OBSERVATION_FIELDS`` plus the parsed ``JSON_FIELDS``) in causal
    order, causality first and timestamps second, and its edges as (cause, effect, kind), with
    what it shares with other flows: the other flows each shared step serves, the edges that
    cross into other flows, how far each node's clock appears behind its causes', and the plain
    log records of its spans."""

    observations: list[dict[str, Any]]
    edges: list[tuple[int, int, str]]
    # Plain log records of its spans, by (trace_id, span_id), earliest first.
    span_logs: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    shared_with: dict[int, list[OtherFlow]] = field(default_factory=dict)
    cross_flow_edges: list[CrossFlowEdge] = field(default_factory=list)
    skew_ns: dict[int, int] = field(default_factory=dict)
    clock_skews: list[ClockSkew] = field(default_factory=list)


def _parsed(row: dict[str, Any]) -> dict[str, Any]:
    for name in JSON_FIELDS:
        text = row.pop(f"{name}_json")
        row[name] = orjson.loads(text) if text else {}
    return row


def flows_of_observations(observation_ids: Sequence[int]) -> dict[int, list[OtherFlow]]:
    """Every flow (id, key) each of these observations serves, primary first."""
    found: dict[int, list[OtherFlow]] = {}
    for part in chunks(sorted(set(observation_ids))):
        primary = Observation.objects.filter(id__any=part, flow__isnull=False).values_list("id", "flow_id", "flow__key")
        shared = SharedStep.objects.filter(observation_id__any=part).values_list("observation_id", "flow_id", "flow__key")
        for obs, flow_id, key in [*primary, *sorted(shared)]:
            found.setdefault(obs, []).append((flow_id, key))
    return found


def _edges_touching(observation_ids: Sequence[int]) -> set[tuple[int, int, str, bool]]:
    edges: set[tuple[int, int, str, bool]] = set()
    for column in ("target_id", "source_id"):
        for part in chunks(observation_ids):
            rows = Edge.objects.filter(**{f"{column}__any": part}).values_list("source_id", "target_id", "kind", "cross_flow")
            edges.update(rows)
    return edges


def clock_skews(rows: dict[int, dict[str, Any]], edges: Sequence[tuple[int, int, str]]) -> tuple[dict[int, int], list[ClockSkew]]:
    """How far each node's clock appears behind its causes' (the largest gap, 0 if none), and,
    per pair of services, how far the effect's service appears behind the cause's."""
    per_node: dict[int, int] = {}
    per_pair: dict[tuple[str, str], int] = {}
    for source, target, _ in edges:
        skew = clock_skew(rows[source]["start_ns"], rows[target]["start_ns"])
        if skew <= 0:
            continue
        per_node[target] = max(skew, per_node.get(target, 0))
        services = (rows[target]["service"], rows[source]["service"])
        if services[0] != services[1]:
            per_pair[services] = max(skew, per_pair.get(services, 0))
    return per_node, [ClockSkew(service, behind, skew) for (service, behind), skew in sorted(per_pair.items())]


def flow_graph(flow_id: int) -> FlowGraph:
    members = flow_observation_ids(flow_id)
    rows: list[dict[str, Any]] = []
    for part in chunks(members):
        rows += Observation.objects.filter(id__any=part).values(*OBSERVATION_FIELDS, **JSON_AS_TEXT)
    inside = set(members)
    touching = sorted(_edges_touching(members))
    edges = [(s, t, k) for s, t, k, _ in touching if s in inside and t in inside]
    crossing = [(s, t, k) for s, t, k, cross in touching if cross and (s in inside) != (t in inside)]
    flows = flows_of_observations([*members, *(s if t in inside else t for s, t, _ in crossing)])
    ordered = causal_order({row["id"]: (row["start_ns"], row["id"]) for row in rows}, [(s, t) for s, t, _ in edges])
    by_id = {row["id"]: row for row in rows}
    spans = {(row["trace_id"], row["span_id"]) for row in rows if row["kind"] == Observation.Kind.SPAN}
    skew, skews = clock_skews(by_id, edges)
    shared = {obs: [other for other in flows.get(obs, []) if other[0] != flow_id] for obs in members}
    cross_edges = [
        CrossFlowEdge(s, t, k, other, "out" if s in inside else "in")
        for s, t, k in crossing
        for other in flows.get(t if s in inside else s, [])
    ]
    return FlowGraph(
        [_parsed(by_id[node_id]) for node_id in ordered],
        edges,
        span_logs=span_logs_of(spans),
        shared_with={obs: others for obs, others in shared.items() if others},
        cross_flow_edges=cross_edges,
        skew_ns=skew,
        clock_skews=skews,
    )


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


# --- A flow's members: its primary observations and its shared steps ----------------------------


def flow_observation_ids(flow_id: int) -> list[int]:
    """Ids of every observation a flow holds: those whose primary flow it is, and the shared
    steps it has in common with other flows."""
    primary = Observation.objects.filter(flow_id=flow_id).values_list("id", flat=True)
    shared = SharedStep.objects.filter(flow_id=flow_id).values_list("observation_id", flat=True)
    return sorted({*primary, *shared})


def flow_members(flow_ids: Sequence[int], *fields: str) -> list[tuple[Any, ...]]:
    """``(flow id, *fields)`` of every member of these flows, primary and shared (an
    observation shared by two of them appears once per flow)."""
    rows: list[tuple[Any, ...]] = []
    shared_fields = [f"observation__{name}" for name in fields]
    for part in chunks(sorted(set(flow_ids))):
        rows += Observation.objects.filter(flow_id__any=part).values_list("flow_id", *fields)
        rows += SharedStep.objects.filter(flow_id__any=part).values_list("flow_id", *shared_fields)
    return rows


def edges_among(members: dict[int, set[int]]) -> dict[int, list[tuple[int, int, str, bool]]]:
    """Per flow, the edges both of whose ends it holds: ``(cause, effect, kind, cross_flow)``."""
    everything = sorted({obs for found in members.values() for obs in found})
    flows_of: dict[int, list[int]] = {}
    for flow_id, found in members.items():
        for obs in found:
            flows_of.setdefault(obs, []).append(flow_id)
    result: dict[int, list[tuple[int, int, str, bool]]] = {}
    for part in chunks(everything):
        for source, target, kind, cross in Edge.objects.filter(target_id__any=part).values_list(
            "source_id", "target_id", "kind", "cross_flow"
        ):
            for flow_id in flows_of.get(target, ()):
                if source in members[flow_id]:
                    result.setdefault(flow_id, []).append((source, target, kind, cross))
    return result


# --- Exports --------------------------------------------------------------------------------------

EXPORT_EVENT_FIELDS = ("id", "identity", "name", "service", "status", "start_ns", "business_key")
EXPORT_CHUNK = 200  # flows whose events one query reads, so an export streams in bounded memory


def flows_business_events(flow_ids: Sequence[int]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(flow id, event row) for the business events of these flows, flow by flow in the order
    given, each flow's events by time (``EXPORT_EVENT_FIELDS`` and ``shared_with``: the ids of the
    other flows a shared event serves), each event once, under its primary flow."""
    for start in range(0, len(flow_ids), EXPORT_CHUNK):
        part = flow_ids[start : start + EXPORT_CHUNK]
        rows = Observation.objects.filter(flow_id__any=part, kind=Observation.Kind.EVENT).values("flow_id", *EXPORT_EVENT_FIELDS)
        by_flow: dict[int, list[dict[str, Any]]] = {flow_id: [] for flow_id in part}
        for row in rows.order_by("flow_id", "start_ns", "id"):
            row["shared_with"] = []
            by_flow[row.pop("flow_id")].append(row)
        # An event that serves several flows (an aggregate) is written once, under its primary flow,
        # and names the others it serves.
        by_id = {row["id"]: row for found in by_flow.values() for row in found}
        for observation_id, other in SharedStep.objects.filter(observation_id__any=sorted(by_id)).values_list(
            "observation_id", "flow_id"
        ):
            by_id[observation_id]["shared_with"].append(other)
        for flow_id in part:
            yield from ((flow_id, row) for row in by_flow[flow_id])


def cross_flow_causes(flow_ids: Sequence[int]) -> dict[int, list[int]]:
    """For each of these flows, the others among them where an observation caused one of its own."""
    wanted, causes = set(flow_ids), defaultdict(set)
    for start in range(0, len(flow_ids), EXPORT_CHUNK):
        edges = Edge.objects.filter(cross_flow=True, target__flow_id__any=flow_ids[start : start + EXPORT_CHUNK])
        for effect, cause in edges.values_list("target__flow_id", "source__flow_id"):
            if cause in wanted:
                causes[effect].add(cause)
    return {flow_id: sorted(found) for flow_id, found in causes.items()}
