"""Alerts, live: ``/ws/alerts/`` and the publisher that feeds it.

``alerts.signals.alerts_changed`` fires after the commit that opened, acknowledged or resolved
alerts; ``publish_alert_changes`` sends the changed alerts with the fresh incident groups and
counts to the alerts group. The consumer follows the protocol of ``dashboard.consumers``: a
snapshot on connect, then numbered, coalesced deltas.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from alerts.models import Alert
from alerts.selectors import alert_counts, alert_groups
from dashboard import broadcast
from dashboard.api.serializers import serialize_alert, serialize_alert_group
from dashboard.consumers import LiveConsumer
from dashboard.selectors import alert_list

SNAPSHOT_ALERTS = 100
# A storm (500 flows stuck at once) goes out as the newest alerts plus the fresh groups and
# counts; a page shows 100 rows at most anyway.
DELTA_ALERTS = 100


def alerts_view(alert_ids: list[int] | None = None) -> dict[str, Any]:
    alerts = list(Alert.objects.filter(id__in=alert_ids)) if alert_ids is not None else alert_list(limit=SNAPSHOT_ALERTS).rows
    groups = [serialize_alert_group(group) for group in alert_groups()]
    return {"alerts": [serialize_alert(a) for a in alerts], "groups": groups, "counts": alert_counts()}


def publish_alert_changes(
    sender: Any = None, opened: Any = (), acknowledged: Any = (), resolved: Any = (), **kwargs: Any
) -> None:
    """Receiver of ``alerts_changed`` (already after commit)."""
    ids = sorted({*opened, *acknowledged, *resolved})[-DELTA_ALERTS:]
    if ids:
        broadcast.publish(broadcast.alerts_group(), alerts_view(ids))


class AlertsConsumer(LiveConsumer):
    """``/ws/alerts/``: new, acknowledged and resolved alerts, and the incident groups."""

    async def resolve(self) -> int | None:
        self.group = broadcast.alerts_group()
        return None

    async def snapshot(self) -> dict[str, Any]:
        return await database_sync_to_async(alerts_view)()

    def coalesce(self, datas: list[dict[str, Any]]) -> dict[str, Any] | None:
        merged = {alert["id"]: alert for data in datas for alert in data["alerts"]}
        return {"alerts": list(merged.values()), "groups": datas[-1]["groups"], "counts": datas[-1]["counts"]}
