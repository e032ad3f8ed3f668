"""Celery tasks for tracing: one thin interface over ``tracing.services``."""

from __future__ import annotations

from celery import shared_task


@shared_task(ignore_result=True)
def correlate_pending() -> None:
    """Correlate stored observations that have no flow yet (kicked after each ingest commit)."""
    from tracing.services import correlate_pending_observations

    correlate_pending_observations()


@shared_task(ignore_result=True)
def sweep_uncorrelated() -> None:
    """Periodic safety net: correlate what was stored while the broker was unreachable."""
    from tracing.services import correlate_pending_observations

    correlate_pending_observations()


@shared_task(ignore_result=True)
def prune_expired() -> None:
    from tracing.services import prune_expired_data

    prune_expired_data()
