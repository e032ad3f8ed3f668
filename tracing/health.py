"""Correlation health: what each service's instrumentation lacks for its flows to come out whole,
over a window.

``health_report`` is a pure function over plain rows (``HealthInput``); ``read_health_input``
reads those rows for a window: the newest observations received in it (a bounded sample, newest
first, through the ``obs_received`` index), the edges into and out of them (by id, through the
edges' target and unique indexes), the flows they belong to, and the shared steps among them.
Observations that correlation has not reached yet are counted and left out: their keys and
edges are not known. Two reads depend on the batch-aware correlation's tables (shared steps and
cross-flow edges); each sits in one function that answers "none" where they do not exist.

What it finds, per service:
- consumer spans that point at their producer (a link, a parent, a delivered message id that
  resolved into an edge), those that point at a producer never seen, and those that point at nothing;
- events with a ``traceparent``, with a ``causationid`` (only reactions need one: a type that starts
  most of the flows it appears in is a root), with a business key;
- producers whose messages nobody was seen consuming;
- flows of a single observation, and observations that joined no keyed flow;
- shared steps and cross-flow edges: how much of its work is batched across flows;
- clock skew per (cause service, effect service), from cause → effect pairs whose effect is
  stamped before its cause: the effect's clock is behind by at least that much;
- keys that look reused: a flow with far more observations, or a far longer time span, than the
  usual flow of its type.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from tracing.correlation import attribute_text, link_contexts, messaging_side
from tracing.records import SPAN_KIND_CONSUMER, SPAN_KIND_PRODUCER
from tracing.topology import WINDOWS

DEFAULT_WINDOW = "1h"
# The newest observations of a window that are read (and the flows they belong to): a 24 h window
# on a busy installation answers in bounded time, and the report says when it is a sample.
OBSERVATION_LIMIT = 20_000
# A key looks reused when its flow is this many times bigger, or longer, than its type's median
# flow (and by at least the floors below), among at least REUSE_BASELINE_FLOWS flows of the type.
REUSE_FACTOR = 10
REUSE_BASELINE_FLOWS = 5
REUSE_MIN_EXTRA_OBSERVATIONS = 20
REUSE_MIN_EXTRA_NS = 60 * 1_000_000_000
# A service pair's skew is reported when at least this share of its pairs run backwards, by a
# median of at least SKEW_MIN_NS: below that, it is scheduling jitter, not a clock.
SKEW_MIN_SHARE = 0.05
SKEW_MIN_NS = 1_000_000
# A type is a root (its events need no causationid) when it is the first step of at least this
# share of the flows it appears in.
ROOT_SHARE = 0.5

FIX, CHECK, INFO = "fix", "check", "info"
SEVERITIES = (FIX, CHECK, INFO)
# Each kind of finding, with its severity and the sentence that names what is missing.
FINDINGS: dict[str, tuple[str, str]] = {
    "consumer_points_at_nothing": (FIX, "consumer spans with no link, parent or message id: nothing ties them to a producer"),
    "consumer_producer_unseen": (CHECK, "consumer spans pointing at a producer that was never received"),
    "event_without_traceparent": (FIX, "events without a traceparent: the span that emitted them is unknown"),
    "event_without_causation": (FIX, "reaction events without a causationid: the event they react to is unknown"),
    "event_without_key": (FIX, "events without a business key (correlationid or a configured key path)"),
    "reused_key": (FIX, "a business key that looks reused across unrelated transactions"),
    "message_partly_unconsumed": (CHECK, "messages nobody was seen consuming, while others of the same type were"),
    "single_observation_flow": (CHECK, "flows of a single observation: nothing joined them to anything else"),
    "unkeyed_observation": (CHECK, "observations that joined no keyed flow"),
    "clock_behind": (CHECK, "a clock that appears to run behind: effects stamped before their causes"),
    "message_never_consumed": (INFO, "messages of a type nobody was seen consuming (no subscriber, or an uninstrumented one)"),
    "shared_step": (INFO, "shared steps: batch work that serves several keyed flows"),
    "cross_flow_edge": (INFO, "cross-flow edges: observations of their own key caused by another key's flow"),
}
FINDING_KINDS = tuple(FINDINGS)


def parse_window(raw: str | None) -> tuple[str, int]:
    """``"1h"`` → ``("1h", 3600)``, the default when absent; ``ValueError`` with the accepted values otherwise."""
    name = raw or DEFAULT_WINDOW
    if name not in WINDOWS:
        raise ValueError(f"window must be one of {', '.join(WINDOWS)}; got {name[:40]!r}.")
    return name, WINDOWS[name]


# --- Plain rows in ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SampledObservation:
    id: int
    kind: str  # "span" | "event"
    service: str
    name: str
    flow_id: int | None
    start_ns: int
    span_kind: int = 0
    parent_span_id: str = ""
    trace_id: str = ""
    span_id: str = ""
    business_key: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)
    side: str = field(init=False)  # "producer", "consumer" or "": which end of a message a span stands at

    def __post_init__(self) -> None:
        object.__setattr__(self, "side", message_end(self.kind, self.span_kind, self.attributes))


def message_end(kind: str, span_kind: int, attributes: Mapping[str, Any]) -> str:
    """``producer`` or ``consumer`` for a messaging span (by its kind or its operation), else ``""``."""
    if kind != "span":
        return ""
    operation = attributes.get("messaging.operation.type") or attributes.get("messaging.operation")
    if span_kind not in (SPAN_KIND_PRODUCER, SPAN_KIND_CONSUMER) and not attribute_text(operation):
        return ""
    return messaging_side(span_kind, attributes)


@dataclass(frozen=True, slots=True)
class SampledEdge:
    source_id: int
    target_id: int
    kind: str
    source_service: str
    target_service: str
    source_start_ns: int
    target_start_ns: int
    flow_id: int | None = None
    cross_flow: bool = False


@dataclass(frozen=True, slots=True)
class SampledFlow:
    id: int
    key: str
    type: str
    services: Sequence[str]
    observation_count: int
    started_ns: int
    last_seen_ns: int
    keyed: bool
    step_names: Sequence[str] = ()


@dataclass(frozen=True)
class HealthInput:
    observations: Sequence[SampledObservation]  # newest first
    incoming: Sequence[SampledEdge] = ()  # edges whose effect is a sampled observation
    outgoing: Sequence[SampledEdge] = ()  # edges whose cause is a sampled observation
    flows: Sequence[SampledFlow] = ()
    unkeyed_flow_ids: frozenset[int] = frozenset()
    shared_steps: Sequence[tuple[int, int]] = ()  # (observation id, a further flow it serves)
    pointing: frozenset[int] = frozenset()  # consumer spans without an edge that still carry a reference
    sampled: bool = False  # the window held more observations than were read


def has_reference(parent_span_id: str, attributes: Mapping[str, Any], detail: Mapping[str, Any]) -> bool:
    """Whether a consumer span says where its message came from: a parent, a link, or the id
    of the message or event it was delivered."""
    if parent_span_id or link_contexts(detail):
        return True
    return any(attribute_text(attributes.get(name)) for name in ("messaging.message.id", "cloudevents.event_id"))


# --- Plain rows out --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    service: str
    kind: str
    affected: int  # observations (flows, for flow-level findings) it concerns
    out_of: int | None = None  # of how many
    example_flow_id: int | None = None
    detail: str = ""  # the type, span name, key or service pair concerned

    @property
    def severity(self) -> str:
        return FINDINGS[self.kind][0]

    @property
    def what(self) -> str:
        return FINDINGS[self.kind][1]


@dataclass(frozen=True, slots=True)
class ServiceCoverage:
    service: str
    observations: int = 0
    consumer_spans: int = 0
    consumer_spans_pointing: int = 0
    events: int = 0
    events_with_traceparent: int = 0
    reaction_events: int = 0
    reaction_events_with_causation: int = 0
    events_with_key: int = 0


@dataclass(frozen=True, slots=True)
class ClockSkew:
    cause_service: str
    effect_service: str
    pairs: int  # effects with a cause in the other service
    behind: int  # of those, stamped before their latest such cause
    median_ns: int  # of how far behind, over those
    max_ns: int
    example_flow_id: int | None


@dataclass(frozen=True, slots=True)
class ReusedKey:
    key: str
    type: str
    service: str
    flow_id: int
    observations: int
    span_ns: int
    usual_observations: float
    usual_span_ns: int


@dataclass(frozen=True, slots=True)
class Batching:
    service: str
    shared_steps: int  # observations serving more than one flow
    flows_served: int  # further flows they serve
    cross_flow_edges: int  # edges into this service's observations from another key's flow
    example_flow_id: int | None


@dataclass(frozen=True)
class HealthReport:
    observations_read: int  # correlated ones, which the report is about
    uncorrelated: int  # read, but not reached by correlation yet: left out
    sampled: bool
    flows_read: int
    coverage: list[ServiceCoverage]
    findings: list[Finding]
    clock_skew: list[ClockSkew]
    reused_keys: list[ReusedKey]
    batching: list[Batching]


# --- The pure core ---------------------------------------------------------------------------


class _Tally:
    """Affected observations of one (service, kind, detail) finding, with the newest example."""

    def __init__(self) -> None:
        self.affected: Counter[tuple[str, str, str]] = Counter()
        self.out_of: dict[tuple[str, str, str], int] = {}
        self.example: dict[tuple[str, str, str], int] = {}

    def add(self, service: str, kind: str, flow_id: int | None, detail: str = "") -> None:
        key = (service, kind, detail)
        self.affected[key] += 1
        if flow_id is not None:
            self.example.setdefault(key, flow_id)

    def findings(self) -> list[Finding]:
        return [
            Finding(service, kind, count, self.out_of.get(key), self.example.get(key), detail)
            for key, count in self.affected.items()
            for service, kind, detail in [key]
        ]


def root_types(flows: Iterable[SampledFlow]) -> set[str]:
    """Event types that start at least ``ROOT_SHARE`` of the flows they appear in."""
    first: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    for flow in flows:
        names = list(dict.fromkeys(flow.step_names))
        seen.update(names)
        if names:
            first[names[0]] += 1
    return {name for name, count in seen.items() if first[name] >= ROOT_SHARE * count}


def coverage_and_instrumentation(data: HealthInput, roots: set[str]) -> tuple[list[ServiceCoverage], list[Finding]]:
    """Per service: consumer spans that point at their producer, events with traceparent,
    causationid and key; and what each lacks, as findings."""
    with_cause = {edge.target_id for edge in data.incoming if edge.source_id != edge.target_id}
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    tally = _Tally()
    for obs in data.observations:
        count = counts[obs.service]
        count["observations"] += 1
        if obs.side == "consumer":
            count["consumer_spans"] += 1
            if obs.id in with_cause:
                count["consumer_spans_pointing"] += 1
            elif obs.id in data.pointing:
                tally.add(obs.service, "consumer_producer_unseen", obs.flow_id, obs.name)
            else:
                tally.add(obs.service, "consumer_points_at_nothing", obs.flow_id, obs.name)
        if obs.kind != "event":
            continue
        count["events"] += 1
        if obs.trace_id and obs.span_id:
            count["events_with_traceparent"] += 1
        else:
            tally.add(obs.service, "event_without_traceparent", obs.flow_id, obs.name)
        if obs.business_key:
            count["events_with_key"] += 1
        else:
            tally.add(obs.service, "event_without_key", obs.flow_id, obs.name)
        if obs.name not in roots:
            count["reaction_events"] += 1
            if attribute_text(obs.attributes.get("causationid")):
                count["reaction_events_with_causation"] += 1
            else:
                tally.add(obs.service, "event_without_causation", obs.flow_id, obs.name)
    coverage = [ServiceCoverage(service, **count) for service, count in sorted(counts.items())]
    by_service = {row.service: row for row in coverage}
    denominators = {
        "consumer_points_at_nothing": "consumer_spans",
        "consumer_producer_unseen": "consumer_spans",
        "event_without_traceparent": "events",
        "event_without_key": "events",
        "event_without_causation": "reaction_events",
    }
    for service, kind, detail in tally.affected:
        tally.out_of[(service, kind, detail)] = getattr(by_service[service], denominators[kind])
    return coverage, tally.findings()


CONSUMING_EDGES = frozenset({"delivers", "follows_from", "caused_by"})


def consumes(edge: SampledEdge) -> bool:
    """Whether an edge out of a message says someone took it up (a child span of the producer in
    its own service is still the producer's work)."""
    return edge.kind in CONSUMING_EDGES or (edge.kind == "child_of" and edge.source_service != edge.target_service)


Message = tuple[SampledObservation, bool, set[int]]  # a message, whether it was consumed, the spans that emitted it


def messages_consumed(observations: Iterable[SampledObservation], edges: Iterable[SampledEdge]) -> list[Message]:
    """Each message among ``observations`` with whether ``edges`` show it consumed, and the
    spans that emitted it. A message is an event, or a producer span that emitted no event (its
    event stands for it); it is consumed when it, or the span that emitted it, was delivered,
    linked to or caused something (the same service reading its own topic counts), or is the
    propagated parent of another service's span."""
    edges = list(edges)
    consumed = {edge.source_id for edge in edges if consumes(edge)}
    # An ``emitted_by`` edge always runs from a span to the event it emitted.
    emitters: dict[int, set[int]] = defaultdict(set)
    for edge in edges:
        if edge.kind == "emitted_by":
            emitters[edge.target_id].add(edge.source_id)
    emitting_spans = {span for spans in emitters.values() for span in spans}
    messages: list[Message] = []
    for obs in observations:
        if obs.kind == "event":
            messages.append((obs, obs.id in consumed or bool(emitters[obs.id] & consumed), emitters[obs.id]))
        elif obs.side == "producer" and obs.id not in emitting_spans:
            messages.append((obs, obs.id in consumed, set()))
    return messages


def unconsumed_messages(data: HealthInput) -> list[Finding]:
    """Producers whose messages nobody was seen consuming (``messages_consumed``), per type."""
    groups: dict[tuple[str, str], list[tuple[SampledObservation, bool]]] = defaultdict(list)
    for obs, was_consumed, _ in messages_consumed(data.observations, [*data.incoming, *data.outgoing]):
        groups[(obs.service, obs.name)].append((obs, was_consumed))
    findings = []
    for (service, name), messages in sorted(groups.items()):
        left = [obs for obs, was_consumed in messages if not was_consumed]
        if not left:
            continue
        kind = "message_never_consumed" if len(left) == len(messages) else "message_partly_unconsumed"
        example = next((obs.flow_id for obs in left if obs.flow_id is not None), None)
        findings.append(Finding(service, kind, len(left), len(messages), example, name))
    return findings


def flow_findings(data: HealthInput) -> list[Finding]:
    """Flows of a single observation, and observations that joined no keyed flow."""
    tally = _Tally()
    for flow in data.flows:
        if flow.observation_count == 1:
            tally.add(flow.services[0] if flow.services else "", "single_observation_flow", flow.id)
    totals: Counter[str] = Counter()
    for obs in data.observations:
        if obs.flow_id is None:
            continue
        totals[obs.service] += 1
        if obs.flow_id in data.unkeyed_flow_ids:
            tally.add(obs.service, "unkeyed_observation", obs.flow_id)
    flows_by_service = Counter(flow.services[0] if flow.services else "" for flow in data.flows)
    for service, kind, detail in tally.affected:
        total = flows_by_service[service] if kind == "single_observation_flow" else totals[service]
        tally.out_of[(service, kind, detail)] = total
    return tally.findings()


def clock_skews(edges: Iterable[SampledEdge]) -> list[ClockSkew]:
    """Per (cause service, effect service): of the effects with a cause in the other service,
    those stamped before their latest such cause, and by how much (median and max). An effect
    cannot precede its cause, so the effect's clock is behind the cause's by at least that much."""
    latest: dict[tuple[str, str, int], SampledEdge] = {}  # one effect's latest cause in the other service
    for edge in edges:
        if edge.source_service != edge.target_service:
            key = (edge.source_service, edge.target_service, edge.target_id)
            if key not in latest or edge.source_start_ns > latest[key].source_start_ns:
                latest[key] = edge
    pairs: dict[tuple[str, str], list[SampledEdge]] = defaultdict(list)
    for (cause, effect, _), edge in latest.items():
        pairs[(cause, effect)].append(edge)
    skews = []
    for (cause, effect), group in pairs.items():
        behind = [edge for edge in group if edge.target_start_ns < edge.source_start_ns]
        if not behind:
            continue
        gaps = [edge.source_start_ns - edge.target_start_ns for edge in behind]
        worst = max(behind, key=lambda edge: edge.source_start_ns - edge.target_start_ns)
        median = int(statistics.median(gaps))
        skews.append(ClockSkew(cause, effect, len(group), len(behind), median, max(gaps), worst.flow_id))
    return sorted(skews, key=lambda skew: (-skew.median_ns, skew.cause_service, skew.effect_service))


def skew_findings(skews: Iterable[ClockSkew]) -> list[Finding]:
    return [
        Finding(skew.effect_service, "clock_behind", skew.behind, skew.pairs, skew.example_flow_id, skew.cause_service)
        for skew in skews
        if skew.behind >= SKEW_MIN_SHARE * skew.pairs and skew.median_ns >= SKEW_MIN_NS
    ]


def reused_keys(flows: Iterable[SampledFlow]) -> list[ReusedKey]:
    """Keyed flows far bigger or far longer than the median flow of their type."""
    by_type: dict[str, list[SampledFlow]] = defaultdict(list)
    for flow in flows:
        if flow.keyed:
            by_type[flow.type].append(flow)
    found = []
    for flow_type, group in by_type.items():
        if len(group) < REUSE_BASELINE_FLOWS:
            continue
        usual_count = statistics.median(flow.observation_count for flow in group)
        usual_span = int(statistics.median(flow.last_seen_ns - flow.started_ns for flow in group))
        for flow in group:
            span = flow.last_seen_ns - flow.started_ns
            bigger = flow.observation_count >= max(REUSE_FACTOR * usual_count, usual_count + REUSE_MIN_EXTRA_OBSERVATIONS)
            longer = span >= max(REUSE_FACTOR * usual_span, usual_span + REUSE_MIN_EXTRA_NS)
            if bigger or longer:
                service = flow.services[0] if flow.services else ""
                count = flow.observation_count
                found.append(ReusedKey(flow.key, flow_type, service, flow.id, count, span, usual_count, usual_span))
    return sorted(found, key=lambda reused: (-reused.observations, -reused.span_ns, reused.key))


def batching(data: HealthInput) -> list[Batching]:
    """Per service: its observations that serve several flows, and cross-flow edges into them."""
    service_of = {obs.id: obs.service for obs in data.observations}
    steps: dict[str, set[int]] = defaultdict(set)
    served: Counter[str] = Counter()
    example: dict[str, int] = {}
    for observation_id, flow_id in data.shared_steps:
        service = service_of.get(observation_id)
        if service is None:
            continue
        steps[service].add(observation_id)
        served[service] += 1
        example.setdefault(service, flow_id)
    crossing: Counter[str] = Counter()
    for edge in data.incoming:
        if edge.cross_flow:
            crossing[edge.target_service] += 1
            if edge.flow_id is not None:
                example.setdefault(edge.target_service, edge.flow_id)
    services = sorted(set(steps) | set(crossing))
    return [
        Batching(service, len(steps[service]), served[service], crossing[service], example.get(service)) for service in services
    ]


def batching_findings(rows: Iterable[Batching]) -> list[Finding]:
    findings = []
    for row in rows:
        if row.shared_steps:
            findings.append(Finding(row.service, "shared_step", row.shared_steps, None, row.example_flow_id))
        if row.cross_flow_edges:
            findings.append(Finding(row.service, "cross_flow_edge", row.cross_flow_edges, None, row.example_flow_id))
    return findings


def reused_key_findings(reused: Iterable[ReusedKey]) -> list[Finding]:
    return [Finding(row.service, "reused_key", row.observations, None, row.flow_id, row.key) for row in reused]


def severity_order(finding: Finding) -> tuple[int, int, str, str, str]:
    return (SEVERITIES.index(finding.severity), -finding.affected, finding.service, finding.kind, finding.detail)


def health_report(data: HealthInput) -> HealthReport:
    """Everything the correlation-health page and ``GET /api/correlation-health`` show."""
    correlated = [obs for obs in data.observations if obs.flow_id is not None]
    pending = len(data.observations) - len(correlated)
    data = replace(data, observations=correlated)
    coverage, findings = coverage_and_instrumentation(data, root_types(data.flows))
    skews = clock_skews(data.incoming)
    reused = reused_keys(data.flows)
    batched = batching(data)
    findings += unconsumed_messages(data) + flow_findings(data) + skew_findings(skews)
    findings += reused_key_findings(reused) + batching_findings(batched)
    return HealthReport(
        observations_read=len(data.observations),
        uncorrelated=pending,
        sampled=data.sampled,
        flows_read=len(data.flows),
        coverage=coverage,
        findings=sorted(findings, key=severity_order),
        clock_skew=skews,
        reused_keys=reused,
        batching=batched,
    )


# --- Reading the rows ------------------------------------------------------------------------


def _rows(queryset: Any) -> list[tuple[Any, ...]]:
    """A ``values_list`` queryset's rows as the database driver returns them: for the tens of
    thousands of rows of a window, the ORM's per-value conversions cost twice the query. On
    PostgreSQL the parameters (an array of thousands of ids) are bound on the server, not
    quoted into the statement."""
    from django.db import connection

    from tracing.bulk import server_cursor

    sql, params = queryset.query.sql_with_params()
    with server_cursor() if connection.vendor == "postgresql" else connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _since(window_seconds: int, now: datetime | None) -> datetime:
    from django.utils import timezone

    return (now or timezone.now()) - timedelta(seconds=window_seconds)


def _ns(instant: datetime) -> int:
    return int(instant.timestamp()) * 1_000_000_000 + instant.microsecond * 1000


def _sampled_observations(since: datetime, limit: int) -> tuple[list[SampledObservation], dict[int, tuple[str, str]]]:
    """The newest observations received since ``since`` and, per flow, its (key, root trace)."""
    import orjson
    from django.db.models import TextField
    from django.db.models.functions import Cast

    from tracing.models import Observation

    rows = _rows(
        # Newest first by the ``obs_received`` index alone (a second sort key would sort the whole window).
        Observation.objects.filter(received_at__gte=since)
        .order_by("-received_at")
        .values_list(
            "id",
            "kind",
            "service",
            "name",
            "flow_id",
            "start_ns",
            "span_kind",
            "parent_span_id",
            "trace_id",
            "span_id",
            "business_key",
            Cast("attributes", TextField()),
            "flow__key",
            "flow__root_trace_id",
        )[:limit]
    )
    observations, flows = [], {}
    for row in rows:
        (obs_id, kind, service, name, flow_id, start, span_kind, parent, trace, span, key, attributes, flow_key, root) = row
        parsed = orjson.loads(attributes) if attributes else {}
        parsed = parsed if isinstance(parsed, dict) else {}
        identity = (obs_id, kind, service, name, flow_id, start)
        observations.append(SampledObservation(*identity, span_kind, parent, trace, span, key, parsed))
        if flow_id is not None:
            flows[flow_id] = (flow_key, root)
    return observations, flows


def _edges(ids: Sequence[int], end: str, ends: dict[int, tuple[str, int]]) -> list[SampledEdge]:
    """Edges whose ``end`` (``source`` or ``target``) is one of ``ids``. ``ends`` holds the
    (service, start) of observations already read; the other ends are read by id, without a
    join (nearly every edge of a window has both ends in it)."""
    from tracing.bulk import chunks
    from tracing.models import Edge, Observation

    rows = []
    for part in chunks(ids):
        found = Edge.objects.filter(**{f"{end}_id__any": list(part)})
        rows += _rows(found.values_list("source_id", "target_id", "kind", "flow_id", "cross_flow"))
    missing = sorted({row[i] for row in rows for i in (0, 1)} - ends.keys())
    for part in chunks(missing):
        for obs_id, service, start in Observation.objects.filter(id__any=list(part)).values_list("id", "service", "start_ns"):
            ends[obs_id] = (service, start)
    edges = []
    for source, target, kind, flow_id, cross in rows:
        if source in ends and target in ends:
            (cause_service, cause_start), (effect_service, effect_start) = ends[source], ends[target]
            ends_of = (cause_service, effect_service, cause_start, effect_start)
            edges.append(SampledEdge(source, target, kind, *ends_of, flow_id=flow_id, cross_flow=bool(cross)))
    return edges


def shared_step_rows(observation_ids: Sequence[int]) -> list[tuple[int, int]]:
    """(observation, further flow it serves) for these observations' shared steps."""
    from tracing.bulk import chunks
    from tracing.models import SharedStep

    rows: list[tuple[int, int]] = []
    for part in chunks(observation_ids):
        rows += SharedStep.objects.filter(observation_id__any=list(part)).values_list("observation_id", "flow_id")
    return rows


def _still_pointing(consumers: Sequence[int]) -> frozenset[int]:
    """Of these consumer spans (which no edge reaches), those that carry a reference anyway."""
    import orjson
    from django.db.models import TextField
    from django.db.models.functions import Cast

    from tracing.bulk import chunks
    from tracing.models import Observation

    found = set()
    for part in chunks(consumers):
        rows = Observation.objects.filter(id__any=list(part)).values_list(
            "id", "parent_span_id", Cast("attributes", TextField()), Cast("detail", TextField())
        )
        for observation_id, parent, attributes, detail in rows:
            parsed_attributes, parsed_detail = orjson.loads(attributes or "{}"), orjson.loads(detail or "{}")
            if not isinstance(parsed_attributes, dict) or not isinstance(parsed_detail, dict):
                continue
            if has_reference(parent, parsed_attributes, parsed_detail):
                found.add(observation_id)
    return frozenset(found)


def _flows(flow_ids: Sequence[int]) -> list[SampledFlow]:
    """These flows (those the sampled observations belong to), as ``SampledFlow`` rows."""
    from tracing.bulk import chunks
    from tracing.models import Flow

    fields = ("id", "key", "type", "services", "observation_count", "started_at", "last_seen_at", "root_trace_id", "steps")
    flows = []
    for part in chunks(flow_ids):
        for flow_id, key, flow_type, services, count, started, last_seen, root_trace, steps in Flow.objects.filter(
            id__any=list(part), merged_into__isnull=True
        ).values_list(*fields):
            names = [str(step.get("name", "")) for step in steps or [] if isinstance(step, dict)]
            keyed = not root_trace or key != root_trace
            services = [str(name) for name in services] if isinstance(services, list) else []
            flows.append(SampledFlow(flow_id, key, flow_type, services, count, _ns(started), _ns(last_seen), keyed, names))
    return sorted(flows, key=lambda flow: -flow.id)


def _unkeyed(flows: Mapping[int, tuple[str, str]]) -> frozenset[int]:
    """Of these flows (id → key, root trace), those no business key names. A flow's key is its
    business key when it has one, else its root trace id; a flow without a trace (events only)
    is keyed when one of its observations carries a key."""
    from tracing.bulk import chunks
    from tracing.models import Observation

    unkeyed = {flow_id for flow_id, (key, root) in flows.items() if root and key == root}
    traceless = [flow_id for flow_id, (_, root) in flows.items() if not root]
    keyed: set[int] = set()
    for part in chunks(traceless):
        found = Observation.objects.filter(flow_id__any=list(part)).exclude(business_key="").values_list("flow_id", flat=True)
        keyed.update(found.distinct())
    return frozenset(unkeyed | (set(traceless) - keyed))


def read_health_input(window_seconds: int, now: datetime | None = None) -> HealthInput:
    """The rows ``health_report`` needs for the last ``window_seconds``."""
    since = _since(window_seconds, now)
    observations, flows_of_sample = _sampled_observations(since, OBSERVATION_LIMIT + 1)
    sampled = len(observations) > OBSERVATION_LIMIT
    observations = observations[:OBSERVATION_LIMIT]
    ids = [obs.id for obs in observations]
    ends = {obs.id: (obs.service, obs.start_ns) for obs in observations}
    incoming = _edges(ids, "target", ends)
    # What a message caused is received after it, so nearly always among the edges into the
    # sample; only the messages (and their emitting spans) those leave unconsumed are looked up.
    waiting = [(obs.id, *spans) for obs, consumed, spans in messages_consumed(observations, incoming) if not consumed]
    outgoing = _edges(sorted({obs_id for ids_of in waiting for obs_id in ids_of}), "source", ends)
    reached = {edge.target_id for edge in incoming}
    unreached = [obs.id for obs in observations if obs.side == "consumer" and obs.id not in reached]
    return HealthInput(
        observations=observations,
        incoming=incoming,
        outgoing=outgoing,
        flows=_flows(list(flows_of_sample)),
        unkeyed_flow_ids=_unkeyed(flows_of_sample),
        shared_steps=shared_step_rows(ids),
        pointing=_still_pointing(unreached),
        sampled=sampled,
    )


def correlation_health(window_seconds: int, now: datetime | None = None) -> HealthReport:
    return health_report(read_health_input(window_seconds, now))


def only_service(report: HealthReport, service: str) -> HealthReport:
    """The report narrowed to one service: its rows, and the clock pairs it is an end of."""
    return HealthReport(
        observations_read=report.observations_read,
        uncorrelated=report.uncorrelated,
        sampled=report.sampled,
        flows_read=report.flows_read,
        coverage=[row for row in report.coverage if row.service == service],
        findings=[row for row in report.findings if row.service == service],
        clock_skew=[row for row in report.clock_skew if service in (row.cause_service, row.effect_service)],
        reused_keys=[row for row in report.reused_keys if row.service == service],
        batching=[row for row in report.batching if row.service == service],
    )
