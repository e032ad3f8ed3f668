"""Every JSON shape of the API, declared once.

Each shape is a ``TypedDict``: mypy checks that its serializer below builds exactly those keys,
and ``dashboard.api.schema`` turns the same declarations into the OpenAPI document (an
``Annotated`` ``Schema(...)`` adds a description, a format or an enum; enums come from the
models' choices). The serializers are plain functions over rows and dataclasses, so the pages
and the live sockets send what the API sends.
"""

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, TypedDict, cast

from django.urls import reverse

from alerts import selectors as alert_selectors
from alerts.expectations import Expectation
from alerts.models import Alert as AlertRow
from alerts.status import FlowState, ShownStatus, flow_states
from dashboard.api.paging import Page
from tracing import health
from tracing.contracts import KINDS as DRIFT_KINDS
from tracing.contracts import DriftRow
from tracing.correlation import iso_from_ns
from tracing.interactions import STYLES, CriticalPath, ServiceTime, critical_path, edge_styles, step_of
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


class SpanLogEntry(TypedDict):
    time: Instant
    time_ns: int
    severity: Annotated[str, described("Severity text, or the severity number's name (INFO, WARN, ERROR, ...).")]
    body: Annotated[str, described("The body as text (a structured body as JSON), cut to 4,096 characters.")]
    attributes: dict[str, Any]


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
    logs: Annotated[
        list[SpanLogEntry],
        described("Plain log records the span emitted (OTLP logs without an event name), earliest first; bounded per span."),
    ]
    # An event's:
    event_source: str
    data: Annotated[Any, described("The CloudEvent's data.")]
    subject: str | None
    datacontenttype: str | None


class FlowEdge(TypedDict):
    source: Annotated[int, described("The cause's node id.")]
    target: Annotated[int, described("The effect's node id.")]
    kind: Annotated[str, choices(Edge.Kind.values)]
    style: Annotated[
        str,
        choices(STYLES, "call: request/response between two services; event: reaction to a message; internal: one service."),
    ]
    critical: Annotated[bool, described("On the flow's critical path (the path runs along this edge).")]
    cross_flow: Annotated[bool, described("Always false here: both ends serve this flow (cross-flow edges are listed apart).")]


class CriticalPathService(TypedDict):
    service: str
    self_ms: Annotated[float, described("Its own work on the critical path.")]
    waiting_ms: Annotated[float, described("Time its steps on the path waited for another service's answer (calls).")]
    queued_ms: Annotated[float, described("Time between an event and this service's reaction to it, on the path.")]
    share: Annotated[float, described("(self + queued) / the path's time, 0..1.")]


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
    critical_path: Annotated[list[int], described("The node ids of the chain that decided the flow's time, first to last.")]
    critical_path_ms: Annotated[float, described("The critical path's time: its services' self and queued time.")]
    critical_path_services: Annotated[list[CriticalPathService], described("Each service's time on the path, most first.")]
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


def serialize_span_log(row: Mapping[str, Any]) -> SpanLogEntry:
    return {
        "time": cast(str, iso_from_ns(row["time_ns"])),
        "time_ns": row["time_ns"],
        "severity": row["severity"],
        "body": row["body"],
        "attributes": row["attributes"],
    }


def serialize_node(
    row: Mapping[str, Any],
    order: int,
    logs: Sequence[Mapping[str, Any]] = (),
    shared_with: Sequence[tuple[int, str]] = (),
    skew_ns: int = 0,
) -> FlowNode:
    """One observation row of ``tracing.selectors.flow_graph`` at its place in causal order, with
    the plain log records of a span, the other flows it serves and how far its clock appears behind."""
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
        node["logs"] = [serialize_span_log(log) for log in logs]
    else:
        node["event_source"] = row["event_source"]
        node["data"] = detail.get("data", detail.get("data_base64"))
        node["subject"] = detail.get("subject")
        node["datacontenttype"] = detail.get("datacontenttype")
    return node


def serialize_flow_detail(flow: Flow, state: FlowState, graph: FlowGraph) -> FlowDetail:
    """The shape of ``GET /api/flows/<id>`` (and of the flow page's data): the summary, nodes in
    causal order, edges from cause to effect."""
    steps = [step_of(row) for row in graph.observations]
    styles = edge_styles(steps, graph.edges)
    path = critical_path(steps, graph.edges)
    links = set(path.links)
    return {
        **serialize_flow_summary(flow, state),
        "nodes": [
            serialize_node(
                row,
                order,
                graph.span_logs.get((row["trace_id"], row["span_id"]), ()),
                graph.shared_with.get(row["id"], ()),
                graph.skew_ns.get(row["id"], 0),
            )
            for order, row in enumerate(graph.observations)
        ],
        "edges": [
            {
                "source": source,
                "target": target,
                "kind": kind,
                "style": style,
                "critical": (source, target) in links,
                "cross_flow": False,
            }
            for (source, target, kind), style in zip(graph.edges, styles, strict=True)
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
        "critical_path": path.steps,
        "critical_path_ms": round(path.total_ns / 1e6, 3),
        "critical_path_services": [serialize_service_time(entry, path) for entry in path.services],
    }


def serialize_service_time(entry: ServiceTime, path: CriticalPath) -> CriticalPathService:
    return {
        "service": entry.service,
        "self_ms": round(entry.self_ns / 1e6, 3),
        "waiting_ms": round(entry.waiting_ns / 1e6, 3),
        "queued_ms": round(entry.queued_ns / 1e6, 3),
        "share": round(path.share_of(entry.service), 4),
    }


# --- The service map -------------------------------------------------------------------------


class TopologyNode(TypedDict):
    id: Annotated[str, described("service:<name> or type:<event type>")]
    kind: Literal["service", "event_type"]
    name: str


class TopologyEdge(TypedDict):
    source: str
    target: str
    style: Annotated[
        str, choices(("event", "call"), "event: producer → event type → consumer; call: calling service → called service.")
    ]
    count: Annotated[int, described("Events emitted (producer edges), events reacted to (consumer edges) or calls made.")]
    rate: Annotated[float, described("Per second over the window.")]
    p50_ms: Annotated[
        float | None,
        described(
            "Median send → process time: from the event's time to the start of the consumer's earliest reaction; "
            "for calls, the median call duration; null on producer edges."
        ),
    ]
    p95_ms: Annotated[
        float | None,
        described(
            "95th percentile send → process time (reaction latency), or call duration as the caller saw it; "
            "null on producer edges."
        ),
    ]
    error_share: Annotated[float, described("Share with status error, 0..1.")]


class TopologyLag(TypedDict):
    bus: Annotated[str, choices(("redis-stream", "rabbitmq", "nats"))]
    destination: Annotated[str, described("The watched stream or queue.")]
    consumer: Annotated[str, described("The consumer group, queue reader or durable consumer.")]
    node: Annotated[str | None, described("The service node it belongs to; null when no such service is on the map.")]
    waiting: Annotated[int, described("Messages not yet delivered to the consumer.")]
    unacknowledged: Annotated[
        int | None, described("Delivered but not yet acknowledged; null when the bus does not say (RabbitMQ over AMQP).")
    ]


class Topology(TypedDict):
    window: Annotated[str, choices(WINDOWS)]
    nodes: list[TopologyNode]
    edges: list[TopologyEdge]
    lag: Annotated[list[TopologyLag], described("How far each watched consumer is behind, now (CHOREOSCOPE_WATCH_*).")]
    lag_unavailable: Annotated[list[str], described("Watched buses that did not answer for their lag.")]


def serialize_topology(window: str, snapshot: Mapping[str, Any]) -> Topology:
    """The map ``tracing.topology.observed_topology`` computed (already plain data) over ``window``,
    with the queue lag ``dashboard.live_feed.topology_snapshot`` adds."""
    return {
        "window": window,
        "nodes": snapshot["nodes"],
        "edges": snapshot["edges"],
        "lag": snapshot["lag"],
        "lag_unavailable": snapshot["lag_unavailable"],
    }


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


# --- Declared contracts vs what runs ------------------------------------------------------------


class ContractDrift(TypedDict):
    kind: Annotated[str, choices(DRIFT_KINDS)]
    channel: Annotated[str, described("The declared channel's address ('' when no document names the message).")]
    message: Annotated[str, described("The message: the CloudEvents type.")]
    producer: Annotated[str, described("The sending service ('' when none is known).")]
    consumer: Annotated[
        str, described("The receiving service; for a schema violation, the one whose document declared the schema.")
    ]
    party: Annotated[str, described("The service at fault.")]
    count: Annotated[int, described("Events in the window (for schema violations: invalid ones among those sampled).")]
    example_flow: Annotated[int | None, described("A flow showing it, when there is one.")]


class ContractDriftPage(TypedDict):
    results: list[ContractDrift]
    next: Annotated[str | None, described("Cursor of the next page; null on the last.")]


def serialize_contract_drift(row: DriftRow) -> ContractDrift:
    return {
        "kind": row.kind,
        "channel": row.channel,
        "message": row.message,
        "producer": row.producer,
        "consumer": row.consumer,
        "party": row.party,
        "count": row.count,
        "example_flow": row.example_flow,
    }


def serialize_contract_drift_page(page: Page[DriftRow]) -> ContractDriftPage:
    return {"results": [serialize_contract_drift(row) for row in page.rows], "next": page.next_cursor}


# --- OCEL 2.0 export (the standard's JSON shape; dashboard.ocel writes it) ----------------------------


class OcelAttributeType(TypedDict):
    name: str
    type: Annotated[str, choices(("string", "integer", "float", "boolean", "time"))]


class OcelType(TypedDict):
    name: str
    attributes: list[OcelAttributeType]


class OcelRelationship(TypedDict):
    objectId: Annotated[str, described("A business key.")]
    qualifier: Annotated[str, described("key, step or shared (event to object), or follows (object to object).")]


class OcelObjectAttribute(TypedDict):
    name: str
    time: Instant
    value: Any


class OcelObject(TypedDict):
    id: Annotated[str, described("The flow's business key.")]
    type: Annotated[str, described("The key's prefix (order-1042 → order), else the flow's type.")]
    attributes: list[OcelObjectAttribute]
    relationships: list[OcelRelationship]


class OcelEventAttribute(TypedDict):
    name: str
    value: Any


class OcelEvent(TypedDict):
    id: Annotated[str, described("The observation's identity.")]
    type: Annotated[str, described("The CloudEvents type.")]
    time: Instant
    attributes: list[OcelEventAttribute]
    relationships: list[OcelRelationship]


class OcelDocument(TypedDict):
    objectTypes: list[OcelType]
    eventTypes: list[OcelType]
    objects: list[OcelObject]
    events: Annotated[list[OcelEvent], described("Business events only; spans are left out.")]


# --- Correlation health ----------------------------------------------------------------------


class HealthFinding(TypedDict):
    service: str
    kind: Annotated[str, choices(health.FINDING_KINDS)]
    severity: Annotated[str, choices(health.SEVERITIES, "fix: instrumentation to change; check: worth a look; info: how it is.")]
    what: Annotated[str, described("What is missing or unusual, in a sentence.")]
    detail: Annotated[str, described("The event type, span name, key or cause service concerned ('' when none).")]
    affected: Annotated[int, described("Observations concerned (flows, for single-observation flows).")]
    out_of: Annotated[int | None, described("Of how many (null when it does not apply).")]
    example_flow_id: Annotated[int | None, described("A flow that shows it.")]
    example_flow_url: Annotated[str | None, described("That flow's page.")]


class HealthCoverage(TypedDict):
    service: str
    observations: Annotated[int, described("Observations of the service read in the window.")]
    consumer_spans: int
    consumer_spans_pointing: Annotated[int, described("Consumer spans a link, parent or delivered message joins to their cause.")]
    consumer_share: Annotated[float | None, described("consumer_spans_pointing / consumer_spans; null without consumer spans.")]
    events: int
    events_with_traceparent: int
    traceparent_share: float | None
    reaction_events: Annotated[int, described("Events of types that do not start their flows: they need a causationid.")]
    reaction_events_with_causation: int
    causation_share: float | None
    events_with_key: int
    key_share: float | None


class HealthClockSkew(TypedDict):
    cause_service: str
    effect_service: Annotated[str, described("The service whose clock appears behind.")]
    pairs: Annotated[int, described("Observations of effect_service with a cause in cause_service.")]
    behind: Annotated[int, described("Of those, stamped before their latest such cause.")]
    median_ms: Annotated[float, described("How far before, median over those: the clock is behind by at least this.")]
    max_ms: float
    example_flow_id: int | None


class HealthReusedKey(TypedDict):
    key: str
    type: str
    service: Annotated[str, described("The flow's first service.")]
    flow_id: int
    observations: int
    span_seconds: Annotated[float, described("From the flow's first to its last observation.")]
    usual_observations: Annotated[float, described("Median over flows of the type.")]
    usual_span_seconds: float


class HealthBatching(TypedDict):
    service: str
    shared_steps: Annotated[int, described("Observations serving several keyed flows (batch work).")]
    flows_served: Annotated[int, described("Further flows those shared steps serve.")]
    cross_flow_edges: Annotated[int, described("Edges into the service's observations from another key's flow.")]
    example_flow_id: int | None


class CorrelationHealth(TypedDict):
    window: Annotated[str, choices(WINDOWS)]
    service: Annotated[str | None, described("The service the report is narrowed to, if any.")]
    since: Instant
    observations_read: Annotated[int, described("Correlated observations received in the window that were read, newest first.")]
    uncorrelated: Annotated[int, described("Observations read that correlation has not reached yet: left out of the report.")]
    sampled: Annotated[bool, described("True when the window held more observations than were read.")]
    flows_read: int
    findings: Annotated[list[HealthFinding], described("Most severe first, then most affected.")]
    coverage: list[HealthCoverage]
    clock_skew: Annotated[list[HealthClockSkew], described("Largest median first.")]
    reused_keys: list[HealthReusedKey]
    batching: list[HealthBatching]


def share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def flow_url(flow_id: int | None) -> str | None:
    return reverse("dashboard:flow", args=[flow_id]) if flow_id is not None else None


def serialize_health_finding(finding: health.Finding) -> HealthFinding:
    return {
        "service": finding.service,
        "kind": finding.kind,
        "severity": finding.severity,
        "what": finding.what,
        "detail": finding.detail,
        "affected": finding.affected,
        "out_of": finding.out_of,
        "example_flow_id": finding.example_flow_id,
        "example_flow_url": flow_url(finding.example_flow_id),
    }


def serialize_health_coverage(row: health.ServiceCoverage) -> HealthCoverage:
    return {
        "service": row.service,
        "observations": row.observations,
        "consumer_spans": row.consumer_spans,
        "consumer_spans_pointing": row.consumer_spans_pointing,
        "consumer_share": share(row.consumer_spans_pointing, row.consumer_spans),
        "events": row.events,
        "events_with_traceparent": row.events_with_traceparent,
        "traceparent_share": share(row.events_with_traceparent, row.events),
        "reaction_events": row.reaction_events,
        "reaction_events_with_causation": row.reaction_events_with_causation,
        "causation_share": share(row.reaction_events_with_causation, row.reaction_events),
        "events_with_key": row.events_with_key,
        "key_share": share(row.events_with_key, row.events),
    }


def serialize_clock_skew(row: health.ClockSkew) -> HealthClockSkew:
    return {
        "cause_service": row.cause_service,
        "effect_service": row.effect_service,
        "pairs": row.pairs,
        "behind": row.behind,
        "median_ms": round(row.median_ns / 1e6, 1),
        "max_ms": round(row.max_ns / 1e6, 1),
        "example_flow_id": row.example_flow_id,
    }


def serialize_reused_key(row: health.ReusedKey) -> HealthReusedKey:
    return {
        "key": row.key,
        "type": row.type,
        "service": row.service,
        "flow_id": row.flow_id,
        "observations": row.observations,
        "span_seconds": round(row.span_ns / 1e9, 3),
        "usual_observations": float(row.usual_observations),
        "usual_span_seconds": round(row.usual_span_ns / 1e9, 3),
    }


def serialize_batching(row: health.Batching) -> HealthBatching:
    return {
        "service": row.service,
        "shared_steps": row.shared_steps,
        "flows_served": row.flows_served,
        "cross_flow_edges": row.cross_flow_edges,
        "example_flow_id": row.example_flow_id,
    }


def serialize_correlation_health(
    window: str, service: str | None, since: datetime, report: health.HealthReport
) -> CorrelationHealth:
    """The report ``tracing.health.correlation_health`` computed over ``window``."""
    return {
        "window": window,
        "service": service,
        "since": since.isoformat(),
        "observations_read": report.observations_read,
        "uncorrelated": report.uncorrelated,
        "sampled": report.sampled,
        "flows_read": report.flows_read,
        "findings": [serialize_health_finding(row) for row in report.findings],
        "coverage": [serialize_health_coverage(row) for row in report.coverage],
        "clock_skew": [serialize_clock_skew(row) for row in report.clock_skew],
        "reused_keys": [serialize_reused_key(row) for row in report.reused_keys],
        "batching": [serialize_batching(row) for row in report.batching],
    }
