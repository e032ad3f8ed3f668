"""Reads of the alerts app, for the pages, the JSON API and the live socket."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, Max, Min, Q, QuerySet
from django.utils.dateparse import parse_datetime

from alerts.flowmodel import model_from_dict, model_to_dict
from alerts.models import Alert, Delivery, LearnedModel, NotificationChannel
from alerts.services import declared_rules, learned_rules

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class InvalidAlertQuery(ValueError):
    """A filter or cursor a person sent that we cannot use; the message says how to fix it."""


def alert_json(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "state": alert.state,
        "flow_id": alert.flow_id,
        "flow_key": alert.flow_key,
        "flow_type": alert.flow_type,
        "step": alert.step,
        "service": alert.service,
        "after": alert.after,
        "due_at": alert.due_at.isoformat(),
        "missing": alert.missing,
        "opened_at": alert.opened_at.isoformat(),
        "acknowledged_at": alert.acknowledged_at.isoformat() if alert.acknowledged_at else None,
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
    }


def parse_state(raw: str | None) -> str | None:
    if not raw:
        return None
    if raw not in Alert.State.values:
        raise InvalidAlertQuery(f"'state' must be one of {', '.join(Alert.State.values)}, not {raw!r}.")
    return raw


def parse_limit(raw: str | None) -> int:
    if not raw:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise InvalidAlertQuery(f"'limit' must be a whole number from 1 to {MAX_LIMIT}, not {raw!r}.") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidAlertQuery(f"'limit' must be from 1 to {MAX_LIMIT}, not {limit}.")
    return limit


def encode_cursor(alert: Alert) -> str:
    raw = json.dumps([alert.opened_at.isoformat(), alert.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        opened, alert_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        opened_at = parse_datetime(opened)
        if opened_at is None or not isinstance(alert_id, int):
            raise ValueError(cursor)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidAlertQuery("'cursor' is not one this server handed out; start again without it.") from None
    return opened_at, alert_id


def alert_list(state: str | None = None, cursor: str | None = None, limit: int = DEFAULT_LIMIT) -> tuple[list[Alert], str | None]:
    """One page of alerts, newest first, and the next page's cursor (None on the last)."""
    alerts: QuerySet[Alert] = Alert.objects.all()
    if state:
        alerts = alerts.filter(state=state)
    if cursor:
        opened_at, alert_id = decode_cursor(cursor)
        alerts = alerts.filter(Q(opened_at__lt=opened_at) | Q(opened_at=opened_at, id__lt=alert_id))
    page = list(alerts.order_by("-opened_at", "-id")[: limit + 1])
    if len(page) > limit:
        return page[:limit], encode_cursor(page[limit - 1])
    return page, None


def alert_groups() -> list[dict[str, Any]]:
    """Unresolved alerts as incidents: one row per flow type and missing step, with counts, so a
    storm of 500 orders stuck at one step reads as one line."""
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
    return [
        {
            **{k: row[k] for k in ("flow_type", "step", "service", "after", "count", "open", "newest_id")},
            "acknowledged": row["count"] - row["open"],
            "first_opened": row["first_opened"].isoformat(),
            "last_opened": row["last_opened"].isoformat(),
        }
        for row in rows
    ]


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


def learned_models() -> list[dict[str, Any]]:
    """Each learned model, its transitions marked with whether they are expected and their
    deadline, beside the expectations declared for the same flow type (which win)."""
    declared = declared_rules()
    result = []
    for stored in LearnedModel.objects.order_by("flow_type"):
        model = model_from_dict(stored.graph)
        expected = {(e.after.service, e.after.name, e.step.service, e.step.name): e.within_seconds for e in learned_rules(model)}
        graph = model_to_dict(model)
        for t in graph["transitions"]:
            within = expected.get((t["source"]["service"], t["source"]["name"], t["target"]["service"], t["target"]["name"]))
            t["expected"], t["deadline_seconds"] = within is not None, within
        rules = declared.get(stored.flow_type)
        result.append(
            {
                "flow_type": stored.flow_type,
                "flow_count": stored.flow_count,
                "learned_at": stored.learned_at.isoformat(),
                "graph": graph,
                "declared": [
                    {"after": e.after.name, "step": e.step.name, "service": e.step.service, "within_seconds": e.within_seconds}
                    for e in (rules.expectations if rules else ())
                ],
            }
        )
    return result
