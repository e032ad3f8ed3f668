"""E-mail notifications through Django's configured e-mail backend."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.mail import send_mail

from alerts.notifiers import Outcome
from alerts.payloads import summary_line


def recipients(target: str) -> list[str]:
    return [address.strip() for address in target.replace(";", ",").split(",") if address.strip()]


def body(payload: dict[str, Any]) -> str:
    alert = payload.get("alert")
    if not alert:
        return "This is a test notification from Choreoscope. If you can read it, the channel works."
    lines = [summary_line(payload), ""]
    for item in alert["missing"]:
        who = f" ({item['service']})" if item.get("service") else ""
        after = f" after {item['after']}" if item.get("after") else ""
        lines.append(f"- missing {item['step']}{who}{after}, due {item['due_at']}")
    lines += ["", json.dumps(payload, indent=2)]
    return "\n".join(lines)


def send(channel: Any, payload: dict[str, Any], delivery_id: int) -> Outcome:
    to = recipients(channel.target)
    if not to:
        return Outcome(False, "no e-mail address configured")
    try:
        sent = send_mail(summary_line(payload), body(payload), settings.DEFAULT_FROM_EMAIL, to)
    except Exception as error:  # SMTP errors come in many classes; all are a failed attempt
        return Outcome(False, f"{type(error).__name__}: {error}")
    return Outcome(bool(sent), f"sent to {len(to)} recipient(s)" if sent else "the e-mail backend sent nothing")
