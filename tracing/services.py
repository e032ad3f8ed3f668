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

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils import timezone

from tracing.bulk import allocate_ids, chunks, insert_rows, remap_column, update_rows
from tracing.correlation import EMITTED_BY, FlowNode, Linkage, edge_between, linkage, summarize_flow
from tracing.flowconfig import FlowsConfig, flows_config
from tracing.metrics import timed_batch
from tracing.models import Anchor, Edge, Flow, FlowFacet, Observation, PendingRef, SpanLog, anchor_digest
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


class UnionFind:
    """Components over observation nodes (``("o", id)``) and existing flows (``("f", id)``)."""

    def __init__(self) -> None:
        self.parent: dict[tuple[str, int], tuple[str, int]] = {}

    def find(self, node: tuple[str, int]) -> tuple[str, int]:
        parent = self.parent.setdefault(node, node)
        while parent != node:
            grandparent = self.parent[parent]
            self.parent[node] = grandparent
            node, parent = parent, grandparent
        return node

    def union(self, a: tuple[str, int], b: tuple[str, int]) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            self.parent[max(root_a, root_b)] = min(root_a, root_b)

    def groups(self) -> dict[tuple[str, int], list[tuple[str, int]]]:
        result: dict[tuple[str, int], list[tuple[str, int]]] = defaultdict(list)
        for node in list(self.parent):
            result[self.find(node)].append(node)
        return result


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


def node_of(observation_id: int, flow_id: int | None) -> tuple[str, int]:
    return ("f", flow_id) if flow_id is not None else ("o", observation_id)


def resolve_references(
    observations: list[Claimed],
    linkages: dict[int, Linkage],
    owners: dict[str, tuple[int, int | None]],
    components: UnionFind,
) -> tuple[list[tuple[int, int, str]], list[tuple[UUID, int, str, bool, datetime]]]:
    edges: list[tuple[int, int, str]] = []
    pending: list[tuple[UUID, int, str, bool, datetime]] = []
    now = timezone.now()
    for obs in observations:
        components.find(("o", obs.id))
        for reference in linkages[obs.id].references:
            owner = owners.get(reference.anchor)
            if owner is None:
                pending.append((anchor_digest(reference.anchor), obs.id, reference.kind, reference.anchor_is_cause, now))
                continue
            components.union(("o", obs.id), node_of(*owner))
            edge = edge_between(owner[0], obs.id, reference)
            if edge:
                edges.append(edge)
    return edges, pending


def resolve_earlier_pending(won: dict[str, int], components: UnionFind) -> tuple[list[tuple[int, int, str]], list[int]]:
    """Pending references of earlier observations that point at names this batch now owns."""
    edges: list[tuple[int, int, str]] = []
    resolved: list[int] = []
    owner_of = {anchor_digest(name): owner for name, owner in won.items()}
    for part in chunks(sorted(owner_of)):
        rows = PendingRef.objects.filter(anchor__any=part).values_list(
            "id", "anchor", "observation_id", "kind", "anchor_is_cause", "observation__flow_id"
        )
        for ref_id, anchor, observation_id, kind, anchor_is_cause, flow_id in rows:
            owner = owner_of[anchor]
            components.union(("o", owner), node_of(observation_id, flow_id))
            edges.append((owner, observation_id, kind) if anchor_is_cause else (observation_id, owner, kind))
            resolved.append(ref_id)
    return edges, resolved


def merge_flows(survivor_of: dict[int, int]) -> None:
    """Absorbed flows hand their observations and edges to their survivors and point at them:
    ``{absorbed flow id: surviving flow id}``, all merges of a batch in a few statements."""
    if not survivor_of:
        return
    remap_column(Observation, "flow", survivor_of)
    remap_column(Edge, "flow", survivor_of)
    for part in chunks(sorted(survivor_of)):
        FlowFacet.objects.filter(flow_id__any=part).delete()
    remap_column(Flow, "merged_into", survivor_of)  # flows absorbed earlier follow to the new survivor
    now = timezone.now()
    update_rows(Flow, ["merged_into", "observation_count", "updated_at"], [(a, s, 0, now) for a, s in survivor_of.items()])


def join_existing_flows(components: UnionFind, outcome: BatchOutcome) -> dict[tuple[str, int], int]:
    """The flow of every component that holds one (its oldest; the others are merged into it):
    root → flow id. Components of batch observations only get new flows (``create_flows``)."""
    flow_of_root: dict[tuple[str, int], int] = {}
    for root, members in components.groups().items():
        flows = sorted(node_id for kind, node_id in members if kind == "f")
        if not flows:
            continue
        survivor, absorbed = flows[0], flows[1:]
        outcome.merged.update(dict.fromkeys(absorbed, survivor))
        flow_of_root[root] = survivor
    merge_flows(outcome.merged)
    outcome.flow_ids.update(flow_of_root.values())
    return flow_of_root


def create_flows(
    members: dict[tuple[str, int], list[Claimed]], edges: list[tuple[int, int, str]], config: FlowsConfig
) -> dict[tuple[str, int], int]:
    """Write one flow, summary included, per component made only of this batch's observations:
    root → new flow id. Every observation and edge of such a flow is in hand, so its summary
    needs no read."""
    if not members:
        return {}
    root_of = {obs.id: root for root, group in members.items() for obs in group}
    edges_of: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
    for source, target, _ in edges:
        if (root := root_of.get(target)) is not None:
            edges_of[root].append((source, target))
    roots = sorted(members, key=lambda root: root[1])
    ids = allocate_ids(Flow, len(roots))
    now = timezone.now()
    rows, facets = [], []
    for flow_id, root in zip(ids, roots, strict=True):
        nodes = [
            FlowNode(o.id, o.kind, o.name, o.service, o.start_ns, o.end_ns, o.status, o.trace_id, o.business_key, o.event_id)
            for o in members[root]
        ]
        summary, flow_facets = summary_row(flow_id, nodes, edges_of[root], config, now)
        rows.append((*summary, None))
        facets += flow_facets
    insert_rows(Flow, ["id", *SUMMARY_FIELDS, "merged_into"], rows)
    insert_rows(FlowFacet, ["flow", "facet", "value", "started_at"], facets)
    return dict(zip(roots, ids, strict=True))


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


def refresh_flow_summaries(flow_ids: Iterable[int]) -> None:
    """Recompute key, type, status, timings, services, steps and facets of these flows."""
    ids = sorted(set(flow_ids))
    if not ids:
        return
    config = flows_config()
    nodes: dict[int, list[FlowNode]] = defaultdict(list)
    edges: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for part in chunks(ids):
        rows = Observation.objects.filter(flow_id__any=part).values_list(
            "flow_id", "id", "kind", "name", "service", "start_ns", "end_ns", "status", "trace_id", "business_key", "event_id"
        )
        for flow_id, *values in rows:
            nodes[flow_id].append(FlowNode(*values))  # type: ignore[arg-type]
        for flow_id, source, target in Edge.objects.filter(flow_id__any=part).values_list("flow_id", "source_id", "target_id"):
            edges[flow_id].append((source, target))
    updates: list[tuple[Any, ...]] = []
    facets: list[FacetRow] = []
    now = timezone.now()
    for flow_id in ids:
        if nodes[flow_id]:
            row, flow_facets = summary_row(flow_id, nodes[flow_id], edges[flow_id], config, now)
            updates.append(row)
            facets += flow_facets
    update_rows(Flow, SUMMARY_FIELDS, updates)
    for part in chunks(ids):
        FlowFacet.objects.filter(flow_id__any=part).delete()
    insert_rows(FlowFacet, ["flow", "facet", "value", "started_at"], facets)


@timed_batch
def correlate_batch(size: int) -> BatchOutcome:
    """Correlate up to ``size`` uncorrelated observations in one transaction."""
    outcome = BatchOutcome()
    with transaction.atomic():
        observations = claim_batch(size)
        if not observations:
            return outcome
        config = flows_config()
        batch = {obs.id: obs for obs in observations}
        linkages = {obs.id: linkage(obs, config) for obs in observations}
        take_correlation_lock()
        owners = claim_anchors(linkages)
        components = UnionFind()
        edges, pending = resolve_references(observations, linkages, owners, components)
        won = {name: owner for name, (owner, flow_id) in owners.items() if owner in batch and flow_id is None}
        earlier_edges, resolved = resolve_earlier_pending(won, components)
        edges += earlier_edges
        for obs in observations:
            obs.business_key = linkages[obs.id].business_key
        reattribute_events(edges, batch)
        flow_of_root = join_existing_flows(components, outcome)
        changed_flows = set(outcome.flow_ids)
        fresh: dict[tuple[str, int], list[Claimed]] = defaultdict(list)
        for obs in observations:
            root = components.find(("o", obs.id))
            if root not in flow_of_root:
                fresh[root].append(obs)
        created = create_flows(fresh, edges, config)
        flow_of_root.update(created)
        outcome.flow_ids.update(created.values())
        for obs in observations:
            obs.flow_id = flow_of_root[components.find(("o", obs.id))]
        save_batch_observations(observations)
        # Every edge has an end in this batch, and both ends now share that end's flow.
        flow_of_observation = {obs.id: obs.flow_id for obs in observations}
        insert_rows(
            Edge,
            ["source", "target", "kind", "flow"],
            [(s, t, k, flow_of_observation.get(t) or flow_of_observation.get(s)) for s, t, k in edges],
        )
        insert_rows(PendingRef, ["anchor", "observation", "kind", "anchor_is_cause", "created_at"], pending)
        for part in chunks(resolved):
            PendingRef.objects.filter(id__any=part).delete()
        refresh_flow_summaries(changed_flows)
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
