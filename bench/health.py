"""The correlation-health report over a window holding 100,000 observations, on PostgreSQL.

Seeds ``BENCH_HEALTH_OBSERVATIONS`` observations received in the last hour, as checkouts stored
and correlated by the real pipeline (``tests.tracing.factories.checkout_records``: a producer
span and OrderCreated, consumer spans linked to it in traces of their own, reactions caused by
it), with one order in ten whose e-mail reaction is stamped 2 s before its cause and one in
fifty whose consumer keeps no context. Then measures ``tracing.health.correlation_health`` for
the 1 h window, as a median of ``BENCH_HEALTH_REPEAT`` runs:

- ``sample_ms``: as shipped, reading the newest ``OBSERVATION_LIMIT`` (20,000) observations;
- ``whole_window_ms``: with the limit raised to read all of them;
- ``api_ms``: ``GET /api/correlation-health`` through Django's test client (the sample).

The database (``BENCH_HEALTH_DATABASE``, ``choreoscope_bench_health``) is seeded once and kept.

    python -m bench health
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from bench.api import setup_django

DATABASE = os.environ.get("BENCH_HEALTH_DATABASE", "choreoscope_bench_health")
OBSERVATIONS = int(os.environ.get("BENCH_HEALTH_OBSERVATIONS", "100000"))
REPEAT = int(os.environ.get("BENCH_HEALTH_REPEAT", "7"))
MS = 1_000_000


def seed() -> int:
    """Store and correlate checkouts until the last hour holds ``OBSERVATIONS`` observations."""
    from django.db import connection

    from tests.tracing.factories import checkout_records, new_trace_id, span
    from tracing.models import Observation
    from tracing.records import SPAN_KIND_CONSUMER
    from tracing.services import correlate_pending_observations
    from tracing.store import store_observations

    have = Observation.objects.count()
    if have >= OBSERVATIONS:
        return have
    now, number = time.time_ns(), 0
    records: list[Any] = []
    while have + len(records) < OBSERVATIONS:
        order = checkout_records(f"order-bench-{have}-{number}", start_ns=now - (3000 - number % 3000) * 1000 * MS)
        if number % 10 == 0:
            email = order.by_name["email: OrderCreated process"]
            records += [r if r is not email else _shifted(email, -2000 * MS) for r in order.records]
        else:
            records += order.records
        if number % 50 == 0:
            records.append(span("ledger", "process payments", new_trace_id(), order.records[0].start_ns, kind=SPAN_KIND_CONSUMER))
        number += 1
        if len(records) >= 5000:
            store_observations(records)
            correlate_pending_observations()
            have, records = have + len(records), []
    store_observations(records)
    correlate_pending_observations()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return Observation.objects.count()


def refresh_window() -> None:
    """Keep the seeded observations inside the 1 h window (a database seeded earlier was
    received earlier), then vacuum: an update leaves a dead copy of every row behind, and
    autovacuum may be off on a server for throwaway databases."""
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from tracing.models import Observation

    if Observation.objects.filter(received_at__lt=timezone.now() - timedelta(minutes=30)).exists():
        Observation.objects.update(received_at=timezone.now())
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE tracing_observation")


def _shifted(record: Any, by_ns: int) -> Any:
    from dataclasses import replace

    return replace(record, start_ns=record.start_ns + by_ns, end_ns=(record.end_ns or record.start_ns) + by_ns)


CPU: list[float] = []  # this process's CPU time of each timed run


def timed(run: Any) -> float:
    started, cpu = time.perf_counter(), time.process_time()
    run()
    CPU.append(time.process_time() - cpu)
    return time.perf_counter() - started


def cpu_ms() -> float:
    """The median CPU time of the runs timed since the last call (steadier than wall-clock time
    on a shared machine; the database's share of the work is not in it)."""
    median = median_ms(CPU)
    CPU.clear()
    return median


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


def main() -> dict[str, Any]:
    setup_django(DATABASE)
    from django.contrib.auth.models import User
    from django.test import Client

    from tracing import health

    stored = seed()
    refresh_window()
    report = health.correlation_health(3600)
    sample = [timed(lambda: health.correlation_health(3600)) for _ in range(REPEAT)]
    sample_cpu = cpu_ms()
    limit = health.OBSERVATION_LIMIT
    health.OBSERVATION_LIMIT = OBSERVATIONS * 2
    try:
        whole = health.correlation_health(3600)
        whole_window = [timed(lambda: health.correlation_health(3600)) for _ in range(REPEAT)]
        whole_cpu = cpu_ms()
    finally:
        health.OBSERVATION_LIMIT = limit
    user, _ = User.objects.get_or_create(username="bench-health", defaults={"is_staff": True})
    client = Client()
    client.force_login(user)
    api = [timed(lambda: client.get("/api/correlation-health")) for _ in range(REPEAT)]
    return {
        "observations_stored": stored,
        "sample": {"observations_read": report.observations_read, "sampled": report.sampled, "findings": len(report.findings)},
        "whole": {"observations_read": whole.observations_read, "sampled": whole.sampled, "findings": len(whole.findings)},
        "sample_ms": median_ms(sample),
        "sample_cpu_ms": sample_cpu,
        "whole_window_ms": median_ms(whole_window),
        "whole_window_cpu_ms": whole_cpu,
        "api_ms": median_ms(api),
        "load_average": os.getloadavg(),
        "note": "medians on a shared 2-core machine (other test suites running); cpu_ms is this process's share",
    }


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
