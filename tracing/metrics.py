"""What the causal model holds and how fast correlation keeps up, on ``/metrics``.

Correlation batches are timed in memory where they run (a Celery worker, or the web process in
the embedded mode); what the tables hold is read at each scrape, each figure with one query.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Sized
from datetime import datetime
from typing import Any, Protocol, TypeVar

from django.db.models import Count
from django.utils import timezone
from prometheus_client.metrics_core import Metric

from choreoscope.metrics import counter, gauge_family, histogram
from tracing.models import Flow, Observation
from tracing.topology import observed_topology

CORRELATION_BATCH_SECONDS = histogram(
    "choreoscope_correlation_batch_seconds",
    "Time one correlation batch took, from claiming its observations to commit (empty batches not counted).",
    [],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
CORRELATED_OBSERVATIONS = counter("choreoscope_correlated_observations_total", "Observations correlated into flows.")


class Correlated(Protocol):
    @property
    def observation_ids(self) -> Sized: ...


Outcome = TypeVar("Outcome", bound=Correlated)


def timed_batch(correlate: Callable[[int], Outcome]) -> Callable[[int], Outcome]:
    """Time each correlation batch that found work; the empty one that ends every drain would
    only drag the histogram towards zero."""

    @functools.wraps(correlate)
    def timed(size: int) -> Outcome:
        started = time.perf_counter()
        outcome = correlate(size)
        if outcome.observation_ids:
            CORRELATION_BATCH_SECONDS.observe(time.perf_counter() - started)
            CORRELATED_OBSERVATIONS.inc(len(outcome.observation_ids))
        return outcome

    return timed


def correlation_lag_seconds(now: datetime) -> float:
    """Age of the oldest uncorrelated observation: ids grow with arrival, so it is the first
    entry of the partial index over ``flow IS NULL`` (one index probe, whatever the backlog)."""
    oldest = Observation.objects.filter(flow__isnull=True).order_by("id").values_list("received_at", flat=True).first()
    return max(0.0, (now - oldest).total_seconds()) if oldest else 0.0


SEND_TO_PROCESS_WINDOW_SECONDS = 300


def send_to_process(topology: dict[str, Any]) -> Metric:
    """Per event type and consumer, the time from send to process (p50, p95) the map shows, as a
    gauge with a ``quantile`` label (the convention for precomputed quantiles)."""
    names = {node["id"]: node["name"] for node in topology["nodes"]}
    samples = []
    for edge in topology["edges"]:
        if edge.get("style", "event") != "event" or not edge["source"].startswith("type:"):
            continue
        for quantile, field in (("0.5", "p50_ms"), ("0.95", "p95_ms")):
            if edge.get(field) is not None:
                samples.append(((names[edge["source"]], names[edge["target"]], quantile), edge[field] / 1000))
    return gauge_family(
        "choreoscope_send_to_process_seconds",
        f"Time from an event's send to its consumer's earliest reaction over the last {SEND_TO_PROCESS_WINDOW_SECONDS // 60} "
        "minutes, per event type and consumer (the service map's p50 and p95).",
        ["event_type", "consumer", "quantile"],
        samples,
    )


def gauges() -> Iterator[Metric]:
    by_status = dict(Flow.objects.filter(merged_into__isnull=True).values_list("status").annotate(n=Count("id")).order_by())
    yield gauge_family(
        "choreoscope_flows",
        "Flows stored, by status as correlation derives it from the observations (running, completed, failed).",
        ["status"],
        [((status,), by_status.get(status, 0)) for status in Flow.Status.values],
    )
    yield gauge_family(
        "choreoscope_uncorrelated_observations",
        "Observations stored but not yet correlated.",
        [],
        [((), Observation.objects.filter(flow__isnull=True).count())],
    )
    yield gauge_family(
        "choreoscope_correlation_lag_seconds",
        "Age of the oldest observation not yet correlated (0 when correlation has caught up).",
        [],
        [((), correlation_lag_seconds(timezone.now()))],
    )
    yield send_to_process(observed_topology(SEND_TO_PROCESS_WINDOW_SECONDS))
