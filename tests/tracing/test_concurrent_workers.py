"""Two real Celery workers on Redis correlate the same flows at once on PostgreSQL: no lost
merges, no lost edges, no lost shared steps, no deadlocks."""

from __future__ import annotations

import os
import random
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind

from tests.conftest import (
    ROOT,
    _create_postgres_database,
    _drop_postgres_database,
    celery_worker_command,
    start_server,
    stop_server,
)
from tests.tracing.test_correlation_truth import export_one, place_order
from tests.tracing.test_end_to_end import REACTIONS, Service, api, post_event, read_token, run_checkout, wait_for_flow

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def two_worker_server(tmp_path):
    database_url, name = _create_postgres_database(os.environ["DATABASE_URL"])
    server = start_server(tmp_path, {"DATABASE_URL": database_url}, worker=True)
    log = server.log_path.open("ab")
    server.processes.append(
        subprocess.Popen(
            celery_worker_command(server.env["CHOREOSCOPE_REDIS_PREFIX"], f"second-{uuid.uuid4().hex[:6]}@%h"),
            cwd=ROOT,
            env=server.env,
            stdout=log,
            stderr=log,
        )
    )
    yield server
    stop_server(server)
    _drop_postgres_database(os.environ["DATABASE_URL"], name)


def test_two_workers_correlating_the_same_flows_concurrently_lose_nothing(two_worker_server):
    server = two_worker_server
    keys = [f"order-{uuid.uuid4().hex[:8]}" for _ in range(24)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        sent = list(pool.map(lambda key: run_checkout(server, key), keys))
    token = read_token(server)
    for key, count in zip(keys, sent, strict=True):
        flow = wait_for_flow(server, key, token, count, timeout=90)
        assert len(flow["edges"]) == 2 + 5 * len(REACTIONS), key
        assert {node["service"] for node in flow["nodes"]} == {"checkout", *REACTIONS}
    assert len(api(server, "/api/flows?limit=100", token)["results"]) == len(keys)
    assert "deadlock" not in server.log().lower()


def test_two_workers_agree_on_batch_consumers_absent_roots_and_cross_key_causation(two_worker_server):
    """Batch consumers linking producers of 1-5 orders, arriving in scrambled requests while two
    workers correlate: each order's flow holds its own steps and every batch that served it."""
    server = two_worker_server
    checkout, loyalty = Service("checkout"), Service("loyalty")
    keys = [f"order-{uuid.uuid4().hex[:8]}" for _ in range(12)]
    placed = {key: place_order(checkout, key) for key in keys}
    rng = random.Random(7)
    served: dict[str, int] = dict.fromkeys(keys, 0)
    for _ in range(6):
        chosen = rng.sample(keys, rng.randint(1, 5))
        links = [Link(placed[key][0].get_span_context()) for key in chosen]
        with loyalty.tracer.start_as_current_span("OrderCreated process", context=Context(), kind=SpanKind.CONSUMER, links=links):
            pass
        for key in chosen:
            served[key] += 1
    sends = [
        lambda span=span: export_one(server, span)
        for span in [*checkout.memory.get_finished_spans(), *loyalty.memory.get_finished_spans()]
    ]
    sends += [lambda event=created: post_event(server, event) for _, created in placed.values()]
    rng.shuffle(sends)
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda send: send(), sends))
    token = read_token(server)
    for key in keys:
        flow = wait_for_flow(server, key, token, 3 + served[key], timeout=90)
        batches = [node for node in flow["nodes"] if node["service"] == "loyalty"]
        assert len(batches) == served[key], key
        assert all(node["skew_ms"] >= 0 for node in flow["nodes"])
    assert "deadlock" not in server.log().lower()
