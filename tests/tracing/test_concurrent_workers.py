"""Two real Celery workers on Redis correlate the same flows at once on PostgreSQL: no lost
merges, no lost edges, no deadlocks."""

from __future__ import annotations

import os
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import (
    ROOT,
    _create_postgres_database,
    _drop_postgres_database,
    celery_worker_command,
    start_server,
    stop_server,
)
from tests.tracing.test_end_to_end import REACTIONS, api, read_token, run_checkout, wait_for_flow

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
