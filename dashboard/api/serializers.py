"""Every JSON shape of the API, declared once.

Each shape is a ``TypedDict``: mypy checks that its serializer below builds exactly those keys,
and ``dashboard.api.schema`` turns the same declarations into the OpenAPI document (an
``Annotated`` ``Schema(...)`` adds a description, a format or an enum; enums come from the
models' choices). The serializers are plain functions over rows and dataclasses, so the pages
and the live sockets send what the API sends.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal, TypedDict, cast

from alerts import selectors as alert_selectors
from alerts.expectations import Expectation
from alerts.models import Alert as AlertRow
from alerts.status import FlowState, ShownStatus, flow_states
from dashboard.api.paging import Page
from tracing.correlation import iso_from_ns
from tracing.models import Edge, Flow, Observation
from tracing.records import Status as ObservationStatus
from tracing.selectors import FlowGraph
from tracing.topology import WINDOWS


class Schema:
    """JSON Schema keywords added to a declared type, as ``Annotated[str, Schema(format="date-time")]``."""

    def __init__(self, **keywords: Any) -> None:
        self.keywords = keywords


def choices(values: Iterable[str], description: str = "") -> Schema:
    return Schema(enum=list(values), **({"description": description} if description else {}))


def described(text: str) -> Schema:
    return Schema(description=text)


Instant = Annotated[str, Schema(format="date-time")]


class Error(TypedDict):
    error: Annotated[str, described("What went wrong, and how to fix it.")]


# --- Flows -----------------------------------------------------------------------------------


class MissingStepCommon(TypedDict):
    step: Annotated[str, described("The expected event type or span name.")]
    service: Annotated[str, described("The service expected to act ('' when unknown).")]
    after: Annotated[str, described("What it should have reacted to ('' for the overall deadline).")]
    due_at: Instant


class MissingStep(MissingStepCommon, total=False):
    after_service: str
    # Expectations are declared (flow definitions, admin) or learned from finished flows.
    origin: Literal["learned", "declared"]


class FlowStep(TypedDict, total=False):
    id: int
    name: str
    service: str
    at: Instant


class FlowSummary(TypedDict):
    id: int
    key: Annotated[str, described("Business key (e.g. order-1042), else the root trace id.")]
    type: Annotated[str, described("Configured flow type, else the root event's type.")]
    status: Annotated[str, choices(ShownStatus.values)]
    started_at: Instant
    last_seen_at: Instant
    services: Annotated[list[str], described("In causal order of first appearance.")]
    steps: Annotated[list[FlowStep], described("A compact summary of the flow's steps, in causal order.")]
    observation_count: int
    error_count: int
    root_trace_id: str
    stuck_after: Annotated[Instant | None, described("When the flow turns stuck if nothing more arrives.")]
    missing: Annotated[list[MissingStep], described("Expected steps not seen yet (filled when the flow is stuck).")]


class OtherFlow(TypedDict):
    id: int
    key: str


class FlowNodeCommon(TypedDict):
    id: int
    kind: Annotated[str, choices(Observation.Kind.values)]
    name: Annotated[str, described("Span name, or the CloudEvent's type.")]
    service: str
    start: Instant
    end: Instant | None
    start_ns: int
    end_ns: int | None
    duration_ms: float | None
    status: ObservationStatus
    status_message: str
    trace_id: str
    span_id: Annotated[str, described("For an event, the span that emitted it (its traceparent).")]
    event_id: str
    order: Annotated[int, described("Position in causal order: causality first, timestamps second.")]
    business_key: str
    attributes: Annotated[dict[str, Any], described("Span attributes, or CloudEvents extension attributes.")]
    shared_with: Annotated[
        list[OtherFlow],
        described("The other flows this node serves (a shared step, stored once); empty when it serves this one alone."),
    ]
    skew_ms: Annotated[
        float, described("How far this node's clock appears behind its cause's (it is drawn after it anyway); 0 if none.")
    ]


class FlowNode(FlowNodeCommon, total=False):
    # A span's:
    parent_span_id: str
    span_kind: str
    resource: dict[str, Any]
    events: Annotated[list[dict[str, Any]], described("Span events.")]
    links: Annotated[list[dict[str, Any]], described("Span links.")]
    # An event's:
    event_source: str
    data: Annotated[Any, described("The CloudEvent's data.")]
    subject: str | None
    datacontenttype: str | None


class FlowEdge(TypedDict):
    source: Annotated[int, described("The cause's node id.")]
    target: Annotated[int, described("The effect's node id.")]
    kind: Annotated[str, choices(Edge.Kind.values)]
    cross_flow: Annotated[bool, described("Always false here: both ends serve this flow (cross-flow edges are listed apart).")]


class CrossFlowEdge(TypedDict):
    source: Annotated[int, described("The cause's node id.")]
    target: Annotated[int, described("The effect's node id.")]
    kind: Annotated[str, choices(Edge.Kind.values)]
    other_flow: Annotated[OtherFlow, described("The flow at the other end, which shares no flow with this end.")]
    direction: Annotated[str, choices(["in", "out"], "in: the cause is in the other flow; out: the effect is.")]


class ClockSkew(TypedDict):
    service: Annotated[str, described("The service whose clock appears behind.")]
    behind: Annotated[str, described("The service of the cause it appears behind.")]
    skew_ms: Annotated[float, described("By how much, the largest gap seen in this flow.")]


class FlowDetail(FlowSummary):
    nodes: Annotated[list[FlowNode], described("In causal order.")]
    edges: Annotated[list[FlowEdge], described("From cause to effect.")]
    cross_flow_edges: Annotated[list[CrossFlowEdge], described("Edges to and from other flows (a different business key).")]
    clock_skew: Annotated[
        list[ClockSkew], described("Services whose clocks appear behind their causes', from this flow's edges.")
    ]


class FlowPage(TypedDict):
    results: list[FlowSummary]
    next: Annotated[str | None, described("Cursor of the next page; null on the last.")]


def serialize_flow_summary(flow: Flow, state: FlowState) -> FlowSummary:
    """A flow as it appears in lists: no nodes, just what a row needs."""
    return {
        "id": flow.id,
        "key": flow.key,
        "type": flow.type,
        "status": state.status,
        "started_at": flow.started_at.isoformat(),
        "last_seen_at": flow.last_seen_at.isoformat(),
        "services": flow.services,
        "steps": flow.steps,
        "observation_count": flow.observation_count,
        "error_count": flow.error_count,
        "root_trace_id": flow.root_trace_id,
        "stuck_after": state.stuck_after.isoformat() if state.stuck_after else None,
        "missing": state.missing,  # type: ignore[typeddict-item]  # stored as MissingStep dicts
    }


def serialize_flow_page(page: Page[Flow]) -> FlowPage:
    states = flow_states(page.rows)
    return {"results": [serialize_flow_summary(flow, states[flow.id]) for flow in page.rows], "next": page.next_cursor}


SPAN_KIND_NAMES = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def serialize_node(row: Mapping[str, Any], order: int, shared_with: Sequence[tuple[int, str]] = (), skew_ns: int = 0) -> FlowNode:
    """One observation row of ``tracing.selectors.flow_graph`` at its place in causal order."""
    start, end = row["start_ns"], row["end_ns"]
    node: FlowNode = {
        "id": row["id"],
        "kind": row["kind"],
        "name": row["name"],
        "service": row["service"],
        "start": cast(str, iso_from_ns(start)),  # start_ns is never null
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
        "attributes": row["attributes"],
        "shared_with": [{"id": flow_id, "key": key} for flow_id, key in shared_with],
        "skew_ms": round(skew_ns / 1e6, 3),
    }
    detail = row["detail"]
    if row["kind"] == Observation.Kind.SPAN:
        node["parent_span_id"] = row["parent_span_id"]
        node["span_kind"] = SPAN_KIND_NAMES.get(row["span_kind"], str(row["span_kind"]))
        node["resource"] = row["resource"]
        node["events"] = detail.get("events", [])
        node["links"] = detail.get("links", [])
    else:
        node["event_source"] = row["event_source"]
        node["data"] = detail.get("data", detail.get("data_base64"))
        node["subject"] = detail.get("subject")
        node["datacontenttype"] = detail.get("datacontenttype")
    return node


def serialize_flow_detail(flow: Flow, state: FlowState, graph: FlowGraph) -> FlowDetail:
    """The shape of ``GET /api/flows/<id>`` (and of the flow page's data): the summary, nodes in
    causal order, edges from cause to effect."""
    return {
        **serialize_flow_summary(flow, state),
        "nodes": [
            serialize_node(row, order, graph.shared_with.get(row["id"], ()), graph.skew_ns.get(row["id"], 0))
            for order, row in enumerate(graph.observations)
        ],
        "edges": [
            {"source": source, "target": target, "kind": kind, "cross_flow": False} for source, target, kind in graph.edges
        ],
        "cross_flow_edges": [
            {
                "source": edge.source,
                "target": edge.target,
                "kind": edge.kind,
                "other_flow": {"id": edge.other_flow[0], "key": edge.other_flow[1]},
                "direction": edge.direction,
            }
            for edge in graph.cross_flow_edges
        ],
        "clock_skew": [
            {"service": skew.service, "behind": skew.behind, "skew_ms": round(skew.skew_ns / 1e6, 3)}
            for skew in graph.clock_skews
        ],
    }


# --- The service map -------------------------------------------------------------------------


class TopologyNode(TypedDict):
    id: Annotated[str, described("service:<name> or type:<event type>")]
    kind: Literal["service", "event_type"]
    name: str


class TopologyEdge(TypedDict):
    source: str
    target: str
    count: Annotated[int, described("Events emitted (producer edges) or events reacted to (consumer edges).")]
    rate: Annotated[float, described("Per second over the window.")]
    p95_ms: Annotated[float | None, described("95th percentile reaction latency; null on producer edges.")]
    error_share: Annotated[float, described("Share with status error, 0..1.")]


class Topology(TypedDict):
    window: Annotated[str, choices(WINDOWS)]
    nodes: list[TopologyNode]
    edges: list[TopologyEdge]


def serialize_topology(window: str, snapshot: Mapping[str, Any]) -> Topology:
    """The map ``tracing.topology.observed_topology`` computed (already plain data) over ``window``."""
    return {"window": window, "nodes": snapshot["nodes"], "edges": snapshot["edges"]}


# --- Alerts ----------------------------------------------------------------------------------


class Alert(TypedDict):
    id: int
    state: Annotated[str, choices(AlertRow.State.values)]
    flow_id: int
    flow_key: str
    flow_type: str
    step: Annotated[str, described("The first missing step (alerts are grouped by it).")]
    service: str
    after: str
    due_at: Instant
    missing: list[MissingStep]
    opened_at: Instant
    acknowledged_at: Instant | None
    resolved_at: Instant | None


class AlertPage(TypedDict):
    results: list[Alert]
    next: Annotated[str | None, described("Cursor of the next page; null on the last.")]


def serialize_alert(alert: AlertRow) -> Alert:
    return {
        "id": alert.id,
        "state": alert.state,
        "flow_id": alert.flow_id,
        "flow_key": alert.flow_key,
        "flow_type": alert.flow_type,
        "step": alert.step,
        "service": alert.service,
        "after": alert.after,
        "due_at": alert.due_at.isoformat(),
        "missing": alert.missing,
        "opened_at": alert.opened_at.isoformat(),
        "acknowledged_at": alert.acknowledged_at.isoformat() if alert.acknowledged_at else None,
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
    }


def serialize_alert_page(page: Page[AlertRow]) -> AlertPage:
    return {"results": [serialize_alert(alert) for alert in page.rows], "next": page.next_cursor}


class AlertGroup(TypedDict):
    flow_type: str
    step: str
    service: str
    after: str
    count: Annotated[int, described("Unresolved alerts in the group.")]
    open: int
    newest_id: Annotated[int, described("The newest alert's id.")]
    acknowledged: int
    first_opened: Instant
    last_opened: Instant


class AlertGroups(TypedDict):
    results: Annotated[list[AlertGroup], described("Largest first.")]


def serialize_alert_group(group: alert_selectors.AlertGroup) -> AlertGroup:
    return {
        "flow_type": group.flow_type,
        "step": group.step,
        "service": group.service,
        "after": group.after,
        "count": group.count,
        "open": group.open,
        "newest_id": group.newest_id,
        "acknowledged": group.acknowledged,
        "first_opened": group.first_opened.isoformat(),
        "last_opened": group.last_opened.isoformat(),
    }


def serialize_alert_groups(groups: Sequence[alert_selectors.AlertGroup]) -> AlertGroups:
    return {"results": [serialize_alert_group(group) for group in groups]}


class DeclaredExpectation(TypedDict):
    after: str
    step: str
    service: str
    within_seconds: float


class LearnedFlowModel(TypedDict):
    flow_type: str
    flow_count: int
    learned_at: Instant
    graph: Annotated[
        dict[str, Any],
        described("Steps and transitions with flows, share, p50/p95/p99 seconds, expected and deadline_seconds."),
    ]
    declared: Annotated[list[DeclaredExpectation], described("Declared expectations of the same flow type (these win).")]


class LearnedFlowModels(TypedDict):
    results: list[LearnedFlowModel]


def serialize_declared_expectation(expectation: Expectation) -> DeclaredExpectation:
    return {
        "after": expectation.after.name,
        "step": expectation.step.name,
        "service": expectation.step.service,
        "within_seconds": expectation.within_seconds,
    }


def serialize_learned_model(reading: alert_selectors.LearnedModelReading) -> LearnedFlowModel:
    return {
        "flow_type": reading.flow_type,
        "flow_count": reading.flow_count,
        "learned_at": reading.learned_at.isoformat(),
        "graph": reading.graph,
        "declared": [serialize_declared_expectation(e) for e in reading.declared],
    }


def serialize_learned_models(readings: Sequence[alert_selectors.LearnedModelReading]) -> LearnedFlowModels:
    return {"results": [serialize_learned_model(reading) for reading in readings]}
