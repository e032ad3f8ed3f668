"""Reading and writing the shop's fault settings (``ServiceFault`` rows): the only place the
demo touches the database."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from demo.catalog import SERVICES
from demo.faults import FaultChange, Faults
from demo.models import ServiceFault


def register_services(services: Iterable[str], reset: bool) -> None:
    """Make sure every running service has a row; ``reset`` clears faults left from a past run."""
    with transaction.atomic():
        for service in services:
            row, created = ServiceFault.objects.get_or_create(service=service)
            if reset and not created and not row.faults().healthy:
                store_faults(service, Faults())


def apply_fault_changes(changes: Iterable[FaultChange]) -> None:
    with transaction.atomic():
        for change in changes:
            row, _ = ServiceFault.objects.select_for_update().get_or_create(service=change.service)
            store_faults(change.service, change.apply(row.faults()))


def store_faults(service: str, faults: Faults) -> None:
    ServiceFault.objects.update_or_create(
        service=service,
        defaults={
            "drop": faults.drop,
            "slow_seconds": faults.slow_seconds,
            "fail": faults.fail,
            "offline": faults.offline,
            "updated_at": timezone.now(),
        },
    )


def clear_all_faults() -> int:
    return ServiceFault.objects.update(drop=0.0, slow_seconds=0.0, fail=0.0, offline=False, updated_at=timezone.now())


def current_faults() -> dict[str, Faults]:
    return {row.service: row.faults() for row in ServiceFault.objects.filter(service__in=SERVICES)}


def record_heartbeat(backlogs: dict[str, int]) -> None:
    now = timezone.now()
    with transaction.atomic():  # one short write, not one per service, beside busy ingestion
        for service, backlog in backlogs.items():
            ServiceFault.objects.filter(service=service).update(heartbeat_at=now, backlog=min(backlog, 2**31 - 1))


# The running shop reports every 2 s; a quiet row means the demo is not running.
HEARTBEAT_FRESH = timedelta(seconds=10)


def panel_state() -> dict[str, Any]:
    """What the faults panel shows: each service's faults, whether it runs, its backlog."""
    now = timezone.now()
    rows = []
    for row in ServiceFault.objects.filter(service__in=SERVICES):
        running = row.heartbeat_at is not None and now - row.heartbeat_at <= HEARTBEAT_FRESH
        faults = row.faults()
        rows.append(
            {
                "service": row.service,
                "state": ("offline" if faults.offline else "running") if running else "not running",
                "backlog": row.backlog if running else 0,
                "drop_percent": round(faults.drop * 100, 1),
                "slow_seconds": faults.slow_seconds,
                "fail_percent": round(faults.fail * 100, 1),
                "offline": faults.offline,
                "description": faults.describe(),
            }
        )
    rows.sort(key=lambda r: SERVICES.index(r["service"]))
    return {
        "running": any(r["state"] != "not running" for r in rows),
        "faulty": [f"{r['service']} {r['description']}" for r in rows if r["description"] != "healthy"],
        "services": rows,
    }
