"""Reads of the alerts app, for the pages, the JSON API and the live socket: plain, validated
arguments in, model rows and dataclasses out (``dashboard.api`` parses requests and shapes JSON)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Min, Q, QuerySet

from alerts import declared
from alerts.expectations import Expectation, Rules, learned_expectations
from alerts.flowmodel import FlowModel, model_from_dict, model_to_dict
from alerts.models import Alert, DeclaredFlow, Delivery, LearnedModel, NotificationChannel

# A place in the newest-first order of alerts: (opened_at, id) of the last alert already seen.
Position = tuple[datetime, int]


def alert_page(state: str | None = None, after: Position | None = None, limit: int = 50) -> list[Alert]:
    """Up to ``limit`` alerts after ``after``, newest first, optionally of one state."""
    alerts: QuerySet[Alert] = Alert.objects.all()
    if state:
        alerts = alerts.filter(state=state)
    if after is not None:
        opened_at, alert_id = after
        alerts = alerts.filter(Q(opened_at__lt=opened_at) | Q(opened_at=opened_at, id__lt=alert_id))
    return list(alerts.order_by("-opened_at", "-id")[:limit])


def alert_position(alert: Alert) -> Position:
    return alert.opened_at, alert.id


@dataclass(frozen=True)
class AlertGroup:
    """Unresolved alerts of one flow type missing one step: an incident."""

    flow_type: str
    step: str
    service: str
    after: str
    count: int
    open: int
    newest_id: int
    first_opened: datetime
    last_opened: datetime

    @property
    def acknowledged(self) -> int:
        return self.count - self.open


def alert_groups() -> list[AlertGroup]:
    """Unresolved alerts as incidents, largest first, so a storm of 500 orders stuck at one step
    reads as one line."""
    rows = (
        Alert.objects.filter(state__in=Alert.UNRESOLVED)
        .values("flow_type", "step", "service", "after")
        .annotate(
            count=Count("id"),
            open=Count("id", filter=Q(state=Alert.State.OPEN)),
            first_opened=Min("opened_at"),
            last_opened=Max("opened_at"),
            newest_id=Max("id"),
        )
        .order_by("-count", "flow_type", "step")
    )
    return [AlertGroup(**row) for row in rows]


def alert_counts() -> dict[str, int]:
    by_state = dict(Alert.objects.values_list("state").annotate(n=Count("id")))
    return {state: by_state.get(state, 0) for state in Alert.State.values}


@dataclass(frozen=True)
class ChannelRow:
    channel: NotificationChannel
    last: Delivery | None


def channel_rows() -> list[ChannelRow]:
    channels = list(NotificationChannel.objects.all())
    rows = []
    for channel in channels:
        rows.append(ChannelRow(channel, channel.deliveries.order_by("-created_at").first()))
    return rows


def declared_rules() -> dict[str, Rules]:
    """File first, then the admin's rows, which win for a flow type declared in both."""
    rules = declared.rules_from_flows_file()
    return rules | declared.rules_from_admin(list(DeclaredFlow.objects.prefetch_related("expectations")))


def learned_rules(model: FlowModel) -> list[Expectation]:
    return learned_expectations(
        model, expect_share=settings.EXPECT_SHARE, factor=settings.STUCK_FACTOR, floor_seconds=settings.STUCK_FLOOR_SECONDS
    )


@dataclass(frozen=True)
class LearnedModelReading:
    """A learned model as the pages show it: its graph (``model_to_dict``) with each transition
    marked ``expected`` and its ``deadline_seconds``, beside the declared expectations of the same
    flow type (which win)."""

    flow_type: str
    flow_count: int
    learned_at: datetime
    graph: dict[str, Any]
    declared: tuple[Expectation, ...]


def learned_models() -> list[LearnedModelReading]:
    declared_by_type = declared_rules()
    result = []
    for stored in LearnedModel.objects.order_by("flow_type"):
        model = model_from_dict(stored.graph)
        expected = {(e.after.service, e.after.name, e.step.service, e.step.name): e.within_seconds for e in learned_rules(model)}
        graph = model_to_dict(model)
        for t in graph["transitions"]:
            within = expected.get((t["source"]["service"], t["source"]["name"], t["target"]["service"], t["target"]["name"]))
            t["expected"], t["deadline_seconds"] = within is not None, within
        rules = declared_by_type.get(stored.flow_type)
        declared_here = rules.expectations if rules else ()
        result.append(LearnedModelReading(stored.flow_type, stored.flow_count, stored.learned_at, graph, declared_here))
    return result
