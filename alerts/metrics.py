"""Flows as people see them, open alerts and notification deliveries, on ``/metrics``.

Deliveries are counted in memory where they are attempted (a Celery worker, or the web process in
the embedded mode); flows, alerts and the delivery backlog are read at each scrape with bounded,
indexed queries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from django.db.models import Count
from django.utils import timezone
from prometheus_client.metrics_core import Metric

from alerts.models import Alert, Delivery
from alerts.status import ShownStatus, shown_status
from choreoscope.metrics import counter, gauge_family
from tracing.models import Flow

RECENT = timedelta(days=1)
MAX_FLOW_TYPES = 50  # flow types past this (by flow count) are summed as OTHER_TYPES: a bounded series count
OTHER_TYPES = "(other)"

DELIVERIES = counter(
    "choreoscope_notification_deliveries_total",
    "Notification attempts, by channel kind and outcome (delivered; retrying: failed, tried again later; failed: given up).",
    ["channel", "outcome"],
)
OUTCOME_OF_STATE: dict[str, str] = {
    Delivery.State.DELIVERED: "delivered",
    Delivery.State.PENDING: "retrying",
    Delivery.State.FAILED: "failed",
}


def observe_delivery(delivery: Delivery) -> None:
    """Count an attempt once ``record_attempt`` has decided the delivery's next state."""
    DELIVERIES.labels(delivery.channel.kind, OUTCOME_OF_STATE.get(delivery.state, delivery.state)).inc()


def recent_flow_counts(rows: Iterable[tuple[str, str, bool | None, int]]) -> dict[tuple[str, str], int]:
    """``(type, status, watch stuck or None, count)`` rows → ``{(type, shown status): count}``, with
    every status of every type present and the smallest types beyond ``MAX_FLOW_TYPES`` summed."""
    counts: Counter[tuple[str, str]] = Counter()
    for flow_type, status, stuck, n in rows:
        counts[(flow_type, shown_status(status, stuck is not None, bool(stuck)))] += n
    per_type: Counter[str] = Counter()
    for (flow_type, _), n in counts.items():
        per_type[flow_type] += n
    kept = {flow_type for flow_type, _ in per_type.most_common(MAX_FLOW_TYPES)}
    result = {(flow_type, status): 0 for flow_type in kept for status in ShownStatus.values}
    for (flow_type, status), n in counts.items():
        key = (flow_type if flow_type in kept else OTHER_TYPES, status)
        result[key] = result.get(key, 0) + n
    return result


def recent_flows(now: datetime) -> dict[tuple[str, str], int]:
    """Flows seen in the last day, by type and shown status: one grouped query that starts from
    the ``last_seen_at`` index, so its cost follows a day's traffic, not the retention."""
    rows = (
        Flow.objects.filter(merged_into__isnull=True, last_seen_at__gte=now - RECENT)
        .values_list("type", "status", "watch__stuck")
        .annotate(n=Count("id"))
        .order_by()
    )
    return recent_flow_counts(rows)


def gauges() -> Iterator[Metric]:
    yield gauge_family(
        "choreoscope_recent_flows",
        "Flows seen in the last 24 hours (last_seen_at), by flow type and the status people see "
        "(running, completed, stuck, failed).",
        ["type", "status"],
        sorted(recent_flows(timezone.now()).items()),
    )
    unresolved = Alert.objects.filter(state__in=Alert.UNRESOLVED).values_list("flow_type", "state").annotate(n=Count("id"))
    yield gauge_family(
        "choreoscope_open_alerts",
        "Alerts not yet resolved, by flow type and state (open, acknowledged).",
        ["flow_type", "state"],
        sorted(((flow_type, state), n) for flow_type, state, n in unresolved.order_by()),
    )
    due = Delivery.objects.filter(state__in=[Delivery.State.PENDING, Delivery.State.SENDING]).count()
    yield gauge_family(
        "choreoscope_notifications_due",
        "Notification deliveries waiting to be sent or being sent (retries included).",
        [],
        [((), due)],
    )
