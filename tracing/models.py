"""The causal model: observations (events and spans), flows, the edges between observations,
and the anchors and pending references that let correlation work out of order."""

from __future__ import annotations

import hashlib
import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

# Foreign keys of the high-volume tables carry no database constraint (``db_constraint=False``):
# correlation, their only writer, keeps them consistent under its lock, and retention deletes
# dependents explicitly. On PostgreSQL each constraint is a trigger per written row, checked at
# commit; across a batch's observation updates, edges, anchors and facets that was a fifth of
# correlation's time (``bench correlation``). Django still follows and cascades the relations.


class Flow(models.Model):
    """One business transaction: a connected component of observations."""

    class Status(models.TextChoices):
        """What the observations say. Whether a flow is late (stuck, or completed but still
        owing an expected reaction) is the alerts app's call, kept in its own tables."""

        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"

    key = models.CharField(max_length=255, help_text="Business key (e.g. order-1042), else the root trace id.")
    type = models.CharField(max_length=255, blank=True, help_text="Configured flow type, else the root event's type.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    services = models.JSONField(default=list, help_text="Services in causal order of first appearance.")
    steps = models.JSONField(default=list, help_text="A compact summary of the flow's steps, in causal order.")
    observation_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    root_trace_id = models.CharField(max_length=32, blank=True)
    # A flow absorbed by another when a late observation joined them; kept so old links redirect.
    merged_into = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["-started_at", "-id"], name="flow_newest"),
            models.Index(fields=["key"], name="flow_key"),
            models.Index(fields=["status", "-started_at", "-id"], name="flow_status_newest"),
            models.Index(fields=["type", "-started_at", "-id"], name="flow_type_newest"),
            models.Index(fields=["last_seen_at"], name="flow_last_seen"),
        ]

    def __str__(self) -> str:
        return f"{self.type or 'flow'} {self.key}"


class Observation(models.Model):
    """A business event or a span, as received. ``flow`` is null until correlated."""

    class Kind(models.TextChoices):
        SPAN = "span"
        EVENT = "event"

    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=5, choices=Kind.choices)
    identity = models.CharField(max_length=80)
    # Indexed by ``obs_flow_time``, whose first column it is.
    flow = models.ForeignKey(
        Flow, null=True, blank=True, on_delete=models.SET_NULL, related_name="observations", db_index=False, db_constraint=False
    )
    name = models.CharField(max_length=255)
    service = models.CharField(max_length=255)
    start_ns = models.BigIntegerField()
    end_ns = models.BigIntegerField(null=True, blank=True)
    trace_id = models.CharField(max_length=32, blank=True)
    span_id = models.CharField(max_length=16, blank=True)
    parent_span_id = models.CharField(max_length=16, blank=True)
    span_kind = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=5, default="unset")
    status_message = models.TextField(blank=True)
    event_source = models.TextField(blank=True)
    event_id = models.TextField(blank=True)
    # Set by correlation: the business key this observation carries, if any (e.g. order-1042).
    business_key = models.CharField(max_length=255, blank=True, default="", db_default="")
    attributes = models.JSONField(default=dict)
    resource = models.JSONField(default=dict)
    detail = models.JSONField(default=dict)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        # Every observation is written twice (stored, then correlated), and each index costs
        # both writes: these are the ones a query uses. (A constraint rather than
        # ``unique=True``, which would add a second, pattern-matching index on PostgreSQL.)
        constraints = [models.UniqueConstraint(fields=["identity"], name="obs_identity_unique")]
        indexes = [
            models.Index(fields=["flow", "start_ns"], name="obs_flow_time"),
            models.Index(fields=["id"], name="obs_uncorrelated", condition=Q(flow__isnull=True)),
            models.Index(fields=["received_at"], name="obs_received"),
            # A trace is one transaction: correlation reads a trace's observations as a unit.
            models.Index(fields=["trace_id"], name="obs_trace", condition=~Q(trace_id="")),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.name} ({self.service})"


class FlowFacet(models.Model):
    """A value a flow can be filtered by (a service it touched, an event type it holds), kept
    beside the flow so that "newest flows through service X" is one index range, not a scan of
    observations. Rewritten with the flow's summary."""

    class Facet(models.TextChoices):
        SERVICE = "service"
        EVENT_TYPE = "event_type"

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="facets", db_index=False, db_constraint=False)
    facet = models.CharField(max_length=16, choices=Facet.choices)
    value = models.CharField(max_length=255)
    # The flow's started_at, copied so that a filtered list walks this index newest first and
    # stops after one page, however rare the value is.
    started_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["flow", "facet", "value"], name="facet_unique")]
        indexes = [models.Index(fields=["facet", "value", "-started_at", "-flow"], name="facet_newest")]

    def __str__(self) -> str:
        return f"{self.facet}={self.value}"


class SharedStep(models.Model):
    """One more flow an observation serves besides its primary one (``Observation.flow``): a
    batch consumer's span, the spans under it, an aggregate event caused by several orders. The
    observation is stored once and shown in each of its flows."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False)
    observation = models.ForeignKey(Observation, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["flow", "observation"], name="shared_step_unique")]
        indexes = [models.Index(fields=["observation"], name="shared_step_observation")]

    def __str__(self) -> str:
        return f"{self.observation_id} also in {self.flow_id}"


class Edge(models.Model):
    """Cause → effect between two observations: drawn in every flow both ends serve, and a
    cross-flow edge (``cross_flow``) when they serve no flow in common."""

    class Kind(models.TextChoices):
        CAUSED_BY = "caused_by"
        EMITTED_BY = "emitted_by"
        CHILD_OF = "child_of"
        FOLLOWS_FROM = "follows_from"
        DELIVERS = "delivers"

    # Indexed by the constraint and indexes below, not each on its own.
    flow = models.ForeignKey(Flow, null=True, on_delete=models.CASCADE, related_name="edges", db_index=False, db_constraint=False)
    source = models.ForeignKey(Observation, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False)
    target = models.ForeignKey(Observation, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # True when source and target serve no flow in common (an order's event causing a shipment).
    cross_flow = models.BooleanField(default=False, db_default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "target", "kind"], name="edge_unique")]
        indexes = [models.Index(fields=["flow"], name="edge_flow"), models.Index(fields=["target"], name="edge_target")]

    def __str__(self) -> str:
        return f"{self.source_id} {self.kind} {self.target_id}"


def anchor_digest(name: str) -> uuid.UUID:
    """The 128-bit digest an anchor name is stored and looked up by (MD5, as a UUID; PostgreSQL's
    ``md5(name)::uuid`` gives the same). Names are long random strings (trace and span ids,
    event ids); their 16-byte digests make smaller index entries (here about a fifth smaller,
    and one index fewer as the primary key) that compare with one memcmp, and correlation
    spends much of its locked time looking names up and claiming them. A collision among 2^128
    values is not a practical concern."""
    return uuid.UUID(bytes=hashlib.md5(name.encode(), usedforsecurity=False).digest())


class Anchor(models.Model):
    """A name an observation can be referred to by: its span, its event id, a message id, a
    business key (``tracing.correlation`` makes the names). The first observation to claim a
    name owns it. Stored by digest (``anchor_digest``)."""

    digest = models.UUIDField(primary_key=True)
    observation = models.ForeignKey(Observation, on_delete=models.CASCADE, related_name="+", db_constraint=False)

    def __str__(self) -> str:
        return str(self.digest)


class PendingRef(models.Model):
    """A reference to an anchor not yet seen, resolved into an edge when its target arrives."""

    anchor = models.UUIDField(help_text="The digest of the anchor name it waits for (anchor_digest).")
    observation = models.ForeignKey(Observation, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    kind = models.CharField(max_length=16, choices=Edge.Kind.choices)
    # True when the anchored observation is the cause and ``observation`` the effect.
    anchor_is_cause = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        # Also the index for looking pending references up by anchor (its first column).
        constraints = [models.UniqueConstraint(fields=["anchor", "observation", "kind"], name="pending_unique")]

    def __str__(self) -> str:
        return f"{self.observation_id} → {self.anchor}"


class ContractDocument(models.Model):
    """An AsyncAPI 3 document uploaded in the admin, beside those ``CHOREOSCOPE_ASYNCAPI`` names
    (``tracing.contracts``); checked by ``tracing.asyncapi`` before it is saved."""

    name = models.CharField(max_length=255, unique=True, help_text="A label, such as the file's name.")
    document = models.TextField(help_text="The AsyncAPI 3.0 document, YAML or JSON.")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name


class SpanLog(models.Model):
    """A plain log record shown on the span that emitted it (OTLP logs without an event name).
    Bounded: at most ``SPAN_LOGS_PER_SPAN`` per span are kept (the first to arrive), a body is cut
    to ``SPAN_LOG_BODY_CHARS``, and retention removes them after ``RETENTION_DAYS``, like the
    observations. Keyed by the span's ids rather than its row, so a record may arrive before its
    span."""

    id = models.BigAutoField(primary_key=True)
    digest = models.CharField(max_length=32)
    trace_id = models.CharField(max_length=32)
    span_id = models.CharField(max_length=16)
    time_ns = models.BigIntegerField()
    service = models.CharField(max_length=255)
    severity = models.CharField(max_length=32, blank=True)
    body = models.TextField(blank=True)
    attributes = models.JSONField(default=dict)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["digest"], name="spanlog_digest_unique")]
        indexes = [
            models.Index(fields=["trace_id", "span_id", "time_ns"], name="spanlog_span_time"),
            models.Index(fields=["received_at"], name="spanlog_received"),
        ]

    def __str__(self) -> str:
        return f"{self.severity or 'log'} in span {self.span_id}: {self.body[:60]}"
