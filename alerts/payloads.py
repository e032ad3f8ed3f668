"""The JSON body every notification carries: one shape for webhooks, the same facts in e-mails."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from alerts.models import Alert


def alert_payload(alert: Alert, event: str) -> dict[str, Any]:
    return {
        "event": f"alert.{event}",
        "sent_at": timezone.now().isoformat(),
        "alert": {
            "id": alert.id,
            "state": alert.state,
            "flow_id": alert.flow_id,
            "flow_key": alert.flow_key,
            "flow_type": alert.flow_type,
            "step": alert.step,
            "service": alert.service,
            "after": alert.after,
            "due_at": alert.due_at.isoformat(),
            "opened_at": alert.opened_at.isoformat(),
            "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
            "missing": alert.missing,
        },
    }


def test_payload(channel_name: str) -> dict[str, Any]:
    return {"event": "alert.test", "sent_at": timezone.now().isoformat(), "channel": channel_name, "alert": None}


def summary_line(payload: dict[str, Any]) -> str:
    """One sentence a person reads first: who is late for what."""
    alert = payload.get("alert")
    if not alert:
        return f"Choreoscope test notification for channel {payload.get('channel', '')!s}"
    who = f" by {alert['service']}" if alert["service"] else ""
    after = f" after {alert['after']}" if alert["after"] else ""
    verb = "resolved" if payload["event"] == "alert.resolved" else "stuck"
    return f"[{verb}] {alert['flow_type']} {alert['flow_key']}: {alert['step']}{who} expected{after}"
