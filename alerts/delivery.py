"""Notification delivery: one delivery row per alert and interested channel, sent after commit
by whichever worker claims it first (a conditional update), retried with backoff, every attempt
logged on the row."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from alerts.metrics import observe_delivery
from alerts.models import Alert, Delivery, NotificationChannel
from alerts.notifiers import Outcome, notifier_for
from alerts.payloads import alert_payload, test_payload
from alerts.tasks import deliver_notifications
from choreoscope import dispatch

log = logging.getLogger(__name__)

MAX_DELIVERY_ATTEMPTS = 6
CLAIM_SECONDS = 60


def queue_deliveries(alerts: Sequence[Alert], event: str) -> None:
    """One delivery per alert and interested channel; sent after commit, never inline."""
    channels = list(NotificationChannel.objects.filter(enabled=True))
    rows = [Delivery(channel=c, alert=a, event=event) for a in alerts for c in channels if c.wants(a.flow_type)]
    if rows:
        Delivery.objects.bulk_create(rows, ignore_conflicts=True)
        transaction.on_commit(kick_delivery)


def kick_delivery() -> None:
    """Ask for delivery soon, off the caller's path: a slow webhook must not hold up the scan or
    the ingestion request whose correlation resolved an alert. Never fails; if the kick is lost,
    the periodic job delivers."""
    dispatch.kick(deliver_notifications)


def backoff_seconds(attempts: int) -> int:
    """10 s, 30 s, 90 s, 4.5 min, 13.5 min after the 1st..5th failed attempt."""
    return int(10 * 3 ** max(0, attempts - 1))


def claim_delivery(delivery_id: int, now: datetime) -> bool:
    due = Q(state=Delivery.State.PENDING) | Q(state=Delivery.State.SENDING, claimed_until__lt=now)
    return bool(
        Delivery.objects.filter(due, id=delivery_id, next_attempt_at__lte=now).update(
            state=Delivery.State.SENDING, claimed_until=now + timedelta(seconds=CLAIM_SECONDS), attempts=F("attempts") + 1
        )
    )


def deliver_due_notifications(now: datetime | None = None, limit: int = 100) -> int:
    """Send what is due; returns how many deliveries this call attempted."""
    now = now or timezone.now()
    due = Q(state=Delivery.State.PENDING) | Q(state=Delivery.State.SENDING, claimed_until__lt=now)
    ids = list(
        Delivery.objects.filter(due, next_attempt_at__lte=now).order_by("next_attempt_at").values_list("id", flat=True)[:limit]
    )
    attempted = 0
    for delivery_id in ids:
        if claim_delivery(delivery_id, now):
            attempted += 1
            attempt_delivery(Delivery.objects.select_related("channel", "alert").get(id=delivery_id))
    return attempted


def delivery_payload(delivery: Delivery) -> dict[str, Any]:
    if delivery.alert is None:
        return test_payload(delivery.channel.name)
    return alert_payload(delivery.alert, delivery.event)


def attempt_delivery(delivery: Delivery) -> Outcome:
    try:
        outcome = notifier_for(delivery.channel.kind).send(delivery.channel, delivery_payload(delivery), delivery.id)
    except Exception as error:  # a notifier bug must not stop the other deliveries
        log.exception("delivery %s failed unexpectedly", delivery.id)
        outcome = Outcome(False, f"{type(error).__name__}: {error}")
    record_attempt(delivery, outcome, timezone.now())
    return outcome


def record_attempt(delivery: Delivery, outcome: Outcome, now: datetime) -> None:
    delivery.log = [*delivery.log, {"at": now.isoformat(), "ok": outcome.ok, "detail": outcome.detail[:500]}]
    if outcome.ok:
        delivery.state, delivery.delivered_at = Delivery.State.DELIVERED, now
    elif delivery.attempts >= MAX_DELIVERY_ATTEMPTS or delivery.event == Delivery.Event.TEST:
        delivery.state = Delivery.State.FAILED
    else:
        delivery.state, delivery.next_attempt_at = (
            Delivery.State.PENDING,
            now + timedelta(seconds=backoff_seconds(delivery.attempts)),
        )
    delivery.claimed_until = None
    delivery.save(update_fields=["log", "state", "delivered_at", "next_attempt_at", "claimed_until"])
    observe_delivery(delivery)


def send_test_notification(channel: NotificationChannel) -> Delivery:
    """The admin's test button: one attempt now, logged like any delivery."""
    delivery = Delivery.objects.create(channel=channel, event=Delivery.Event.TEST, state=Delivery.State.SENDING, attempts=1)
    attempt_delivery(delivery)
    return delivery
