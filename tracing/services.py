"""Writes of the causal model: correlating stored observations into flows, and retention.

Correlation runs in batches. One batch, in one transaction:
1. claim the oldest uncorrelated observations (``flow IS NULL``);
2. look up every name they claim or refer to, and store the claims on names nobody owns yet
   (the first claimant owns a name);
3. turn resolved references into cause → effect edges, keep the others as pending references,
   and resolve earlier pending references that point at names this batch now owns;
4. union flows: every connected component keeps its oldest flow, the others are absorbed
   (``merged_into``) and their observations and edges move over; a component of this batch's
   observations alone becomes a new flow, written with its summary (all of it is in hand);
5. recompute the summaries of the earlier flows that changed and send ``flows_changed``.

Concurrency: on PostgreSQL each worker claims its own rows (``FOR UPDATE SKIP LOCKED``) and
derives their anchors and references in parallel with the others; then a transaction-scoped
advisory lock makes the resolve-and-write steps take turns. Two workers resolving the same
anchor concurrently could otherwise each miss the other's uncommitted anchor or pending
reference and lose an edge, or merge the same flows in opposite orders and deadlock. The lock
holder only ever writes rows that are already correlated or that it claimed itself, so it never
waits on another worker's row locks. Every step is a handful of set-based statements, so a batch
of thousands of observations costs a few dozen queries. SQLite serialises writers itself
(``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import gc
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from tracing.bulk import allocate_ids, chunks, insert_rows, remap_column, update_rows
from tracing.correlation import (
    EMITTED_BY,
    CausalEdge,
    FlowLabel,
    FlowNode,
    Linkage,
    Member,
    assign_flows,
    edge_between,
    linkage,
    summarize_flow,
    unit_of,
)
from tracing.flowconfig import FlowsConfig, flows_config
from tracing.metrics import timed_batch
from tracing.models import Anchor, Edge, Flow, FlowFacet, Observation, PendingRef, SharedStep, SpanLog, anchor_digest
from tracing.selectors import edges_among, flow_members
from tracing.signals import flows_changed

logger = logging.getLogger(__name__)

# pg_advisory_xact_lock key: the bytes of "corrlate" read as a big-endian integer.
CORRELATION_LOCK = 0x636F72726C617465
CLAIM_FIELDS = (
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
    "event_source",
    "event_id",
)


def ns_to_datetime(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


@dataclass
class BatchOutcome:
    observation_ids: list[int] = field(default_factory=list)
    flow_ids: set[int] = field(default_factory=set)
    merged: dict[int, int] = field(default_factory=dict)


def take_correlation_lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Correlation is derived data: a commit lost in a crash leaves its observations
            # uncorrelated (flow IS NULL), and the sweep derives the same result again. So the
            # commit need not wait for its WAL flush; atomicity is unchanged.
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CORRELATION_LOCK])


@dataclass(slots=True)
class Claimed:
    """An uncorrelated observation, as much of it as correlation reads and writes."""

    id: int
    kind: str
    name: str
    service: str
    start_ns: int
    end_ns: int | None
    trace_id: str
    span_id: str
    parent_span_id: str
    span_kind: int
    status: str
    event_source: str
    event_id: str
    attributes: dict[str, Any]
    detail: dict[str, Any]
    flow_id: int | None = None
    business_key: str = ""


def claim_batch(size: int) -> list[Claimed]:
    # JSON columns come as text and are parsed with orjson, several times faster than the ORM's json.loads.
    attributes, detail = Cast("attributes", TextField()), Cast("detail", TextField())
    uncorrelated = Observation.objects.filter(flow__isnull=True).order_by("id").select_for_update(skip_locked=True)
    rows = uncorrelated.values_list(*CLAIM_FIELDS, attributes, detail)[:size]
    return [Claimed(*row[:-2], orjson.loads(row[-2] or "{}"), orjson.loads(row[-1] or "{}")) for row in rows]  # type: ignore[misc, call-arg]


def anchor_owners(names: Iterable[str]) -> dict[str, tuple[int, int | None]]:
    """name → (owning observation id, its flow id or None while it is in this batch)."""
    name_of = {anchor_digest(name): name for name in set(names)}
    owners: dict[str, tuple[int, int | None]] = {}
    for part in chunks(sorted(name_of)):
        rows = Anchor.objects.filter(digest__any=part).values_list("digest", "observation_id", "observation__flow_id")
        owners.update({name_of[digest]: (observation_id, flow_id) for digest, observation_id, flow_id in rows})
    return owners


def claim_anchors(linkages: dict[int, Linkage]) -> dict[str, tuple[int, int | None]]:
    """The owner of every name the batch mentions: its earlier owner, else the batch's first
    claimant (in id order), whose claim is stored now. Runs under the correlation lock (or
    SQLite's single writer), so no other batch claims a name between the lookup and the insert;
    a name claimed by a dozen members of one order costs one row, not a dozen conflicts."""
    names = {name for link in linkages.values() for name in (*link.anchors, *(ref.anchor for ref in link.references))}
    owners = anchor_owners(names)
    claims: dict[str, int] = {}
    for obs_id, link in linkages.items():
        for name in link.anchors:
            if name not in owners:
                claims.setdefault(name, obs_id)
    insert_rows(Anchor, ["digest", "observation"], [(anchor_digest(name), obs_id) for name, obs_id in claims.items()])
    owners.update({name: (obs_id, None) for name, obs_id in claims.items()})
    return owners


def resolve_references(
    observations: list[Claimed], linkages: dict[int, Linkage], owners: dict[str, tuple[int, int | None]]
) -> tuple[list[CausalEdge], list[tuple[UUID, int, str, bool, datetime]]]:
    edges: list[CausalEdge] = []
    pending: list[tuple[UUID, int, str, bool, datetime]] = []
    now = timezone.now()
    for obs in observations:
        for reference in linkages[obs.id].references:
            owner = owners.get(reference.anchor)
            if owner is None:
                pending.append((anchor_digest(reference.anchor), obs.id, reference.kind, reference.anchor_is_cause, now))
                continue
            edge = edge_between(owner[0], obs.id, reference)
            if edge:
                edges.append(edge)
    return edges, pending


def resolve_earlier_pending(won: dict[str, int]) -> tuple[list[CausalEdge], list[int]]:
    """Pending references of earlier observations that point at names this batch now owns."""
    edges: list[CausalEdge] = []
    resolved: list[int] = []
    owner_of = {anchor_digest(name): owner for name, owner in won.items()}
    for part in chunks(sorted(owner_of)):
        rows = PendingRef.objects.filter(anchor__any=part).values_list(
            "id", "anchor", "observation_id", "kind", "anchor_is_cause"
        )
        for ref_id, anchor, observation_id, kind, anchor_is_cause in rows:
            owner = owner_of[anchor]
            if owner != observation_id:
                edges.append((owner, observation_id, kind) if anchor_is_cause else (observation_id, owner, kind))
            resolved.append(ref_id)
    return edges, resolved


# --- The region a batch can change ------------------------------------------------------------

NODE_FIELDS = ("id", "kind", "name", "service", "start_ns", "end_ns", "status", "trace_id", "business_key", "event_id")
REGION_FIELDS = (*NODE_FIELDS, "flow_id")
EDGE_FIELDS = ("id", "source_id", "target_id", "kind", "flow_id", "cross_flow")


@dataclass(slots=True)
class RegionRow:
    """A correlated observation the batch may move (or one of this batch, ``flow_id`` None)."""

    node: FlowNode
    flow_id: int | None
    unit: str = field(init=False)

    def __post_init__(self) -> None:
        self.unit = unit_of(self.node.id, self.node.trace_id)

    @property
    def id(self) -> int:
        return self.node.id

    @property
    def business_key(self) -> str:
        return self.node.business_key

    def flows(self) -> set[int]:
        return set() if self.flow_id is None else {self.flow_id}


@dataclass
class Region:
    """The observations whose flows a batch can change, and the edges among them.

    Memberships depend on a unit (a trace) as a whole, and a keyless unit depends on the keyed
    units it reaches through keyless units: the batch's units, every keyless unit joined to them
    through keyless units, and the keyed units bordering those. A keyed unit is a boundary (its
    memberships do not depend on its neighbours), so a batch consumer touching many orders does
    not pull in the orders' other traces; a bordering observation with its own key is read
    alone, since its flow is its key's."""

    rows: dict[int, RegionRow] = field(default_factory=dict)
    # (cause, effect, kind) → (edge id, or None for this batch's new edges; flow; cross_flow)
    edges: dict[CausalEdge, tuple[int | None, int | None, bool]] = field(default_factory=dict)
    units: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    whole: set[str] = field(default_factory=set)  # units read whole

    def add(self, row: RegionRow) -> None:
        if row.id not in self.rows:
            self.rows[row.id] = row
            self.units[row.unit].append(row.id)

    def keyless(self, unit: str) -> bool:
        return unit in self.whole and not any(self.rows[obs].business_key for obs in self.units[unit])


def _read_rows(region: Region, rows: QuerySet[Observation]) -> None:
    for values in rows.filter(flow__isnull=False).values_list(*REGION_FIELDS):
        region.add(RegionRow(FlowNode(*values[:-1]), values[-1]))


def _read_units(region: Region, units: set[str]) -> None:
    traces = sorted(unit[2:] for unit in units if unit.startswith("t:"))
    for part in chunks(traces):
        # The index on trace ids is partial (``trace_id <> ''``), and PostgreSQL proves that
        # predicate from ``= ANY(array)`` only for arrays of up to 100 values: stated, it lets a
        # batch's thousands of traces be read through the index instead of a scan of the table.
        _read_rows(region, Observation.objects.filter(trace_id__any=part).exclude(trace_id=""))
    region.whole |= units


def _read_edges(region: Region, observation_ids: list[int]) -> None:
    for column in ("source_id", "target_id"):
        for part in chunks(observation_ids):
            for edge_id, source, target, kind, flow_id, cross in Edge.objects.filter(**{f"{column}__any": part}).values_list(
                *EDGE_FIELDS
            ):
                region.edges.setdefault((source, target, kind), (edge_id, flow_id, cross))


def load_region(batch: dict[int, Claimed], new_edges: list[CausalEdge]) -> Region:
    region = Region()
    for obs in batch.values():
        node = FlowNode(
            obs.id,
            obs.kind,
            obs.name,
            obs.service,
            obs.start_ns,
            obs.end_ns,
            obs.status,
            obs.trace_id,
            obs.business_key,
            obs.event_id,
        )
        region.add(RegionRow(node, None))
    for edge in new_edges:
        region.edges[edge] = (None, None, False)
    expand = set(region.units)
    expanded: set[str] = set()
    # No stored edge touches the batch yet: its observations were uncorrelated, and every edge
    # with an end in it is one of ``new_edges``.
    edges_read: set[int] = set(batch)
    while expand:
        _read_units(region, expand - region.whole)
        expanded |= expand
        inside = [obs for unit in expand for obs in region.units[unit]]
        _read_edges(region, sorted(set(inside) - edges_read))
        edges_read.update(inside)
        inside_set = set(inside)
        outside = {
            end
            for source, target, _ in region.edges
            for end in (source, target)
            if (source in inside_set) != (target in inside_set)
        }
        missing = sorted(outside - set(region.rows))
        for part in chunks(missing):
            _read_rows(region, Observation.objects.filter(id__any=part))
        neighbours = {region.rows[obs].unit for obs in outside if obs in region.rows}
        # A bordering observation with its own key serves its key's flow whatever its unit holds.
        to_read = {
            unit
            for unit in neighbours
            if unit not in region.whole and any(not region.rows[o].business_key for o in region.units[unit])
        }
        to_read |= {unit for unit in neighbours if unit.startswith("o:")}
        _read_units(region, to_read - region.whole)
        bordering = sorted({obs for unit in to_read for obs in region.units[unit]} - edges_read)
        _read_edges(region, bordering)  # the edges inside a bordering unit decide its memberships
        edges_read.update(bordering)
        expand = {unit for unit in neighbours if unit not in expanded and region.keyless(unit)}
    return region


# --- From memberships to flows ----------------------------------------------------------------


def previous_shared(observation_ids: list[int]) -> dict[int, set[int]]:
    shared: dict[int, set[int]] = defaultdict(set)
    for part in chunks(observation_ids):
        for obs_id, flow_id in SharedStep.objects.filter(observation_id__any=part).values_list("observation_id", "flow_id"):
            shared[obs_id].add(flow_id)
    return shared


@dataclass
class FlowAssignment:
    flow_of: dict[FlowLabel, int]
    new_flows: set[int]
    merged: dict[int, int]


def reusable_flows(region: Region, previous: dict[int, set[int]], keyed: set[int]) -> set[int]:
    """Earlier flows of region rows that name no key: those whose every member is in the region
    and carries no key of its own (a keyless flow, or one a key now absorbs)."""
    members: dict[int, list[int]] = defaultdict(list)
    for obs, flows in previous.items():
        for flow_id in flows:
            members[flow_id].append(obs)
    candidates = sorted(set(members) - keyed)
    found: set[int] = set()
    for part in chunks(candidates):
        for flow_id, count in Flow.objects.filter(id__any=part, merged_into__isnull=True).values_list("id", "observation_count"):
            if count == len(members[flow_id]) and not any(region.rows[obs].business_key for obs in members[flow_id]):
                found.add(flow_id)
    return found


def assign_flow_ids(region: Region, labels: dict[int, frozenset[FlowLabel]], previous: dict[int, set[int]]) -> FlowAssignment:
    """A flow id for every label: the flow of a key is the surviving flow with that key; a label
    without one takes over the oldest earlier keyless flow of its members (so links to it stay
    valid), else gets a new flow. Earlier keyless flows left over are merged into the flow most
    of their members moved to (``merged_into`` keeps old links working)."""
    keys = sorted({value for found in labels.values() for kind, value in found if kind == "key"})
    flow_of: dict[FlowLabel, int] = {}
    for part in chunks(keys):
        for flow_id, key in Flow.objects.filter(key__any=part, merged_into__isnull=True).order_by("-id").values_list("id", "key"):
            flow_of[("key", key)] = flow_id
    reusable = reusable_flows(region, previous, set(flow_of.values()))
    members_of: dict[FlowLabel, list[int]] = defaultdict(list)
    for obs, found in labels.items():
        for label in found:
            members_of[label].append(obs)
    unnamed = sorted(label for label in members_of if label not in flow_of)
    for label in unnamed:
        earlier = sorted({flow for obs in members_of[label] for flow in previous.get(obs, ()) if flow in reusable})
        if earlier:
            flow_of[label] = earlier[0]
            reusable.discard(earlier[0])
    new_labels = [label for label in unnamed if label not in flow_of]
    new_ids = allocate_ids(Flow, len(new_labels))
    flow_of.update(zip(new_labels, new_ids, strict=True))
    merged: dict[int, int] = {}
    for flow_id in sorted(reusable):
        moved_to: dict[int, int] = defaultdict(int)
        for obs, flows in previous.items():
            if flow_id in flows:
                moved_to[min(flow_of[label] for label in labels[obs])] += 1
        if moved_to:
            merged[flow_id] = max(sorted(moved_to), key=lambda target: moved_to[target])
    return FlowAssignment(flow_of, set(new_ids), merged)


@dataclass
class Memberships:
    """Flow ids per region row, written as a primary flow (the smallest id) and shared steps."""

    flows: dict[int, set[int]]


def write_memberships(
    region: Region,
    batch: dict[int, Claimed],
    memberships: Memberships,
    previous: dict[int, set[int]],
    shared_before: dict[int, set[int]],
) -> set[int]:
    """Store primary flows, shared steps and edge flows; returns the flows whose members changed."""
    changed: set[int] = set()
    moved: list[tuple[int, int]] = []
    stale, fresh = [], []
    primary_of = {obs: min(flows) for obs, flows in memberships.flows.items()}
    for obs, flows in memberships.flows.items():
        primary = primary_of[obs]
        if obs in batch:
            batch[obs].flow_id = primary
            changed |= flows
        elif previous.get(obs) != flows:
            changed |= flows | previous.get(obs, set())
            if region.rows[obs].flow_id != primary:
                moved.append((obs, primary))
        before = shared_before.get(obs)
        if len(flows) == 1 and not before:
            continue  # the common case: one flow, and no shared step to add or remove
        wanted = flows - {primary}
        before = before or set()
        stale += [(flow, obs) for flow in before - wanted]
        fresh += [(flow, obs) for flow in wanted - before]
    update_rows(Observation, ["flow"], moved)
    save_batch_observations(list(batch.values()))
    stale_by_flow: dict[int, list[int]] = defaultdict(list)
    for stale_flow, obs in stale:
        stale_by_flow[stale_flow].append(obs)
    for stale_flow, observation_ids in stale_by_flow.items():
        for part in chunks(observation_ids):
            SharedStep.objects.filter(flow_id=stale_flow, observation_id__any=part).delete()
    insert_rows(SharedStep, ["flow", "observation"], fresh)
    new_edges, edge_updates = [], []
    for (source, target, kind), (edge_id, flow_id, cross) in region.edges.items():
        if source not in memberships.flows or target not in memberships.flows:
            continue
        now_flow, now_cross = primary_of[target], memberships.flows[source].isdisjoint(memberships.flows[target])
        if edge_id is None:
            new_edges.append((source, target, kind, now_flow, now_cross))
        elif (flow_id, cross) != (now_flow, now_cross):
            edge_updates.append((edge_id, now_flow, now_cross))
    insert_rows(Edge, ["source", "target", "kind", "flow", "cross_flow"], new_edges)
    update_rows(Edge, ["flow", "cross_flow"], edge_updates)
    return changed


def absorb_flows(merged: dict[int, int]) -> None:
    """Flows that turned out to be part of others point at them (their members moved already)."""
    if not merged:
        return
    for part in chunks(sorted(merged)):
        FlowFacet.objects.filter(flow_id__any=part).delete()
    remap_column(Flow, "merged_into", merged)  # flows absorbed earlier follow to the new survivor
    now = timezone.now()
    update_rows(Flow, ["merged_into", "observation_count", "updated_at"], [(a, s, 0, now) for a, s in merged.items()])


def reattribute_events(edges: list[tuple[int, int, str]], batch: dict[int, Claimed]) -> None:
    """An event's service is the service of the span that emitted it, once that span is known."""
    emitted = [(source, target) for source, target, kind in edges if kind == EMITTED_BY]
    if not emitted:
        return
    outside = sorted({source for source, _ in emitted if source not in batch})
    services = {obs.id: obs.service for obs in batch.values() if obs.kind == Observation.Kind.SPAN}
    for part in chunks(outside):
        services.update(Observation.objects.filter(id__any=part, kind=Observation.Kind.SPAN).values_list("id", "service"))
    earlier: dict[str, list[int]] = defaultdict(list)
    for span_id, event_id in emitted:
        service = services.get(span_id)
        if not service:
            continue
        if event_id in batch:
            batch[event_id].service = service
        else:
            earlier[service].append(event_id)
    for service, event_ids in earlier.items():
        for part in chunks(event_ids):
            Observation.objects.filter(id__any=part, kind=Observation.Kind.EVENT).update(service=service)


def save_batch_observations(observations: list[Claimed]) -> None:
    rows = [(obs.id, obs.flow_id, obs.service, obs.business_key) for obs in observations]
    update_rows(Observation, ["flow", "service", "business_key"], rows)


SUMMARY_FIELDS = [
    "key",
    "type",
    "status",
    "started_at",
    "last_seen_at",
    "services",
    "steps",
    "root_trace_id",
    "observation_count",
    "error_count",
    "updated_at",
]
FacetRow = tuple[int, str, str, datetime]


def summary_row(
    flow_id: int, nodes: list[FlowNode], edges: list[tuple[int, int]], config: FlowsConfig, now: datetime
) -> tuple[tuple[Any, ...], list[FacetRow]]:
    """A flow's ``(id, *SUMMARY_FIELDS)`` row and its facet rows."""
    summary = summarize_flow(nodes, edges, config)
    started_at = ns_to_datetime(summary.started_ns)
    row = (
        flow_id,
        summary.key[:255],
        summary.type[:255],
        summary.status,
        started_at,
        ns_to_datetime(summary.last_seen_ns),
        summary.services,
        summary.steps,
        summary.root_trace_id,
        summary.observation_count,
        summary.error_count,
        now,
    )
    facets: list[FacetRow] = [(flow_id, FlowFacet.Facet.SERVICE, service[:255], started_at) for service in summary.services]
    facets += [(flow_id, FlowFacet.Facet.EVENT_TYPE, event_type[:255], started_at) for event_type in summary.event_types]
    return row, facets


def write_flow_summaries(
    flow_ids: Iterable[int],
    new_flows: set[int],
    config: FlowsConfig,
    in_hand: dict[int, tuple[list[FlowNode], list[tuple[int, int]]]] | None = None,
) -> None:
    """Key, type, status, timings, services, steps and facets of these flows, from their members
    (primary and shared) and the edges among them: inserted for new flows, updated for others.
    Flows ``in_hand`` (every member and edge known) are summarised without reading them back."""
    ids = sorted(set(flow_ids))
    if not ids:
        return
    known = in_hand or {}
    nodes: dict[int, list[FlowNode]] = defaultdict(list)
    pairs: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for flow_id, (flow_nodes, flow_edges) in known.items():
        nodes[flow_id], pairs[flow_id] = flow_nodes, flow_edges
    unknown = [flow_id for flow_id in ids if flow_id not in known]
    if unknown:
        for flow_id, *values in flow_members(unknown, *NODE_FIELDS):
            nodes[flow_id].append(FlowNode(*values))
        members = {flow_id: {node.id for node in nodes[flow_id]} for flow_id in unknown}
        for flow_id, found in edges_among(members).items():
            pairs[flow_id] = [(source, target) for source, target, _, _ in found]
    inserts: list[tuple[Any, ...]] = []
    updates: list[tuple[Any, ...]] = []
    facets: list[FacetRow] = []
    now = timezone.now()
    for flow_id in ids:
        if nodes[flow_id]:
            row, flow_facets = summary_row(flow_id, nodes[flow_id], pairs[flow_id], config, now)
            (inserts if flow_id in new_flows else updates).append(row)
            facets += flow_facets
    insert_rows(Flow, ["id", *SUMMARY_FIELDS, "merged_into"], [(*row, None) for row in inserts])
    update_rows(Flow, SUMMARY_FIELDS, updates)
    stale = [flow_id for flow_id in ids if flow_id not in new_flows]
    for part in chunks(stale):
        FlowFacet.objects.filter(flow_id__any=part).delete()
    insert_rows(FlowFacet, ["flow", "facet", "value", "started_at"], facets)


def new_flows_in_hand(
    region: Region, memberships: Memberships, new_flows: set[int]
) -> dict[int, tuple[list[FlowNode], list[tuple[int, int]]]]:
    """Nodes and edges of the flows this batch creates: all their members are in the region."""
    found: dict[int, tuple[list[FlowNode], list[tuple[int, int]]]] = {flow_id: ([], []) for flow_id in new_flows}
    for obs, flows in memberships.flows.items():
        for flow_id in flows & new_flows:
            found[flow_id][0].append(region.rows[obs].node)
    for source, target, _ in region.edges:
        cause_flows, effect_flows = memberships.flows.get(source), memberships.flows.get(target)
        if cause_flows is None or effect_flows is None:
            continue
        for flow_id in cause_flows:
            if flow_id in new_flows and flow_id in effect_flows:
                found[flow_id][1].append((source, target))
    return found


def refresh_flow_summaries(flow_ids: Iterable[int]) -> None:
    """Recompute key, type, status, timings, services, steps and facets of these flows."""
    write_flow_summaries(flow_ids, set(), flows_config())


def correlated_labels(region: Region) -> dict[int, frozenset[FlowLabel]]:
    """``assign_flows`` over the region, kept for the rows it decides: those of units read whole
    and the bordering rows with a key of their own."""
    members = [Member(row.id, row.unit, row.business_key) for row in region.rows.values()]
    labels = assign_flows(members, region.edges)
    return {obs: found for obs, found in labels.items() if region.rows[obs].unit in region.whole or region.rows[obs].business_key}


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """A batch allocates a few hundred thousand short-lived objects (rows, linkages, the region)
    that reference counting frees; left on, the cyclic collector would also walk every live
    object several times per batch looking for cycles there are none of (a third of a batch's
    CPU time in the correlation benchmark). It resumes when the batch ends."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@timed_batch
def correlate_batch(size: int) -> BatchOutcome:
    """Correlate up to ``size`` uncorrelated observations in one transaction."""
    outcome = BatchOutcome()
    with cyclic_gc_paused(), transaction.atomic():
        observations = claim_batch(size)
        if not observations:
            return outcome
        config = flows_config()
        batch = {obs.id: obs for obs in observations}
        linkages = {obs.id: linkage(obs, config) for obs in observations}
        for obs in observations:
            obs.business_key = linkages[obs.id].business_key
        take_correlation_lock()
        owners = claim_anchors(linkages)
        edges, pending = resolve_references(observations, linkages, owners)
        won = {name: owner for name, (owner, flow_id) in owners.items() if owner in batch and flow_id is None}
        earlier_edges, resolved = resolve_earlier_pending(won)
        edges += earlier_edges
        reattribute_events(edges, batch)
        region = load_region(batch, edges)
        labels = correlated_labels(region)
        shared_before = previous_shared(sorted(set(labels) - set(batch)))  # the batch shares nothing yet
        previous = {obs: region.rows[obs].flows() | shared_before.get(obs, set()) for obs in labels}
        assignment = assign_flow_ids(region, labels, previous)
        memberships = Memberships({obs: {assignment.flow_of[label] for label in found} for obs, found in labels.items()})
        changed = write_memberships(region, batch, memberships, previous, shared_before)
        # A new edge shows in both ends' flows (drawn, or as a cross-flow edge).
        changed |= {flow for edge in edges for end in edge[:2] for flow in memberships.flows.get(end, ())}
        insert_rows(PendingRef, ["anchor", "observation", "kind", "anchor_is_cause", "created_at"], pending)
        for part in chunks(resolved):
            PendingRef.objects.filter(id__any=part).delete()
        absorb_flows(assignment.merged)
        outcome.merged = assignment.merged
        outcome.flow_ids = changed - set(assignment.merged)
        in_hand = new_flows_in_hand(region, memberships, assignment.new_flows)
        write_flow_summaries(outcome.flow_ids, assignment.new_flows, config, in_hand)
        outcome.observation_ids = sorted(batch)
        flows_changed.send(
            sender=Flow, flow_ids=sorted(outcome.flow_ids), observation_ids=outcome.observation_ids, merged=dict(outcome.merged)
        )
    return outcome


def correlate_pending_observations(batch_size: int | None = None) -> int:
    """Correlate until nothing is pending; returns how many observations were correlated."""
    size = batch_size or settings.CORRELATION_BATCH_SIZE
    total = 0
    while True:
        outcome = correlate_batch(size)
        total += len(outcome.observation_ids)
        if not outcome.observation_ids:
            return total


def prune_expired_data(batch_size: int = 500, now: datetime | None = None) -> int:
    """Remove flows (with their observations and edges) whose last activity is older than
    ``RETENTION_DAYS``, in bounded transactions; returns how many flows were removed."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.RETENTION_DAYS)
    prune_span_logs(cutoff, batch_size)
    removed = 0
    while True:
        with transaction.atomic():
            expired = Flow.objects.filter(merged_into__isnull=True, last_seen_at__lt=cutoff).order_by("id")
            ids = list(expired.values_list("id", flat=True)[:batch_size])
            if not ids:
                return removed
            observation_ids = Observation.objects.filter(flow_id__in=ids).values("id")
            Anchor.objects.filter(observation_id__in=observation_ids).delete()
            SharedStep.objects.filter(observation_id__in=observation_ids).delete()
            SharedStep.objects.filter(flow_id__in=ids).delete()
            PendingRef.objects.filter(observation_id__in=observation_ids).delete()
            Edge.objects.filter(flow_id__in=ids).delete()
            Observation.objects.filter(flow_id__in=ids).delete()
            Flow.objects.filter(merged_into_id__in=ids).delete()
            Flow.objects.filter(id__in=ids).delete()
            removed += len(ids)


def prune_span_logs(cutoff: datetime, batch_size: int = 500) -> int:
    """Remove plain log records received before ``cutoff``, in bounded transactions."""
    removed = 0
    while True:
        with transaction.atomic():
            ids = list(SpanLog.objects.filter(received_at__lt=cutoff).order_by("id").values_list("id", flat=True)[:batch_size])
            if not ids:
                return removed
            SpanLog.objects.filter(id__in=ids).delete()
            removed += len(ids)
