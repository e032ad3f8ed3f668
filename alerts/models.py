"""Expectations (declared and learned), the watch over flows that still expect something, alerts
about stuck flows, and notification channels with their delivery log.

Who writes what: correlation (``tracing``) writes ``Flow.status`` from the observations alone
(running, completed, failed). Whether a flow is late is this app's call, kept here and nowhere
else: ``FlowWatch`` (its deadline, and once it passed, that it is stuck and what it misses) and
``FlowFlip`` (every change into and out of stuck, as rows). ``alerts.status`` combines the two
into the status people see."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from alerts.declared import admin_deadline, admin_expectation
from tracing.flowconfig import Where
from tracing.models import Flow


class DeclaredFlow(models.Model):
    """A flow type's declared shape, edited in the admin (the flow definitions file declares the
    same things; for a flow type present in both, these rows win)."""

    flow_type = models.CharField(max_length=255, unique=True)
    end_steps = models.JSONField(default=list, blank=True, help_text='Step names that end the flow, e.g. ["ShipmentPrepared"].')
    deadline_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="The flow must reach an end step within this many seconds of its start."
    )

    class Meta:
        ordering = ["flow_type"]

    def __str__(self) -> str:
        return self.flow_type

    def clean(self) -> None:
        """Steps and deadline checked by the parsers of the flow definitions file."""
        try:
            admin_deadline(self.end_steps, self.deadline_seconds, Where(""))
        except ImproperlyConfigured as error:
            raise ValidationError(str(error)) from None


class DeclaredExpectation(models.Model):
    """After step ``after``, expect each of ``steps`` within ``within_seconds``."""

    flow = models.ForeignKey(DeclaredFlow, on_delete=models.CASCADE, related_name="expectations")
    after = models.CharField(max_length=255, help_text='A step name, optionally "service/StepName".')
    steps = models.JSONField(help_text='Step names expected to follow, e.g. ["EmailSent", "rewards/PointsCreated"].')
    within_seconds = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["flow", "after"], name="declared_expectation_unique")]

    def __str__(self) -> str:
        return f"after {self.after} expect {', '.join(self.steps)} within {self.within_seconds}s"

    def clean(self) -> None:
        """Steps and time checked by the parsers of the flow definitions file."""
        try:
            admin_expectation(self.after, self.steps, self.within_seconds, Where(""))
        except ImproperlyConfigured as error:
            raise ValidationError(str(error)) from None


class LearnedModel(models.Model):
    """The latest flow model learned for a flow type (``alerts.flowmodel.model_to_dict``)."""

    flow_type = models.CharField(max_length=255, unique=True)
    flow_count = models.PositiveIntegerField()
    graph = models.JSONField()
    learned_at = models.DateTimeField(default=timezone.now)
    changed_at = models.DateTimeField(default=timezone.now, help_text="When the expectations derived from it last changed.")

    class Meta:
        ordering = ["flow_type"]

    def __str__(self) -> str:
        return f"{self.flow_type} ({self.flow_count} flows)"


class FlowWatch(models.Model):
    """A flow that still expects a step: when the earliest one is due (``deadline``), and, once it
    passed, that the flow is stuck and which steps it misses. A flow expecting nothing has no
    row. Written only by ``alerts.services``: deadlines on every change of the flow, the stuck
    claim by the periodic scan (a conditional update, so two scanners never claim one flow)."""

    flow = models.OneToOneField(Flow, primary_key=True, on_delete=models.CASCADE, related_name="watch")
    deadline = models.DateTimeField(null=True, blank=True, help_text="When the earliest expected step is due.")
    stuck = models.BooleanField(default=False)
    missing = models.JSONField(default=list, help_text="Overdue steps, filled when the flow is stuck.")
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        # "Which flows are late?" is one range on this index.
        indexes = [models.Index(fields=["deadline"], name="watch_due", condition=Q(stuck=False))]

    def __str__(self) -> str:
        return f"flow {self.flow_id}: {'stuck' if self.stuck else 'due'} {self.deadline}"


class FlowFlip(models.Model):
    """A flow became stuck, or stopped being stuck: its history, kept rather than overwritten."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="flips", db_index=False)
    at = models.DateTimeField(default=timezone.now)
    old_status = models.CharField(max_length=16)
    new_status = models.CharField(max_length=16)
    missing = models.JSONField(default=list, help_text="What the flow missed when it became stuck.")

    class Meta:
        indexes = [models.Index(fields=["flow", "at"], name="flip_flow_time")]
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"flow {self.flow_id}: {self.old_status} → {self.new_status} at {self.at}"


class Alert(models.Model):
    """One per stuck flow. Resolves itself when the flow stops missing anything."""

    class State(models.TextChoices):
        OPEN = "open"
        ACKNOWLEDGED = "acknowledged"
        RESOLVED = "resolved"

    UNRESOLVED = (State.OPEN, State.ACKNOWLEDGED)

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="+")
    flow_key = models.CharField(max_length=255)
    flow_type = models.CharField(max_length=255)
    # The first missing step, by which alerts are grouped into incidents.
    step = models.CharField(max_length=255)
    service = models.CharField(max_length=255, blank=True)
    after = models.CharField(max_length=255, blank=True)
    due_at = models.DateTimeField()
    missing = models.JSONField(default=list)
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)
    opened_at = models.DateTimeField(default=timezone.now)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # The database itself refuses a second unresolved alert for one flow.
            models.UniqueConstraint(fields=["flow"], condition=~Q(state="resolved"), name="alert_one_unresolved_per_flow"),
        ]
        indexes = [
            models.Index(fields=["state", "-opened_at", "-id"], name="alert_state_newest"),
            models.Index(fields=["-opened_at", "-id"], name="alert_newest"),
        ]

    def __str__(self) -> str:
        return f"{self.flow_type} {self.flow_key}: {self.step} missing"


class NotificationChannel(models.Model):
    class Kind(models.TextChoices):
        WEBHOOK = "webhook"
        EMAIL = "email"

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    target = models.CharField(max_length=2000, help_text="The webhook URL, or comma-separated e-mail addresses.")
    flow_types = models.JSONField(default=list, blank=True, help_text="Only alerts about these flow types (empty: all).")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def wants(self, flow_type: str) -> bool:
        return self.enabled and (not self.flow_types or flow_type in self.flow_types)


class Delivery(models.Model):
    """One notification to one channel, and the log of attempts to deliver it."""

    class Event(models.TextChoices):
        OPENED = "opened"
        RESOLVED = "resolved"
        TEST = "test"

    class State(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        DELIVERED = "delivered"
        FAILED = "failed"

    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="deliveries")
    alert = models.ForeignKey(Alert, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=16, choices=Event.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # A claim older than this is considered abandoned (its worker died) and is tried again.
    claimed_until = models.DateTimeField(null=True, blank=True)
    log = models.JSONField(default=list, help_text="One entry per attempt: at, outcome, status code or error.")
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["alert", "channel", "event"], condition=Q(alert__isnull=False), name="delivery_once"),
        ]
        indexes = [models.Index(fields=["next_attempt_at"], name="delivery_due", condition=Q(state__in=["pending", "sending"]))]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.event} → {self.channel} ({self.state})"
