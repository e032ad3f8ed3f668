"""Declared contracts and the OCEL export on PostgreSQL, with ``BENCH_CONTRACTS_ORDERS`` orders
(20,000 by default) received in the last hour: each an OrderCreated from checkout and the
reactions of email, warehouse and rewards (four business events, three causal edges), so the
window holds 80,000 events. Measured, each as a median of several runs:

- ``report_ms``: ``tracing.contracts.contract_report`` over the hour against the demo's AsyncAPI
  documents: the window's rows (``tracing.topology``'s reader, capped at its row limit), one
  payload sample per sender and message, validation against every declared schema;
- ``export_ms``, ``export_mb``, ``export_events_per_s``: ``GET /api/flows/export.ocel.json``
  streamed whole through Django (the newest ``CHOREOSCOPE_OCEL_EXPORT_MAX_FLOWS`` flows).

    python -m bench contracts
"""

from __future__ import annotations

import glob
import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench.api import setup_django

DATABASE = os.environ.get("BENCH_CONTRACTS_DATABASE", "choreoscope_bench_contracts")
ORDERS = int(os.environ.get("BENCH_CONTRACTS_ORDERS", "20000"))
REPEAT = int(os.environ.get("BENCH_CONTRACTS_REPEAT", "5"))
DOCUMENTS = str(Path(__file__).parents[1] / "demo" / "asyncapi" / "*.yaml")

SEED_FLOWS = """
INSERT INTO tracing_flow (id, key, type, status, started_at, last_seen_at, services, steps, observation_count, error_count,
                          root_trace_id, updated_at)
SELECT g, 'order-' || g, 'order', 'completed', now() - interval '30 minutes' + g * interval '50 ms',
       now() - interval '30 minutes' + g * interval '50 ms', '["checkout","email","warehouse","rewards"]'::jsonb, '[]'::jsonb,
       4, 0, md5(g::text), now()
FROM generate_series(1, %(orders)s) AS g
"""
SEED_EVENTS = """
INSERT INTO tracing_observation (id, kind, identity, flow_id, name, service, start_ns, end_ns, trace_id, span_id, parent_span_id,
    span_kind, status, status_message, event_source, event_id, business_key, attributes, resource, detail, received_at)
SELECT f * 4 + i, 'event', 'bench:' || f || ':' || i, f,
       (ARRAY['OrderCreated', 'EmailSent', 'ShipmentPrepared', 'PointsCreated'])[i + 1],
       (ARRAY['checkout', 'email', 'warehouse', 'rewards'])[i + 1], %(start_ns)s::bigint + f::bigint * 50000000 + i * 1000000,
       NULL,
       '', '', '', 0, 'unset', '', (ARRAY['checkout', 'email', 'warehouse', 'rewards'])[i + 1], 'e-' || f || '-' || i,
       'order-' || f,
       '{}'::jsonb, '{}'::jsonb,
       jsonb_build_object('data', (ARRAY[
           jsonb_build_object('order_id', 'order-' || f, 'customer_id', 'cust-1', 'items', 2, 'total', 40.5, 'currency', 'EUR'),
           jsonb_build_object('order_id', 'order-' || f, 'template', 'EmailSent'),
           jsonb_build_object('order_id', 'order-' || f, 'warehouse', 'AMS-1', 'parcels', 1),
           jsonb_build_object('order_id', 'order-' || f, 'points', 120)])[i + 1]),
       now() - interval '30 minutes' + f * interval '50 ms'
FROM generate_series(1, %(orders)s) AS f, generate_series(0, 3) AS i
"""
SEED_EDGES = """
INSERT INTO tracing_edge (flow_id, source_id, target_id, kind)
SELECT f, f * 4, f * 4 + i, 'caused_by' FROM generate_series(1, %(orders)s) AS f, generate_series(1, 3) AS i
"""


def seed() -> None:
    from django.db import connection

    started_ns = time.time_ns() - 1800 * 10**9
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE tracing_edge, tracing_observation, tracing_flowfacet, tracing_flow CASCADE")
        for statement in (SEED_FLOWS, SEED_EVENTS, SEED_EDGES):
            cursor.execute(statement, {"orders": ORDERS, "start_ns": started_ns})
        for table in ("tracing_flow", "tracing_observation", "tracing_edge"):
            cursor.execute(f"ANALYZE {table}")


def timed(run: Any) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> dict[str, Any]:
    os.environ["CHOREOSCOPE_ASYNCAPI"] = DOCUMENTS
    setup_django(DATABASE)
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client

    from tracing.contracts import contract_report, forget_loaded_documents

    settings.ASYNCAPI_FILES = sorted(glob.glob(DOCUMENTS))
    seed()
    forget_loaded_documents()
    rows = contract_report(3600)
    reports = [timed(lambda: contract_report(3600)) for _ in range(REPEAT)]
    admin, _ = User.objects.get_or_create(username="bench", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(admin)
    sizes: list[int] = []

    def export() -> None:
        response = client.get("/api/flows/export.ocel.json")
        sizes.append(sum(len(chunk) for chunk in response.streaming_content))

    exports = [timed(export) for _ in range(REPEAT)]
    flows = min(ORDERS, settings.OCEL_EXPORT_MAX_FLOWS)
    export_s = statistics.median(exports)
    return {
        "orders": ORDERS,
        "events_in_window": ORDERS * 4,
        "drift_rows": [f"{row.kind} {row.message} {row.producer}->{row.consumer or '*'} party={row.party}" for row in rows],
        "report_ms": round(statistics.median(reports) * 1000, 1),
        "report_ms_all": [round(s * 1000, 1) for s in reports],
        "export_flows": flows,
        "export_ms": round(export_s * 1000, 1),
        "export_mb": round(sizes[-1] / 1e6, 2),
        "export_events_per_s": round(flows * 4 / export_s),
        "note": "medians of repeated runs on a shared 2-core machine (other work running)",
    }


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
