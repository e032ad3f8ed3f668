"""What the causal model holds, read at each ``/metrics`` scrape."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count

from choreoscope.metrics import Gauge
from tracing.models import Flow, Observation


def gauges() -> Iterator[Gauge]:
    by_status = dict(Flow.objects.filter(merged_into__isnull=True).values_list("status").annotate(n=Count("id")))
    yield Gauge(
        "choreoscope_flows",
        "Flows stored, by status.",
        [({"status": status}, by_status.get(status, 0)) for status in Flow.Status.values],
    )
    yield Gauge(
        "choreoscope_uncorrelated_observations",
        "Observations stored but not yet correlated.",
        [({}, Observation.objects.filter(flow__isnull=True).count())],
    )
