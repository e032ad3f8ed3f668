"""Orchestration or choreography, as observed: how each step of a flow was reached, and which
chain of steps decided how long the flow took.

Pure functions over plain data (``Step`` and ``(cause, effect, kind)`` triples), so the flow
JSON, the service map and the coupling page classify the same way.

**Interaction style** of an edge between two observations (``interaction_style``):

- ``internal``: both belong to one service;
- ``call``: a request/response between two services, one waiting for the other: a CLIENT span
  and its SERVER child, or a parent/child pair whose spans carry HTTP, RPC or gRPC attributes
  (``http.request.method``, ``rpc.system``, …). A parent/child pair across services with no hint
  either way is a call too: the caller propagated its context in-band and the callee ran inside it;
- ``event``: a reaction to a message: PRODUCER → CONSUMER spans, spans with messaging attributes,
  span links across traces, and every CloudEvents relation (``caused_by``, ``delivers``,
  ``emitted_by``) between two services.

**Critical path** (``critical_path``): the chain of steps that decided the flow's end-to-end
time. It starts at the step that ended last and walks back in time with a cursor:

1. at a step, among the effects it waited for (its child spans and the events it emitted, not
   yet on the path) that ended before the cursor, take the one that ended last, put it on the
   path and continue inside it (cursor = its end). The time between its end and the cursor is
   the step's own work (*self time*); if it belongs to another service reached by a call, the
   child's whole duration is time the step's service spent *waiting*;
2. when no such effect is left, the time back to the step's start is its own work too; then go
   to its nearest cause (a cause that is not itself the cause of another cause: the event a
   consumer reacted to rather than the span that produced the event) that ended last. A gap
   between that cause's end and the step's start, on an event edge, is time the step's service
   spent *queued* (the message waited on the bus or in its backlog). Re-entering a parent span
   continues its walk from the child's start, so sequential calls are found one after another;
3. stop at a step with no cause.

Fan-outs are handled by step 1's choice (the branch that ended last is the one the flow waited
for); waits by the cursor.

Services' clocks disagree, and a host running behind stamps reactions before the events they react
to, which would hide its steps from the path (its last step would seem to end early). So before
the walk every step is moved forward, never back, as little as makes causality hold: an effect
starts no earlier than its parent span starts, or than the event (or the cause that is not its
parent) it reacts to ends; its own effects move with it. Remaining negative gaps count as zero,
so the path's total is the sum of its parts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Style = Literal["call", "event", "internal"]
STYLES: tuple[Style, ...] = ("call", "event", "internal")

# OTLP SpanKind numbers.
SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5

CALL_ATTRIBUTES = ("http.request.method", "http.method", "rpc.system", "rpc.method", "rpc.service", "grpc.method")
MESSAGING_ATTRIBUTES = ("messaging.system", "messaging.operation.type", "messaging.operation", "messaging.destination.name")
# Edges whose parent runs for as long as the child: what a step can be waiting on.
NESTING_KINDS = frozenset({"child_of", "emitted_by"})


@dataclass(frozen=True, slots=True)
class Step:
    """What classification and the critical path need to know of one observation."""

    id: int
    service: str
    kind: str = "span"  # "span" or "event"
    span_kind: int = 0
    start_ns: int = 0
    end_ns: int | None = None  # None for an event (an instant) or a span still open
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def finish_ns(self) -> int:
        return self.end_ns if self.end_ns is not None and self.end_ns >= self.start_ns else self.start_ns


def _has_any(attributes: Mapping[str, Any], names: Iterable[str]) -> bool:
    return any(name in attributes for name in names)


def interaction_style(cause: Step, effect: Step, kind: str) -> Style:
    """How ``effect`` was reached from ``cause`` over an edge of ``kind`` (see the module text)."""
    if cause.service == effect.service:
        return "internal"
    if kind != "child_of" or cause.kind != "span" or effect.kind != "span":
        return "event"
    if cause.span_kind == PRODUCER or effect.span_kind == CONSUMER:
        return "event"
    if cause.span_kind == CLIENT or effect.span_kind == SERVER:
        return "call"
    messaging = _has_any(cause.attributes, MESSAGING_ATTRIBUTES) or _has_any(effect.attributes, MESSAGING_ATTRIBUTES)
    calling = _has_any(cause.attributes, CALL_ATTRIBUTES) or _has_any(effect.attributes, CALL_ATTRIBUTES)
    return "event" if messaging and not calling else "call"


def edge_styles(steps: Iterable[Step], edges: Iterable[tuple[int, int, str]]) -> list[Style]:
    """The style of each edge, in the order given; an edge to a step not given is ``internal``."""
    by_id = {step.id: step for step in steps}
    styles: list[Style] = []
    for source, target, kind in edges:
        cause, effect = by_id.get(source), by_id.get(target)
        styles.append(interaction_style(cause, effect, kind) if cause and effect else "internal")
    return styles


# --- The critical path ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceTime:
    service: str
    self_ns: int  # its own work on the path
    waiting_ns: int  # its steps on the path were open while another service answered a call
    queued_ns: int  # between an event and this service's reaction to it


@dataclass(frozen=True, slots=True)
class CriticalPath:
    steps: list[int]  # step ids, first to last
    links: list[tuple[int, int]]  # the (cause, effect) edges the path runs along
    services: list[ServiceTime]  # most time first
    total_ns: int  # self and queued time of every service: the path's length

    def share_of(self, service: str) -> float:
        """The share of the path's time this service spent working or queued."""
        found = next((entry for entry in self.services if entry.service == service), None)
        if found is None or self.total_ns <= 0:
            return 0.0
        return (found.self_ns + found.queued_ns) / self.total_ns


EMPTY_PATH = CriticalPath([], [], [], 0)


@dataclass
class _Walk:
    by_id: dict[int, Step]
    causes: dict[int, list[tuple[int, str]]]
    effects: dict[int, list[tuple[int, str]]]
    on_path: set[int] = field(default_factory=set)
    links: set[tuple[int, int]] = field(default_factory=set)
    self_ns: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    waiting_ns: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    queued_ns: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    waits: dict[int, list[Step]] = field(default_factory=dict)
    next_wait: dict[int, int] = field(default_factory=dict)

    def last_waited_effect(self, step: Step, cursor: int) -> Step | None:
        """The nested effect that ended last by ``cursor`` and is not on the path yet. A step's
        cursor only moves back in time, so what is passed over once never qualifies again: a
        span with thousands of sequential children is walked once, not once per child."""
        waits = self.waits.get(step.id)
        if waits is None:
            nested = [self.by_id[target] for target, kind in self.effects[step.id] if kind in NESTING_KINDS]
            waits = self.waits[step.id] = sorted(nested, key=lambda s: (s.finish_ns, s.start_ns), reverse=True)
        index = self.next_wait.get(step.id, 0)
        while index < len(waits) and (waits[index].id in self.on_path or waits[index].finish_ns > cursor):
            index += 1
        self.next_wait[step.id] = index
        return waits[index] if index < len(waits) else None

    def nearest_cause(self, step: Step) -> tuple[Step, str] | None:
        causes = [(self.by_id[source], kind) for source, kind in self.causes[step.id]]
        # A cause that caused another cause of this step (the span that produced the event this
        # step reacted to) is further away: the other one is the step's immediate reason.
        further = {grand for cause, _ in causes for grand, _ in self.causes[cause.id]}
        nearest = [(c, k) for c, k in causes if c.id not in further] or causes
        return max(nearest, key=lambda pair: (pair[0].finish_ns, pair[0].start_ns), default=None)

    def run(self, last: Step, limit: int) -> None:
        step, cursor = last, last.finish_ns
        self.on_path.add(last.id)
        for _ in range(limit):
            child = self.last_waited_effect(step, cursor)
            if child is not None:
                self.self_ns[step.service] += max(0, cursor - child.finish_ns)
                if child.service != step.service and interaction_style(step, child, "child_of") == "call":
                    self.waiting_ns[step.service] += child.finish_ns - child.start_ns
                self.on_path.add(child.id)
                self.links.add((step.id, child.id))
                step, cursor = child, child.finish_ns
                continue
            self.self_ns[step.service] += max(0, cursor - step.start_ns)
            found = self.nearest_cause(step)
            if found is None:
                return
            cause, kind = found
            enclosing = kind in NESTING_KINDS and cause.finish_ns >= step.finish_ns
            if cause.id in self.on_path and not enclosing:
                return  # a cycle (bad data): the path so far stands
            gap = step.start_ns - cause.finish_ns
            if gap > 0 and interaction_style(cause, step, kind) == "event":
                self.queued_ns[step.service] += gap
            self.on_path.add(cause.id)
            self.links.add((cause.id, step.id))
            step, cursor = cause, min(cause.finish_ns, step.start_ns)


def causally_shifted(steps: Sequence[Step], causes: Mapping[int, list[tuple[int, str]]]) -> list[Step]:
    """``steps`` (in causal order) moved forward in time just enough that no step starts before
    its parent span starts or before the event it reacts to ends (see the module text)."""
    by_id = {step.id: step for step in steps}
    shifted: dict[int, Step] = {}
    for step in steps:
        earliest = step.start_ns
        for source, kind in causes.get(step.id, []):
            cause = shifted.get(source)
            if cause is None:  # a cycle (bad data): causal order broke it here
                continue
            # A parent span, a span that emitted an event, a linked producer: the effect starts within it.
            anchor = cause.start_ns if kind in NESTING_KINDS or kind == "follows_from" else cause.finish_ns
            if kind in NESTING_KINDS and cause.service == step.service:
                anchor = max(anchor, step.start_ns + cause.start_ns - by_id[source].start_ns)  # one host, one clock
            earliest = max(earliest, anchor)
        delta = earliest - step.start_ns
        end = step.end_ns + delta if step.end_ns is not None else None
        shifted[step.id] = replace(step, start_ns=earliest, end_ns=end) if delta else step
    return [shifted[step.id] for step in steps]


def critical_path(steps: Sequence[Step], edges: Iterable[tuple[int, int, str]]) -> CriticalPath:
    """The critical path of one flow; ``steps`` in causal order (the path is listed in it)."""
    if not steps:
        return EMPTY_PATH
    ids = {step.id for step in steps}
    causes: dict[int, list[tuple[int, str]]] = {step.id: [] for step in steps}
    effects: dict[int, list[tuple[int, str]]] = {step.id: [] for step in steps}
    for source, target, kind in edges:
        if source in ids and target in ids and source != target:
            causes[target].append((source, kind))
            effects[source].append((target, kind))
    steps = causally_shifted(steps, causes)
    by_id = {step.id: step for step in steps}
    order = {step.id: position for position, step in enumerate(steps)}
    last = max(steps, key=lambda step: (step.finish_ns, order[step.id]))
    walk = _Walk(by_id, causes, effects)
    walk.run(last, limit=4 * (len(steps) + sum(map(len, causes.values()))) + 4)
    services = {by_id[node].service for node in walk.on_path}
    times = [ServiceTime(name, walk.self_ns[name], walk.waiting_ns[name], walk.queued_ns[name]) for name in services]
    times.sort(key=lambda entry: (-(entry.self_ns + entry.queued_ns), entry.service))
    total = sum(entry.self_ns + entry.queued_ns for entry in times)
    links = sorted(walk.links, key=lambda link: (order[link[1]], order[link[0]]))
    return CriticalPath(sorted(walk.on_path, key=order.__getitem__), links, times, total)


def step_of(row: Mapping[str, Any]) -> Step:
    """A ``Step`` from a row of ``tracing.selectors.OBSERVATION_FIELDS`` (plus ``attributes``)."""
    attributes = row.get("attributes")
    return Step(
        id=row["id"],
        service=row["service"],
        kind=row["kind"],
        span_kind=row.get("span_kind") or 0,
        start_ns=row["start_ns"],
        end_ns=row.get("end_ns"),
        attributes=attributes if isinstance(attributes, Mapping) else {},
    )
