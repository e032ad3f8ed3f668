"""Property: for generated choreographies, any arrival order, any split into requests and
batches, and any duplicates give the same flows and the same edges, the ones the choreography
implies under the rules of the README's "How flows are rebuilt": business keys are boundaries
(batch consumers linking producers of several orders are shared steps, an event whose key
differs from its cause's is joined by a cross-flow edge), a trace is one transaction even when
its root never arrives, and clocks disagree (effects stamped before their causes)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import event as note_case
from hypothesis import strategies as st

from tracing.models import Anchor, Edge, Flow, Observation, PendingRef, SharedStep
from tracing.records import (
    SPAN_KIND_CONSUMER,
    SPAN_KIND_INTERNAL,
    SPAN_KIND_PRODUCER,
    ObservationRecord,
    event_identity,
    span_identity,
)
from tracing.services import correlate_pending_observations
from tracing.store import store_observations

pytestmark = pytest.mark.django_db


@dataclass
class Choreography:
    """Records plus the ground truth the generator knows: edges by identity and joined pairs."""

    records: list[ObservationRecord] = field(default_factory=list)
    edges: set[tuple[str, str, str]] = field(default_factory=set)
    absent: set[str] = field(default_factory=set)  # identities never sent (a root nobody exported)
    counter: int = 0

    def next_id(self, width: int) -> str:
        self.counter += 1
        return f"{self.counter:0{width}x}"

    def span(
        self,
        service: str,
        trace: str,
        *,
        parent: ObservationRecord | None = None,
        kind: int = SPAN_KIND_INTERNAL,
        links: tuple[ObservationRecord, ...] = (),
        attributes: dict | None = None,
        start: int = 0,
    ) -> ObservationRecord:
        span_id = self.next_id(16)
        record = ObservationRecord(
            "span",
            span_identity(trace, span_id),
            f"{service} span",
            service,
            start,
            start + 1,
            trace_id=trace,
            span_id=span_id,
            parent_span_id=parent.span_id if parent else "",
            span_kind=kind,
            attributes=attributes or {},
            detail={"links": [{"trace_id": link.trace_id, "span_id": link.span_id} for link in links]} if links else {},
        )
        self.records.append(record)
        if parent:
            self.edges.add((parent.identity, record.identity, "child_of"))
        for link in links:
            self.edges.add((link.identity, record.identity, "follows_from"))
        return record

    def event(self, emitter: ObservationRecord, cause: ObservationRecord | None, key: str, start: int) -> ObservationRecord:
        event_id = f"ev-{self.next_id(6)}"
        source = f"/{emitter.service}"
        attributes = {"correlationid": key} if key else {}
        if cause is not None:
            attributes["causationid"] = cause.event_id
            self.edges.add((cause.identity, event_identity(source, event_id), "caused_by"))
        record = ObservationRecord(
            "event",
            event_identity(source, event_id),
            f"{emitter.service} happened",
            source,
            start,
            trace_id=emitter.trace_id,
            span_id=emitter.span_id,
            event_source=source,
            event_id=event_id,
            attributes=attributes,
        )
        self.records.append(record)
        self.edges.add((emitter.identity, record.identity, "emitted_by"))
        return record


@st.composite
def choreographies(draw: st.DrawFn) -> Choreography:
    world = Choreography()
    producers: list[ObservationRecord] = []
    emitted_events: list[ObservationRecord] = []
    for order in range(draw(st.integers(1, 4))):
        key = draw(st.sampled_from(["", f"order-{order}", f"order-{order}", "order-shared"]))
        trace = world.next_id(32)
        root = world.span(f"checkout{order}", trace, start=draw(st.integers(0, 100)))
        if draw(st.integers(0, 3)) == 0:
            world.absent.add(root.identity)  # an uninstrumented gateway: the parent never arrives
        frontier: list[tuple[ObservationRecord, ObservationRecord | None]] = [
            (world.span("checkout", trace, parent=root, kind=SPAN_KIND_PRODUCER), None)
        ]
        if draw(st.booleans()):
            world.span("payments", trace, parent=root, kind=SPAN_KIND_INTERNAL)  # a sibling under the same root
        for _depth in range(draw(st.integers(1, 3))):
            next_frontier: list[tuple[ObservationRecord, ObservationRecord | None]] = []
            for producer, cause in frontier:
                producers.append(producer)
                emitted = world.event(producer, cause, key, start=draw(st.integers(0, 100)))
                emitted_events.append(emitted)
                for consumer_index in range(draw(st.integers(0, 3))):
                    service = f"svc{order}-{len(world.records)}-{consumer_index}"
                    as_link = draw(st.booleans())
                    extra_links = (draw(st.sampled_from(producers)),) if draw(st.integers(0, 4)) == 0 else ()  # fan-in
                    consumer = world.span(
                        service,
                        world.next_id(32) if as_link else producer.trace_id,
                        parent=None if as_link else producer,
                        kind=SPAN_KIND_CONSUMER,
                        links=tuple({link.identity: link for link in ((producer,) if as_link else ()) + extra_links}.values()),
                        attributes={"cloudevents.event_id": emitted.event_id, "cloudevents.event_source": emitted.event_source},
                        start=draw(st.integers(0, 100)),  # clocks disagree: a consumer may start before its producer
                    )
                    world.edges.add((emitted.identity, consumer.identity, "delivers"))
                    if draw(st.booleans()):
                        next_frontier.append((consumer, emitted))
            frontier = next_frontier
    for batch in range(draw(st.sampled_from([0, 1, 1, 2]))):
        # A batch consumer: one span in a trace of its own linking the producers of 1-5 messages.
        linked = draw(st.lists(st.sampled_from(producers), min_size=1, max_size=5, unique_by=lambda r: r.identity))
        consumer = world.span(
            f"batch{batch}", world.next_id(32), kind=SPAN_KIND_CONSUMER, links=tuple(linked), start=draw(st.integers(0, 100))
        )
        work = world.span(f"batch{batch}", consumer.trace_id, parent=consumer)
        if draw(st.booleans()):
            # An aggregate event with a key of its own, caused by one of the orders' events.
            cause = draw(st.sampled_from(emitted_events))
            world.event(work, cause, draw(st.sampled_from(["", "", f"shipment-{batch}"])), start=draw(st.integers(0, 100)))
    return world


def unit(record: ObservationRecord) -> str:
    return record.trace_id or record.identity


def expected_memberships(world: Choreography) -> dict[str, frozenset[str]]:
    """The rules, applied naively to the ground truth: identity → the flows it serves."""
    records = {r.identity: r for r in world.records if r.identity not in world.absent}
    edges = expected_edges(world)
    own = {i: (r.attributes or {}).get("correlationid", "") for i, r in records.items()}
    units: dict[str, set[str]] = {}
    for identity, record in records.items():
        units.setdefault(unit(record), set()).add(identity)
    keyed_units = {u for u, members in units.items() if any(own[m] for m in members)}

    def inside(identity: str, upstream: bool) -> set[str]:
        pairs = [(s, t) if upstream else (t, s) for s, t, _ in edges if unit(records[s]) == unit(records[t])]
        return {a for a, b in pairs if b == identity}

    def keys_in_keyed_unit(identity: str) -> set[str]:
        if own[identity]:
            return {own[identity]}
        level, seen = {identity}, {identity}
        while level:  # nearest keyed causes
            level = {c for node in level for c in inside(node, True)} - seen
            seen |= level
            found = {own[c] for c in level if own[c]}
            if found:
                return found
            level = {c for c in level if not own[c]}
        found, stack, seen = set(), [identity], {identity}
        while stack:  # keyed effects, not past a keyed one
            for effect in inside(stack.pop(), False) - seen:
                seen.add(effect)
                if own[effect]:
                    found.add(own[effect])
                else:
                    stack.append(effect)
        return found or {own[m] for m in units[unit(records[identity])] if own[m]}

    keyed_keys = {i: keys_in_keyed_unit(i) for i in records if unit(records[i]) in keyed_units}

    def reached(start: str, upstream: bool) -> set[str]:
        found, stack, seen = set(), [start], {start}
        while stack:
            here = stack.pop()
            for s, t, _ in edges:
                near, far = (t, s) if upstream else (s, t)
                if unit(records[near]) != here or unit(records[far]) == here:
                    continue
                if unit(records[far]) in keyed_units:
                    found |= keyed_keys[far]
                elif unit(records[far]) not in seen:
                    seen.add(unit(records[far]))
                    stack.append(unit(records[far]))
        return found

    result = {i: frozenset(f"key:{k}" for k in found) for i, found in keyed_keys.items()}
    lonely: set[str] = set()
    for u in set(units) - keyed_units:
        found = reached(u, True) or reached(u, False)
        if not found:
            lonely.add(u)
        result.update({i: frozenset(f"key:{k}" for k in found) for i in units[u]})
    group = {u: u for u in lonely}

    def find(u: str) -> str:
        while group[u] != u:
            u = group[u]
        return u

    for s, t, _ in edges:
        if unit(records[s]) in lonely and unit(records[t]) in lonely:
            group[find(unit(records[s]))] = find(unit(records[t]))
    for u in lonely:
        result.update({i: frozenset({f"keyless:{find(u)}"}) for i in units[u]})
    return result


def expected_flows(world: Choreography) -> set[frozenset[str]]:
    flows: dict[str, set[str]] = {}
    for identity, labels in expected_memberships(world).items():
        for label in labels:
            flows.setdefault(label, set()).add(identity)
    return {frozenset(members) for members in flows.values()}


def expected_edges(world: Choreography) -> set[tuple[str, str, str]]:
    return {(s, t, k) for s, t, k in world.edges if s not in world.absent and t not in world.absent}


def stored_memberships() -> dict[str, set[int]]:
    flows: dict[str, set[int]] = {}
    for flow_id, identity in Observation.objects.values_list("flow_id", "identity"):
        assert flow_id is not None, f"{identity} was left uncorrelated"
        flows.setdefault(identity, set()).add(flow_id)
    for flow_id, identity in SharedStep.objects.values_list("flow_id", "observation__identity"):
        assert flow_id not in flows[identity], "a shared step is never shared with its own primary flow"
        flows[identity].add(flow_id)
    return flows


def stored_flows() -> set[frozenset[str]]:
    groups: dict[int, set[str]] = {}
    for identity, flow_ids in stored_memberships().items():
        for flow_id in flow_ids:
            groups.setdefault(flow_id, set()).add(identity)
    live = set(Flow.objects.filter(merged_into__isnull=True).values_list("id", flat=True))
    assert set(groups) == live, "every surviving flow holds observations, and no absorbed flow does"
    keys = dict(Flow.objects.filter(merged_into__isnull=True).values_list("id", "key"))
    assert len(set(keys.values())) == len(keys), "one flow per key"
    return {frozenset(group) for group in groups.values()}


def stored_edges() -> set[tuple[str, str, str]]:
    memberships = stored_memberships()
    primary = dict(Observation.objects.values_list("identity", "flow_id"))
    rows = Edge.objects.values_list("source__identity", "target__identity", "kind", "flow_id", "cross_flow")
    for source, target, _, flow_id, cross in rows:
        assert flow_id == primary[target], "an edge belongs to its effect's primary flow"
        assert cross == (not memberships[source] & memberships[target]), "cross-flow exactly when the ends share no flow"
    return {(source, target, kind) for source, target, kind, *_ in rows}


def reset() -> None:
    for model in (Edge, PendingRef, Anchor, SharedStep, Observation, Flow):
        model.objects.all().delete()


@settings(
    max_examples=80,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],  # explaining a failure costs minutes
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(world=choreographies(), data=st.data())
def test_any_arrival_order_and_batching_gives_the_flows_and_edges_the_choreography_implies(world, data):
    reset()
    sent = [record for record in world.records if record.identity not in world.absent]
    arrivals = data.draw(st.permutations(sent))
    arrivals += data.draw(st.lists(st.sampled_from(sent), max_size=4))  # duplicates, sent again later
    position = 0
    while position < len(arrivals):
        request = data.draw(st.integers(1, 6))
        store_observations(arrivals[position : position + request])
        position += request
        if data.draw(st.booleans()) or position >= len(arrivals):
            correlate_pending_observations(batch_size=data.draw(st.integers(1, 8)))

    assert stored_flows() == expected_flows(world)
    assert stored_edges() == expected_edges(world)
    shared, crossing = SharedStep.objects.count(), Edge.objects.filter(cross_flow=True).count()
    note_case(f"shared steps: {min(shared, 3)}+, cross-flow edges: {min(crossing, 3)}+")
    waiting = set(PendingRef.objects.values_list("observation__identity", flat=True))
    assert waiting <= {t for s, t, _ in world.edges if s in world.absent}, "only references to what never came wait"
    emitters = {(r.trace_id, r.span_id): r.service for r in world.records if r.kind == "span"}
    for event in Observation.objects.filter(kind="event"):
        assert event.service == emitters[(event.trace_id, event.span_id)]
