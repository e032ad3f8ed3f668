from __future__ import annotations

import logging
from typing import Any

from django.apps import AppConfig
from django.db import transaction

log = logging.getLogger(__name__)


def recompute_deadlines(sender: Any, flow_ids: Any = (), observation_ids: Any = (), merged: Any = None, **kwargs: Any) -> None:
    """Deadlines on write: runs inside the correlation transaction (tracing.signals) and writes
    only alerts' own tables (the watch over each changed flow). A savepoint keeps a failure here
    from undoing the correlation; the next change or model refresh retries."""
    from alerts.services import on_flows_changed

    try:
        with transaction.atomic():
            on_flows_changed(list(flow_ids), dict(merged or {}))
    except Exception:
        log.exception("recomputing stuck deadlines of %d flow(s) failed", len(list(flow_ids)))


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerts"

    def ready(self) -> None:
        from tracing.signals import flows_changed

        flows_changed.connect(recompute_deadlines, dispatch_uid="alerts.recompute_deadlines")
        # Registers the periodic tasks in every process: Celery's autodiscovery runs only in
        # workers, and the in-process scheduler looks tasks up by name.
        import alerts.tasks  # noqa: F401
