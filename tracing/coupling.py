"""How coupled each flow type is, from a sample of its recent flows: how services reach each
other (calls or events), how deep the synchronous chains go, who sits on the critical path, and
which service every flow waits on synchronously (a single point of failure).

``coupling_by_type`` is pure (over ``FlowSample``s); ``recent_flow_samples`` reads a bounded
sample of the newest flows active in a window.

A *step* here is the entry of a flow into a service: an observation caused from another service
and not from one of its own service's (a consumer span, the SERVER span of a call, an event whose
emitting span is unknown). It is reached by a ``call`` or by an ``event`` (``tracing.interactions``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from tracing.interactions import CriticalPath, Step, critical_path, interaction_style, step_of

SAMPLE_FLOWS = 300  # flows read per page view, newest first
# Spans are exported in batches, seconds apart: a flow heard from within this long may still be
# missing its calls, and would make "every flow waits on it" false for no reason.
SETTLE_SECONDS = 10
EXAMPLES = 3


@dataclass(frozen=True)
class FlowSample:
    id: int
    key: str
    type: str
    steps: Sequence[Step]  # in causal order
    edges: Sequence[tuple[int, int, str]]


@dataclass(frozen=True)
class FlowRef:
    id: int
    key: str


@dataclass(frozen=True)
class FlowShape:
    """One flow's coupling figures."""

    calls: int  # steps reached by a call
    events: int  # steps reached by an event
    chain: list[str]  # the services of its deepest synchronous chain, caller first
    callees: set[str]  # services entered by a call
    path: CriticalPath
    path_services: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class CriticalService:
    service: str
    flows: int  # flows with the service on their critical path
    flow_share: float  # of the type's sampled flows
    time_share: float  # its mean share of the critical path's time, over those flows
    examples: list[FlowRef]


@dataclass(frozen=True)
class TypeCoupling:
    flow_type: str
    flows: int
    call_steps: int
    event_steps: int
    deepest_chain: list[str]
    deepest_chain_example: FlowRef | None
    critical_services: list[CriticalService]
    single_points: list[tuple[str, list[FlowRef]]]  # (service, example flows)

    @property
    def call_share(self) -> float:
        reached = self.call_steps + self.event_steps
        return self.call_steps / reached if reached else 0.0

    @property
    def event_share(self) -> float:
        reached = self.call_steps + self.event_steps
        return self.event_steps / reached if reached else 0.0

    @property
    def chain_depth(self) -> int:
        """Calls in the deepest chain: checkout → payment → bank is 2."""
        return max(len(self.deepest_chain) - 1, 0)


def entry_styles(steps: Sequence[Step], edges: Iterable[tuple[int, int, str]]) -> dict[int, str]:
    """For each step that is a flow's entry into a service, how it was reached: call or event."""
    by_id = {step.id: step for step in steps}
    incoming: dict[int, set[str]] = defaultdict(set)
    for source, target, kind in edges:
        if source in by_id and target in by_id and source != target:
            incoming[target].add(interaction_style(by_id[source], by_id[target], kind))
    return {
        node: "call" if "call" in styles else "event"
        for node, styles in incoming.items()
        if "internal" not in styles and styles & {"call", "event"}
    }


def deepest_synchronous_chain(steps: Sequence[Step], edges: Iterable[tuple[int, int, str]]) -> list[str]:
    """The services of the longest chain of calls (following calls, and parent/child spans within
    a service between them), caller first; one service when nothing is called."""
    by_id = {step.id: step for step in steps}
    onward: dict[int, list[tuple[int, int]]] = defaultdict(list)  # node → (effect, calls it adds)
    for source, target, kind in edges:
        if kind != "child_of" or source not in by_id or target not in by_id:
            continue
        style = interaction_style(by_id[source], by_id[target], kind)
        if style != "event":
            onward[source].append((target, 1 if style == "call" else 0))
    depth: dict[int, int] = {}
    best_next: dict[int, int] = {}
    # Effects come after their causes in causal order, so walking it backwards sees them first.
    for step in reversed(steps):
        depth[step.id] = 0
        for target, calls in onward[step.id]:
            reached = depth.get(target, 0) + calls
            if reached > depth[step.id]:
                depth[step.id], best_next[step.id] = reached, target
    if not steps:
        return []
    node: int | None = max(steps, key=lambda s: depth[s.id]).id
    chain: list[str] = []
    seen: set[int] = set()
    while node is not None and node not in seen:
        seen.add(node)
        service = by_id[node].service
        if not chain or chain[-1] != service:
            chain.append(service)
        node = best_next.get(node)
    return chain


def flow_shape(sample: FlowSample) -> FlowShape:
    entries = entry_styles(sample.steps, sample.edges)
    by_id = {step.id: step for step in sample.steps}
    path = critical_path(sample.steps, sample.edges)
    styles = Counter(entries.values())
    return FlowShape(
        calls=styles["call"],
        events=styles["event"],
        chain=deepest_synchronous_chain(sample.steps, sample.edges),
        callees={by_id[node].service for node, style in entries.items() if style == "call"},
        path=path,
        path_services={entry.service for entry in path.services},
    )


def type_coupling(flow_type: str, samples: Sequence[FlowSample]) -> TypeCoupling:
    shapes = [(sample, flow_shape(sample)) for sample in samples]
    deepest = max(shapes, key=lambda pair: len(pair[1].chain), default=None)
    on_path: dict[str, list[tuple[float, FlowSample]]] = defaultdict(list)
    for sample, shape in shapes:
        for service in shape.path_services:
            on_path[service].append((shape.path.share_of(service), sample))
    critical = [
        CriticalService(
            service=service,
            flows=len(entries),
            flow_share=len(entries) / len(samples),
            time_share=sum(share for share, _ in entries) / len(entries),
            examples=[FlowRef(s.id, s.key) for _, s in sorted(entries, key=lambda pair: -pair[0])[:EXAMPLES]],
        )
        for service, entries in on_path.items()
    ]
    critical.sort(key=lambda entry: (-entry.flows, -entry.time_share, entry.service))
    every = set.intersection(*(shape.callees for _, shape in shapes)) if shapes else set()
    single = [(service, [FlowRef(s.id, s.key) for s, _ in shapes[:EXAMPLES]]) for service in sorted(every)]
    return TypeCoupling(
        flow_type=flow_type,
        flows=len(samples),
        call_steps=sum(shape.calls for _, shape in shapes),
        event_steps=sum(shape.events for _, shape in shapes),
        deepest_chain=deepest[1].chain if deepest else [],
        deepest_chain_example=FlowRef(deepest[0].id, deepest[0].key) if deepest and len(deepest[1].chain) > 1 else None,
        critical_services=critical,
        single_points=single,
    )


def coupling_by_type(samples: Iterable[FlowSample]) -> list[TypeCoupling]:
    """One summary per flow type, the most frequent type first."""
    grouped: dict[str, list[FlowSample]] = defaultdict(list)
    for sample in samples:
        grouped[sample.type].append(sample)
    ordered = sorted(grouped.items(), key=lambda pair: (-len(pair[1]), pair[0]))
    return [type_coupling(flow_type, group) for flow_type, group in ordered]


# --- Reading the sample --------------------------------------------------------------------------

STEP_FIELDS = ("id", "flow_id", "service", "kind", "span_kind", "start_ns", "end_ns")
UNDECIDED_KINDS = (0, 1)  # span kinds that say neither call nor message: attributes decide


def _ambiguous_spans(rows: dict[int, dict[str, Any]], edges: Iterable[tuple[int, int, str]]) -> set[int]:
    """Spans of cross-service parent/child pairs whose span kinds leave the style open."""
    wanted: set[int] = set()
    for source, target, kind in edges:
        cause, effect = rows.get(source), rows.get(target)
        if kind != "child_of" or cause is None or effect is None or cause["service"] == effect["service"]:
            continue
        if cause["span_kind"] in UNDECIDED_KINDS and effect["span_kind"] in UNDECIDED_KINDS:
            wanted |= {source, target}
    return wanted


def recent_flow_samples(window_seconds: int, limit: int = SAMPLE_FLOWS, now: datetime | None = None) -> list[FlowSample]:
    """The ``limit`` newest flows active in the last ``window_seconds`` and quiet for the last
    ``SETTLE_SECONDS``, with their steps and edges. Attributes (JSON, the costly part) are read
    only for the spans whose kinds do not decide."""
    from tracing.correlation import causal_order
    from tracing.models import Edge, Flow, Observation

    now = now or timezone.now()
    since, settled = now - timedelta(seconds=window_seconds), now - timedelta(seconds=SETTLE_SECONDS)
    flows = list(
        Flow.objects.filter(merged_into__isnull=True, last_seen_at__gte=since, last_seen_at__lt=settled)
        .order_by("-started_at", "-id")
        .values_list("id", "key", "type")[:limit]
    )
    ids = [flow_id for flow_id, _, _ in flows]
    rows = {row["id"]: row for row in Observation.objects.filter(flow_id__any=ids).values(*STEP_FIELDS)}
    edges: dict[int, list[tuple[int, int, str]]] = defaultdict(list)
    edge_rows = Edge.objects.filter(flow_id__any=ids).values_list("flow_id", "source_id", "target_id", "kind")
    for flow_id, source, target, kind in edge_rows:
        edges[flow_id].append((source, target, kind))
    ambiguous = sorted(_ambiguous_spans(rows, (edge for flow_edges in edges.values() for edge in flow_edges)))
    for start in range(0, len(ambiguous), 5_000):  # SQLite bounds the parameters of one statement
        part = Observation.objects.filter(id__any=ambiguous[start : start + 5_000])
        for obs_id, attributes in part.values_list("id", "attributes"):
            rows[obs_id]["attributes"] = attributes
    by_flow: dict[int, list[Step]] = defaultdict(list)
    for row in rows.values():
        by_flow[row["flow_id"]].append(step_of(row))
    samples = []
    for flow_id, key, flow_type in flows:
        steps = {step.id: step for step in by_flow[flow_id]}
        order = causal_order({i: (s.start_ns, i) for i, s in steps.items()}, [(s, t) for s, t, _ in edges[flow_id]])
        samples.append(FlowSample(flow_id, key, flow_type, [steps[i] for i in order], edges[flow_id]))
    return samples
