"""The status people see for a flow: correlation's word (``Flow.status``: running, completed,
failed, from the observations alone), unless this app's watch over the flow says more:

- a flow past its deadline is ``stuck`` until what it misses arrives;
- a flow that reached an end step while an expected reaction is still outstanding (in a fan-out
  nobody reacts last) is ``running`` until it arrives.

``shown_status`` is the rule; ``flow_states``, ``filter_by_status`` and ``status_counts`` apply it
to flows and to querysets, so the pages, the API and the live views all say the same thing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import models
from django.db.models import Count, Q, QuerySet

from alerts.models import FlowFlip, FlowWatch
from tracing.models import Flow


class ShownStatus(models.TextChoices):
    RUNNING = "running"
    COMPLETED = "completed"
    STUCK = "stuck"
    FAILED = "failed"


@dataclass(frozen=True)
class FlowState:
    """What alerts adds to a flow: its shown status, its deadline and what it misses."""

    status: str
    stuck_after: datetime | None = None
    missing: list[dict[str, Any]] = field(default_factory=list)


def shown_status(flow_status: str, watched: bool, stuck: bool) -> str:
    if flow_status == Flow.Status.FAILED or not watched:
        return flow_status
    return ShownStatus.STUCK if stuck else ShownStatus.RUNNING


def state_of(flow_status: str, watch: FlowWatch | None) -> FlowState:
    if watch is None:
        return FlowState(flow_status)
    status = shown_status(flow_status, True, watch.stuck)
    return FlowState(status, watch.deadline, list(watch.missing) if watch.stuck else [])


def flow_states(flows: Iterable[Flow]) -> dict[int, FlowState]:
    """Each flow's state, by id: one query per list of flows, not one per flow."""
    status_of = {flow.id: flow.status for flow in flows}
    watches = {w.flow_id: w for w in FlowWatch.objects.filter(flow_id__in=list(status_of))}
    return {flow_id: state_of(status, watches.get(flow_id)) for flow_id, status in status_of.items()}


def status_condition(status: str, prefix: str = "") -> Q:
    """Flows whose shown status is ``status``, as seen from ``prefix`` (e.g. ``flow__`` for
    observations)."""

    def on(field: str, value: object) -> Q:
        return Q(**{f"{prefix}{field}": value})

    stuck = on("watch__stuck", True)
    if status == ShownStatus.STUCK:
        return stuck & ~on("status", Flow.Status.FAILED)
    if status == ShownStatus.RUNNING:
        waiting = on("status", Flow.Status.COMPLETED) & on("watch__isnull", False)
        return (on("status", Flow.Status.RUNNING) | waiting) & ~stuck
    if status == ShownStatus.COMPLETED:
        return on("status", Flow.Status.COMPLETED) & on("watch__isnull", True)
    return on("status", status)


def filter_by_status(flows: QuerySet[Flow], status: str) -> QuerySet[Flow]:
    return flows.filter(status_condition(status))


def status_counts(flows: QuerySet[Flow]) -> dict[str, int]:
    """How many of these flows people see in each status, in one grouped query."""
    counts = dict.fromkeys(ShownStatus.values, 0)
    for status, stuck, n in flows.values_list("status", "watch__stuck").annotate(n=Count("id")).order_by():
        counts[shown_status(status, stuck is not None, bool(stuck))] += n
    return counts


def flips_of(flow_id: int) -> list[FlowFlip]:
    """A flow's history of becoming stuck and recovering, oldest first."""
    return list(FlowFlip.objects.filter(flow_id=flow_id).order_by("at", "id"))
