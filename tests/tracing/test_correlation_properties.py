"""Property: for generated choreographies, any arrival order, any split into requests and
batches, and any duplicates give the same flows and the same edges, the ones the choreography
implies."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracing.models import Anchor, Edge, Flow, Observation, PendingRef
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
    joins: list[tuple[str, str]] = field(default_factory=list)  # same flow, without an edge (business key)
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
    keyed: dict[str, str] = {}
    for order in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(["", f"order-{order}", "order-shared"]))
        trace = world.next_id(32)
        root = world.span(f"checkout{order}", trace, start=draw(st.integers(0, 100)))
        frontier: list[tuple[ObservationRecord, ObservationRecord | None]] = [
            (world.span("checkout", trace, parent=root, kind=SPAN_KIND_PRODUCER), None)
        ]
        for _depth in range(draw(st.integers(1, 3))):
            next_frontier: list[tuple[ObservationRecord, ObservationRecord | None]] = []
            for producer, cause in frontier:
                producers.append(producer)
                emitted = world.event(producer, cause, key, start=draw(st.integers(0, 100)))
                if key:
                    world.joins.append((keyed.setdefault(key, emitted.identity), emitted.identity))
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
                        start=draw(st.integers(0, 100)),
                    )
                    world.edges.add((emitted.identity, consumer.identity, "delivers"))
                    if draw(st.booleans()):
                        next_frontier.append((consumer, emitted))
            frontier = next_frontier
    return world


def expected_flows(world: Choreography) -> set[frozenset[str]]:
    parent = {record.identity: record.identity for record in world.records}

    def find(node: str) -> str:
        while parent[node] != node:
            node = parent[node]
        return node

    for a, b in [(source, target) for source, target, _ in world.edges] + world.joins:
        parent[find(a)] = find(b)
    groups: dict[str, set[str]] = {}
    for identity in parent:
        groups.setdefault(find(identity), set()).add(identity)
    return {frozenset(group) for group in groups.values()}


def stored_flows() -> set[frozenset[str]]:
    groups: dict[int, set[str]] = {}
    for flow_id, identity in Observation.objects.values_list("flow_id", "identity"):
        assert flow_id is not None, f"{identity} was left uncorrelated"
        groups.setdefault(flow_id, set()).add(identity)
    live = set(Flow.objects.filter(merged_into__isnull=True).values_list("id", flat=True))
    assert set(groups) == live, "every surviving flow holds observations, and no absorbed flow does"
    return {frozenset(group) for group in groups.values()}


def stored_edges() -> set[tuple[str, str, str]]:
    rows = Edge.objects.values_list(
        "source__identity", "target__identity", "kind", "flow_id", "source__flow_id", "target__flow_id"
    )
    assert all(flow == source_flow == target_flow for *_, flow, source_flow, target_flow in rows)
    return {(source, target, kind) for source, target, kind, *_ in rows}


def reset() -> None:
    for model in (Edge, PendingRef, Anchor, Observation, Flow):
        model.objects.all().delete()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(world=choreographies(), data=st.data())
def test_any_arrival_order_and_batching_gives_the_flows_and_edges_the_choreography_implies(world, data):
    reset()
    arrivals = data.draw(st.permutations(world.records))
    arrivals += data.draw(st.lists(st.sampled_from(world.records), max_size=4))  # duplicates, sent again later
    position = 0
    while position < len(arrivals):
        request = data.draw(st.integers(1, 6))
        store_observations(arrivals[position : position + request])
        position += request
        if data.draw(st.booleans()) or position >= len(arrivals):
            correlate_pending_observations(batch_size=data.draw(st.integers(1, 8)))

    assert stored_flows() == expected_flows(world)
    assert stored_edges() == world.edges
    assert not PendingRef.objects.exists(), "every reference found its target once everything arrived"
    emitters = {(r.trace_id, r.span_id): r.service for r in world.records if r.kind == "span"}
    for event in Observation.objects.filter(kind="event"):
        assert event.service == emitters[(event.trace_id, event.span_id)]
