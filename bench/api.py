"""Latency of the flows JSON API on PostgreSQL holding at least 1,000,000 observations.

Measures p50/p95 of ``GET /api/flows`` with each filter (and deep cursor paging), and of
``GET /api/flows/<id>`` for a flow of 1,000 observations, through Django's full request path
(middleware, token auth, view, JSON) with the in-process test client, so network time is not
counted.

The database (``choreoscope_bench`` by default) is kept between runs: when it holds fewer than
``BENCH_API_OBSERVATIONS`` observations, the missing flows are generated server-side with
``generate_series`` in the shapes correlation produces (11 observations and 10 edges per order,
four to five services, facet rows), which takes about a minute instead of the hour a million
HTTP requests would. The 1,000-observation flow is built through the real store and correlation.

    python -m bench api
    BENCH_API_DATABASE=choreoscope_bench2 BENCH_API_OBSERVATIONS=2000000 python -m bench api
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DATABASE = os.environ.get("BENCH_API_DATABASE", "choreoscope_bench")
OBSERVATIONS = int(os.environ.get("BENCH_API_OBSERVATIONS", "1000000"))
REPEAT = int(os.environ.get("BENCH_API_REPEAT", "60"))
PER_FLOW = 11
BIG_FLOW_KEY = "bench-big-flow"


def database_url(name: str = DATABASE) -> str:
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def setup_django(name: str = DATABASE, redis_url: str | None = None) -> None:
    """Point Django at the bench database (created if missing) and migrate it."""
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = database_url(name)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "choreoscope.settings")
    os.environ.setdefault("CHOREOSCOPE_REDIS_PREFIX", "bench-api")
    if redis_url:
        os.environ["REDIS_URL"] = redis_url
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


SEED_FLOWS = """
INSERT INTO tracing_flow (id, key, type, status, started_at, last_seen_at, services, steps, observation_count, error_count,
                          root_trace_id, updated_at)
SELECT g, 'order-' || g, 'order', (ARRAY['running','completed','completed','completed','failed','running'])[1 + g %% 6],
       to_timestamp(%(t0)s + g * 0.05), to_timestamp(%(t0)s + g * 0.05 + 2),
       CASE WHEN g %% 50 = 0 THEN '["checkout","email","warehouse","rewards","fraud-check"]'::jsonb
            ELSE '["checkout","email","warehouse","rewards"]'::jsonb END,
       '[{"name":"OrderCreated","service":"checkout"},{"name":"EmailSent","service":"email"},
         {"name":"ShipmentPrepared","service":"warehouse"},{"name":"PointsCreated","service":"rewards"}]'::jsonb,
       11, CASE WHEN g %% 6 = 4 THEN 1 ELSE 0 END, md5(g::text), now()
FROM generate_series(%(first)s, %(last)s) AS g
"""

# One flow in six is stuck (alerts' watch over it), one in six still due.
SEED_WATCHES = """
INSERT INTO alerts_flowwatch (flow_id, deadline, stuck, missing, changed_at)
SELECT g, to_timestamp(%(t0)s + g * 0.05 + 120), g %% 6 = 5,
       CASE WHEN g %% 6 = 5 THEN '[{"step":"PointsCreated","service":"rewards","after":"OrderCreated"}]'::jsonb
            ELSE '[]'::jsonb END, now()
FROM generate_series(%(first)s, %(last)s) AS g WHERE g %% 6 IN (0, 5)
"""

# Observation i of flow f has id f * 11 + i: 0 POST /checkout, 1 producer span, 2 OrderCreated, then for
# each of three consumers c (0..2): 3+3c consumer span, 4+3c its work span, 5+3c its event.
SEED_OBSERVATIONS = """
INSERT INTO tracing_observation (id, kind, identity, flow_id, name, service, start_ns, end_ns, trace_id, span_id, parent_span_id,
    span_kind, status, status_message, event_source, event_id, business_key, attributes, resource, detail, received_at)
SELECT f * 11 + i,
       CASE WHEN i IN (2, 5, 8, 10) THEN 'event' ELSE 'span' END,
       'b:' || f || ':' || i,
       f,
       (ARRAY['POST /checkout','OrderCreated send','OrderCreated','OrderCreated process','email work','EmailSent',
              'OrderCreated process','warehouse work','ShipmentPrepared','OrderCreated process','PointsCreated'])[i + 1],
       CASE WHEN i < 3 THEN 'checkout' WHEN i < 6 THEN 'email' WHEN i < 9 THEN 'warehouse'
            WHEN f %% 50 = 0 AND i = 9 THEN 'fraud-check' ELSE 'rewards' END,
       ((%(t0)s + f * 0.05) * 1e9)::bigint + i * 5000000, ((%(t0)s + f * 0.05) * 1e9)::bigint + i * 5000000 + 3000000,
       md5(f::text || '-' || (i / 3)), substr(md5(f::text || ':' || i), 1, 16), '',
       CASE WHEN i = 1 THEN 4 WHEN i IN (3, 6, 9) THEN 5 ELSE 1 END,
       CASE WHEN f %% 6 = 4 AND i = 7 THEN 'error' ELSE 'unset' END, '', '', '', 'order-' || f,
       ('{"order.id": "order-' || f || '", "messaging.operation.type": "process"}')::jsonb,
       '{"service.name": "shop"}'::jsonb, ('{"data": {"order_id": ' || f || ', "total": 42.5}}')::jsonb, now()
FROM generate_series(%(first)s, %(last)s) AS f, generate_series(0, 10) AS i
WHERE NOT (i = 10 AND f %% 9 = 0)
"""

SEED_EDGES = """
INSERT INTO tracing_edge (flow_id, source_id, target_id, kind)
SELECT f, f * 11 + e.source, f * 11 + e.target, e.kind
FROM generate_series(%(first)s, %(last)s) AS f,
     (VALUES (0, 1, 'child_of'), (1, 2, 'emitted_by'), (2, 3, 'delivers'), (3, 4, 'child_of'), (3, 5, 'emitted_by'),
             (2, 6, 'delivers'), (6, 7, 'child_of'), (6, 8, 'emitted_by'), (2, 9, 'delivers'), (9, 10, 'emitted_by'))
     AS e(source, target, kind)
WHERE NOT (e.target = 10 AND f %% 9 = 0)
"""

SEED_FACETS = """
INSERT INTO tracing_flowfacet (flow_id, facet, value, started_at)
SELECT f, v.facet, v.value, to_timestamp(%(t0)s + f * 0.05)
FROM generate_series(%(first)s, %(last)s) AS f,
     (VALUES ('service', 'checkout'), ('service', 'email'), ('service', 'warehouse'), ('service', 'rewards'),
             ('event_type', 'OrderCreated'), ('event_type', 'EmailSent'), ('event_type', 'ShipmentPrepared'),
             ('event_type', 'PointsCreated')) AS v(facet, value)
UNION ALL SELECT f, 'service', 'fraud-check', to_timestamp(%(t0)s + f * 0.05)
FROM generate_series(%(first)s, %(last)s) AS f WHERE f %% 50 = 0
"""


def seed_observations(target: int) -> dict[str, Any]:
    """Add generated flows until the database holds ``target`` observations."""
    from django.db import connection, transaction

    from tracing.models import Flow, Observation

    have = Observation.objects.count()
    if have >= target:
        return {"seeded": 0, "observations": have}
    first = (Flow.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1_000_000
    flows = (target - have) // (PER_FLOW - 1) + 1  # one flow in nine lacks its last observation
    started = time.monotonic()
    t0 = time.time() - flows * 0.05 - 3600
    step = 50_000
    for low in range(first, first + flows, step):
        params = {"first": low, "last": min(low + step, first + flows) - 1, "t0": t0 - first * 0.05}
        with transaction.atomic(), connection.cursor() as cursor:
            for statement in (SEED_FLOWS, SEED_WATCHES, SEED_OBSERVATIONS, SEED_EDGES, SEED_FACETS):
                cursor.execute(statement, params)
    with connection.cursor() as cursor:
        for table in ("tracing_flow", "tracing_observation"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")  # noqa: S608
        cursor.execute("ANALYZE")
    seconds = round(time.monotonic() - started, 1)
    return {"seeded_flows": flows, "seed_seconds": seconds, "observations": Observation.objects.count()}


def big_flow(size: int = 1000) -> tuple[int, float]:
    """A flow of ``size`` observations built through the real store and correlation: an order
    whose OrderCreated is consumed by many services, each in its own trace, each reacting."""
    from tests.tracing.factories import SPAN_KIND_CONSUMER, SPAN_KIND_PRODUCER, event, new_trace_id, span
    from tracing.models import Flow
    from tracing.services import correlate_pending_observations
    from tracing.store import store_observations

    existing = Flow.objects.filter(key=BIG_FLOW_KEY, merged_into__isnull=True).first()
    if existing is not None and existing.observation_count >= size:
        return existing.id, 0.0
    t = time.time_ns()
    trace = new_trace_id()
    root = span("checkout", "POST /checkout", trace, t, kind=2)
    producer = span("checkout", "OrderCreated send", trace, t, parent=root.span_id, kind=SPAN_KIND_PRODUCER)
    created = event("/checkout", "OrderCreated", t, emitted_by=producer, correlation_id=BIG_FLOW_KEY)
    records = [root, producer, created]
    consumer_index = 0
    while len(records) < size:
        consumer = span(
            f"consumer-{consumer_index % 40}",
            "OrderCreated process",
            new_trace_id(),
            t + consumer_index * 1000,
            kind=SPAN_KIND_CONSUMER,
            links=[(trace, producer.span_id)],
            attributes={"cloudevents.event_id": created.event_id, "cloudevents.event_source": "/checkout"},
        )
        reaction = event(
            f"/consumer-{consumer_index % 40}",
            "Reacted",
            t + consumer_index * 1000 + 500,
            emitted_by=consumer,
            caused_by=created,
            correlation_id=BIG_FLOW_KEY,
        )
        records += [consumer, reaction][: size - len(records)]
        consumer_index += 1
    started = time.monotonic()
    for start in range(0, len(records), 200):
        store_observations(records[start : start + 200])  # correlates on commit when tasks run in-process
    correlate_pending_observations()
    seconds = time.monotonic() - started
    return Flow.objects.get(key=BIG_FLOW_KEY, merged_into__isnull=True).id, seconds


def timed(client: Any, path: str, headers: dict[str, str], repeat: int = REPEAT) -> dict[str, float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        samples.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}: {response.content[:200]!r}")
    samples.sort()
    return {"p50_ms": round(statistics.median(samples), 2), "p95_ms": round(samples[int(len(samples) * 0.95) - 1], 2)}


def main() -> dict[str, Any]:
    setup_django()
    from django.db import connection
    from django.test import Client

    from tokens.models import ApiToken
    from tracing.models import Flow

    seed = seed_observations(OBSERVATIONS)
    flow_id, correlate_seconds = big_flow()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # what autovacuum does after bulk changes (other benchmarks add flows here)
    _, token = ApiToken.issue("bench", "read")
    headers = {"authorization": f"Bearer {token}"}
    client = Client()
    newest = Flow.objects.filter(merged_into__isnull=True).order_by("-started_at", "-id").values_list("started_at", "key")[:1000]
    middle, key = newest[500]
    cursor = client.get("/api/flows?limit=50", headers=headers).json()["next"]
    for _ in range(9):
        cursor = client.get(f"/api/flows?limit=50&cursor={cursor}", headers=headers).json()["next"]
    since = middle.isoformat().replace("+00:00", "Z")
    lists = {
        "newest 50": "/api/flows",
        "status=failed": "/api/flows?status=failed",
        "service=email": "/api/flows?service=email",
        "service=fraud-check (2% of flows)": "/api/flows?service=fraud-check",
        "event_type=ShipmentPrepared": "/api/flows?event_type=ShipmentPrepared",
        "type=order&status=stuck&service=warehouse": "/api/flows?type=order&status=stuck&service=warehouse",
        f"key={key}": f"/api/flows?key={key}",
        "since (last ~500 flows)": f"/api/flows?since={since}",
        "page 11 by cursor": f"/api/flows?limit=50&cursor={cursor}",
    }
    results: dict[str, Any] = {"database": DATABASE, **seed, "flows": Flow.objects.count()}
    results["list"] = {name: timed(client, path, headers) for name, path in lists.items()}
    detail = client.get(f"/api/flows/{flow_id}", headers=headers).json()
    results["detail_1000"] = {
        "nodes": len(detail["nodes"]),
        "edges": len(detail["edges"]),
        **timed(client, f"/api/flows/{flow_id}", headers, repeat=max(REPEAT // 3, 10)),
    }
    if correlate_seconds:
        results["detail_1000"]["store_and_correlate_seconds"] = round(correlate_seconds, 2)
    results["detail_11"] = timed(client, f"/api/flows/{Flow.objects.filter(key=key).values_list('id', flat=True)[0]}", headers)
    results["list_p95_max_ms"] = max(entry["p95_ms"] for entry in results["list"].values())
    results["targets"] = {
        "list_p95_under_100ms": results["list_p95_max_ms"] < 100,
        "detail_1000_under_300ms": results["detail_1000"]["p95_ms"] < 300,
    }
    return results


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
