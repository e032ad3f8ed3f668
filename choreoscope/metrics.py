"""Prometheus text exposition (format 0.0.4) of what Choreoscope holds and does.

Counters are per process (Prometheus sums them across instances); gauges read the database.
Any app counts with ``count(name, labels)``; ``/metrics`` renders with ``render_metrics()``.
"""

from __future__ import annotations

import threading
from collections import Counter

from django.db.models import Count

from tracing.models import Flow, Observation

_lock = threading.Lock()
_counters: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()

HELP = {
    "choreoscope_ingest_requests_total": "Ingestion requests answered, by endpoint and HTTP status.",
    "choreoscope_ingested_observations_total": "Observations accepted by ingestion (before de-duplication), by kind.",
}


def count(name: str, labels: dict[str, str], amount: int = 1) -> None:
    key = (name, tuple(sorted(labels.items())))
    with _lock:
        _counters[key] += amount


def _escape(value: str) -> str:
    # Exposition format: backslash, double quote and line feed are escaped in label values.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in pairs) + "}"


def render_metrics() -> str:
    lines: list[str] = []
    with _lock:
        snapshot = dict(_counters)
    for name in sorted({name for name, _ in snapshot}):
        lines.append(f"# HELP {name} {HELP.get(name, name)}")
        lines.append(f"# TYPE {name} counter")
        for (metric, labels), value in sorted(snapshot.items()):
            if metric == name:
                lines.append(f"{name}{_labels(labels)} {value}")

    lines.append("# HELP choreoscope_flows Flows stored, by status.")
    lines.append("# TYPE choreoscope_flows gauge")
    by_status = dict(Flow.objects.filter(merged_into__isnull=True).values_list("status").annotate(n=Count("id")))
    for status in Flow.Status.values:
        lines.append(f'choreoscope_flows{{status="{status}"}} {by_status.get(status, 0)}')

    lines.append("# HELP choreoscope_uncorrelated_observations Observations stored but not yet correlated.")
    lines.append("# TYPE choreoscope_uncorrelated_observations gauge")
    lines.append(f"choreoscope_uncorrelated_observations {Observation.objects.filter(flow__isnull=True).count()}")
    return "\n".join(lines) + "\n"
