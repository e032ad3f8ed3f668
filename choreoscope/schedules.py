"""Every periodic job, declared once. Celery beat runs them in production; the in-process
scheduler (``choreoscope.scheduler``) runs the same tasks in the embedded default."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    task: str  # dotted path of a Celery task
    every_seconds: float


def periodic_jobs() -> list[PeriodicJob]:
    return [
        PeriodicJob("correlate stored but uncorrelated observations", "tracing.tasks.sweep_uncorrelated", settings.SWEEP_SECONDS),
        PeriodicJob("remove data past retention", "tracing.tasks.prune_expired", 3600),
        PeriodicJob("learn flow models", "alerts.tasks.refresh_flow_models", settings.MODEL_REFRESH_SECONDS),
        PeriodicJob("find stuck flows", "alerts.tasks.scan_stuck_flows", settings.STUCK_SCAN_SECONDS),
        PeriodicJob("retry notification deliveries", "alerts.tasks.deliver_notifications", 15),
    ]


def beat_schedule() -> dict[str, dict[str, object]]:
    return {job.name: {"task": job.task, "schedule": job.every_seconds} for job in periodic_jobs()}
