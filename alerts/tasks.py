"""Celery tasks for alerts: one thin interface over ``alerts.services``."""

from __future__ import annotations

from celery import shared_task


@shared_task(ignore_result=True)
def refresh_flow_models() -> None:
    from alerts.services import refresh_flow_models as refresh

    refresh()


@shared_task(ignore_result=True)
def scan_stuck_flows() -> None:
    from alerts.services import scan_stuck_flows as scan

    scan()


@shared_task(ignore_result=True)
def deliver_notifications() -> None:
    from alerts.delivery import deliver_due_notifications

    deliver_due_notifications()
