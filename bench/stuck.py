"""The stuck scan on PostgreSQL with 100,000 running flows (target: under 1 s).

Seeds ``BENCH_STUCK_FLOWS`` running flows server-side (``generate_series``), of which
``BENCH_STUCK_OVERDUE`` (a trickle of 100 and a storm of 1,000 by default) are past their
deadline and miss a declared step (OrderCreated, then EmailSent, but no PointsCreated), and
measures, each as a median of several runs:

- ``find_ms``: the one indexed query that finds flows past their deadline (and its plan);
- ``scan_idle_ms``: a whole scan when nothing is overdue (the steady state, every 10 s);
- ``scan_ms``: a whole scan that claims the overdue flows, names what each misses and opens
  one alert per flow (reset between runs).

    python -m bench stuck
    BENCH_STUCK_FLOWS=200000 BENCH_STUCK_OVERDUE=10,2000 python -m bench stuck
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from bench.api import setup_django

DATABASE = os.environ.get("BENCH_STUCK_DATABASE", "choreoscope_bench_stuck")
FLOWS = int(os.environ.get("BENCH_STUCK_FLOWS", "100000"))
# How many flows are past their deadline at one scan: a steady trickle, and a storm.
OVERDUE_CASES = [int(n) for n in os.environ.get("BENCH_STUCK_OVERDUE", "100,1000").split(",")]
REPEAT = int(os.environ.get("BENCH_STUCK_REPEAT", "7"))

SEED_FLOWS = """
INSERT INTO tracing_flow (id, key, type, status, started_at, last_seen_at, services, steps, observation_count, error_count,
                          root_trace_id, updated_at)
SELECT g, 'order-' || g, 'order', 'running', now() - interval '1 hour', now() - interval '1 hour',
       '["/checkout","/email"]'::jsonb, '[]'::jsonb, 2, 0, '', now()
FROM generate_series(1, %(flows)s) AS g
"""

SEED_WATCHES = """
INSERT INTO alerts_flowwatch (flow_id, deadline, stuck, missing, changed_at)
SELECT g, CASE WHEN g <= %(overdue)s THEN now() - interval '1 minute' ELSE now() + (g || ' seconds')::interval END,
       false, '[]'::jsonb, now()
FROM generate_series(1, %(flows)s) AS g
"""

SEED_OBSERVATIONS = """
INSERT INTO tracing_observation (id, kind, identity, flow_id, name, service, start_ns, end_ns, trace_id, span_id, parent_span_id,
    span_kind, status, status_message, event_source, event_id, business_key, attributes, resource, detail, received_at)
SELECT f * 2 + i, 'event', 'bench:' || f || ':' || i, f, (ARRAY['OrderCreated', 'EmailSent'])[i + 1],
       (ARRAY['/checkout', '/email'])[i + 1], %(start_ns)s + i * 1000000, NULL, '', '', '', 0, 'unset', '',
       (ARRAY['/checkout', '/email'])[i + 1], 'e-' || f || '-' || i, 'order-' || f, '{}'::jsonb, '{}'::jsonb, '{}'::jsonb, now()
FROM generate_series(1, %(flows)s) AS f, generate_series(0, 1) AS i
"""


def seed(overdue: int) -> None:
    from django.db import connection

    from alerts.models import Alert, DeclaredFlow
    from tracing.models import Flow

    started_ns = time.time_ns() - 3600 * 10**9
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE alerts_alert, alerts_delivery, alerts_flowflip, alerts_flowwatch, tracing_edge, tracing_observation,"
            " tracing_flow CASCADE"
        )
        cursor.execute(SEED_FLOWS, {"flows": FLOWS, "overdue": overdue})
        cursor.execute(SEED_WATCHES, {"flows": FLOWS, "overdue": overdue})
        cursor.execute(SEED_OBSERVATIONS, {"flows": FLOWS, "start_ns": started_ns})
        cursor.execute("ANALYZE tracing_flow")
        cursor.execute("ANALYZE alerts_flowwatch")
        cursor.execute("ANALYZE tracing_observation")
    DeclaredFlow.objects.all().delete()
    DeclaredFlow.objects.create(flow_type="order").expectations.create(
        after="OrderCreated", steps=["EmailSent", "PointsCreated"], within_seconds=30
    )
    assert Flow.objects.filter(status="running").count() == FLOWS
    assert not Alert.objects.exists()


def reset() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE alerts_alert, alerts_delivery, alerts_flowflip")
        cursor.execute("UPDATE alerts_flowwatch SET stuck = false, missing = '[]'::jsonb WHERE stuck")


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


def timed(run: Any) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def find_plan() -> str:
    from django.db import connection
    from django.utils import timezone

    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN ANALYZE SELECT flow_id FROM alerts_flowwatch WHERE NOT stuck AND deadline < %s ORDER BY deadline LIMIT 2000",
            [timezone.now()],
        )
        return "\n".join(row[0] for row in cursor.fetchall())


def measure(overdue: int) -> dict[str, Any]:
    from datetime import timedelta

    from django.utils import timezone

    from alerts.models import Alert
    from alerts.services import scan_stuck_flows, stuck_candidates

    seed(overdue)
    assert len(stuck_candidates(timezone.now())) == overdue
    find = [timed(lambda: stuck_candidates(timezone.now())) for _ in range(REPEAT * 3)]
    idle = [timed(lambda: scan_stuck_flows(timezone.now() - timedelta(minutes=5))) for _ in range(REPEAT * 3)]
    scans = []
    for _ in range(REPEAT):
        reset()
        scans.append(timed(lambda: scan_stuck_flows(timezone.now())))
        assert Alert.objects.count() == overdue
    return {
        "overdue_flows": overdue,
        "find_ms": median_ms(find),
        "scan_idle_ms": median_ms(idle),
        "scan_ms": median_ms(scans),
        "scan_ms_all": [round(s * 1000, 1) for s in scans],
    }


def main() -> dict[str, Any]:
    setup_django(DATABASE)
    cases = [measure(overdue) for overdue in OVERDUE_CASES]
    plan = find_plan()
    return {
        "running_flows": FLOWS,
        "cases": cases,
        "uses_partial_index": "watch_due" in plan,
        "find_plan": plan,
        "note": "medians of repeated runs on a shared 2-core machine (other benchmarks and test suites running)",
    }


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
