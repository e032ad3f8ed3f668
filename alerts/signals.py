"""Signals alerts sends so that the dashboard can push changes live without alerts importing it.

``alerts_changed`` is sent after the commit that opened, acknowledged or resolved alerts, with
``opened``, ``acknowledged`` and ``resolved``: lists of alert ids.
"""

from __future__ import annotations

from django.db import transaction
from django.dispatch import Signal

alerts_changed = Signal()


def announce(opened: list[int] | None = None, acknowledged: list[int] | None = None, resolved: list[int] | None = None) -> None:
    ids = {"opened": opened or [], "acknowledged": acknowledged or [], "resolved": resolved or []}
    if any(ids.values()):
        transaction.on_commit(lambda: alerts_changed.send_robust(sender=None, **ids))
