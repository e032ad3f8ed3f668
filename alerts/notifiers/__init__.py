"""Notification channels, one module per kind (``webhook``, ``email``), each with
``send(channel, payload, delivery_id) -> Outcome``."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol


@dataclass(frozen=True)
class Outcome:
    ok: bool
    detail: str  # status code and reason, or the error, for the delivery log


class Notifier(Protocol):
    def send(self, channel: Any, payload: dict[str, Any], delivery_id: int) -> Outcome: ...


def notifier_for(kind: str) -> Notifier | ModuleType:
    from alerts.notifiers import email, webhook

    notifiers: dict[str, ModuleType] = {"webhook": webhook, "email": email}
    if kind not in notifiers:
        raise ValueError(f"unknown notification channel kind {kind!r}")
    return notifiers[kind]
