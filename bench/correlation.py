"""Correlation throughput on PostgreSQL, and ingestion + correlation sustained with Celery workers.

1. ``batch``: orders of the running example (13 observations each: checkout, three reacting
   consumers in their own traces, one that never reacts), stored out of order in requests of 500,
   then correlated in one go in this process: observations correlated per second.
2. ``sustained_store``: two real Celery workers on Redis correlate while this process stores
   slices of 500 observations at a fixed offered rate (default 5,000/s) through ``tracing.store``
   (the collectors' bulk writer, which enqueues correlation after each commit, as in
   production): storage plus correlation.
3. ``sustained_http``: the same orders at the same rate through a real server (``manage.py
   serve``, one process): each slice goes as one OTLP/HTTP protobuf export of its spans and
   CloudEvents batches of its events (``bench/wire.py``), from four keep-alive client threads.
   Ingestion (HTTP, decoding, storage) plus correlation, everything on this machine's two cores.

In both, the uncorrelated backlog is sampled every two seconds; a steady state shows it flat, not
growing. Options: ``BENCH_CORRELATION_RATE``, ``_SECONDS``, ``_WORKERS``, ``_VIA`` (``store,http``),
``_BATCH_OBSERVATIONS``.

It uses the API benchmark's database (``choreoscope_bench``, at least a million observations when
``bench api`` ran first), so indexes have realistic sizes.

    python -m bench correlation
    BENCH_CORRELATION_RATE=8000 BENCH_CORRELATION_SECONDS=60 BENCH_CORRELATION_VIA=http python -m bench correlation
"""

from __future__ import annotations

import http.client
import os
import random
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from bench.api import DATABASE, database_url, setup_django
from tests.conftest import celery_worker_command

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
BATCH_OBSERVATIONS = int(os.environ.get("BENCH_CORRELATION_BATCH_OBSERVATIONS", "60000"))
RATE = int(os.environ.get("BENCH_CORRELATION_RATE", "5000"))
SECONDS = int(os.environ.get("BENCH_CORRELATION_SECONDS", "40"))
WORKERS = int(os.environ.get("BENCH_CORRELATION_WORKERS", "2"))
VIA = [via.strip() for via in os.environ.get("BENCH_CORRELATION_VIA", "store,http").split(",") if via.strip()]
REQUEST = 500
SAMPLE_SECONDS = 2.0  # each sample COUNTs the backlog, a load of its own on the database


def order_records(observations: int, seed: int) -> list[Any]:
    """Whole orders, shuffled within windows of about 40 orders (late parents, early effects)."""
    from tests.tracing.factories import checkout_records

    rng = random.Random(seed)
    records: list[Any] = []
    window: list[Any] = []
    start = time.time_ns() - 600 * 1_000_000_000
    index = 0
    while len(records) + len(window) < observations:
        window += checkout_records(f"bench-{seed}-{index}", start_ns=start + index * 1_000_000).records
        index += 1
        if len(window) >= 40 * 13:
            rng.shuffle(window)
            records += window
            window = []
    rng.shuffle(window)
    return records + window


SERVER_SETTINGS = ("autovacuum", "shared_buffers", "max_wal_size", "checkpoint_timeout", "wal_compression", "synchronous_commit")


def server_settings() -> dict[str, str]:
    from django.db import connection

    with connection.cursor() as cursor:
        settings = {}
        for name in SERVER_SETTINGS:
            cursor.execute(f"SHOW {name}")
            settings[name] = cursor.fetchone()[0]
        return settings


def vacuum() -> float:
    """VACUUM ANALYZE the tables correlation writes, so every phase starts where autovacuum would
    keep a busy database, whatever the earlier runs (or a server with autovacuum off) left behind:
    each correlated observation leaves a dead row version and a dead entry in the index of
    uncorrelated rows, and a million of them make the claim and the updates several times slower."""
    from django.db import connection

    from tracing.models import Anchor, Edge, Flow, FlowFacet, Observation, PendingRef

    started = time.monotonic()
    with connection.cursor() as cursor:
        for model in (Observation, Edge, Anchor, PendingRef, Flow, FlowFacet):
            cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")
    return round(time.monotonic() - started, 1)


def backlog() -> int:
    from tracing.models import Observation

    return Observation.objects.filter(flow__isnull=True).count()


def batch_throughput() -> dict[str, Any]:
    import tracing.store
    from tracing.services import correlate_pending_observations

    records = order_records(BATCH_OBSERVATIONS, seed=random.randrange(1 << 30))
    enqueue, tracing.store.enqueue_correlation = tracing.store.enqueue_correlation, lambda: None
    try:
        for start in range(0, len(records), REQUEST):
            tracing.store.store_observations(records[start : start + REQUEST])
    finally:
        tracing.store.enqueue_correlation = enqueue
    pending = backlog()
    started = time.monotonic()
    correlated = correlate_pending_observations()
    seconds = time.monotonic() - started
    return {
        "observations": len(records),
        "pending_before": pending,
        "correlated": correlated,
        "seconds": round(seconds, 2),
        "observations_per_second": round(correlated / seconds),
    }


def start_workers(prefix: str, count: int, log_path: Path) -> list[subprocess.Popen[bytes]]:
    log = log_path.open("ab")
    return [
        subprocess.Popen(
            celery_worker_command(prefix, f"bench{index}-{prefix}@%h"),
            cwd=ROOT,
            env=worker_env(prefix),
            stdout=log,
            stderr=log,
        )
        for index in range(count)
    ]


def worker_env(prefix: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url(DATABASE),
        "REDIS_URL": REDIS_URL,
        "CHOREOSCOPE_REDIS_PREFIX": prefix,
        "CHOREOSCOPE_IN_PROCESS_SCHEDULER": "0",
    }


def http_sender(address: str, statuses: Counter[int]) -> Callable[[list[tuple[str, str, bytes, int]]], None]:
    """Sends one slice's requests on this thread's keep-alive connection; counts the answers."""
    local = threading.local()

    def send(requests: list[tuple[str, str, bytes, int]]) -> None:
        if not hasattr(local, "connection"):
            local.connection = http.client.HTTPConnection(address, timeout=60)
        for path, content_type, body, _ in requests:
            local.connection.request("POST", path, body, {"Content-Type": content_type})
            response = local.connection.getresponse()
            response.read()
            statuses[response.status] += 1

    return send


def sustained(via: str) -> dict[str, Any]:
    """Offer RATE observations/s for SECONDS, in slices of REQUEST arrivals, while WORKERS Celery
    workers correlate; ``via`` is ``store`` (this process calls the collectors' bulk writer) or
    ``http`` (a real server takes OTLP protobuf and CloudEvents batches)."""
    from django.db import close_old_connections

    from bench.ingest import serving
    from bench.wire import requests_for
    from tracing.store import store_observations

    records = order_records(RATE * SECONDS, seed=random.randrange(1 << 30))
    slices = [records[start : start + REQUEST] for start in range(0, len(records), REQUEST)]
    prefix = os.environ["CHOREOSCOPE_REDIS_PREFIX"]
    log = Path("/tmp") / f"bench-correlation-{prefix}.log"
    workers = start_workers(prefix, WORKERS, log)
    samples: list[tuple[float, int]] = []
    statuses: Counter[int] = Counter()
    stop = threading.Event()
    started = 0.0

    def sample() -> None:
        while not stop.is_set():
            samples.append((round(time.monotonic() - started, 1), backlog()))
            stop.wait(SAMPLE_SECONDS)
        close_old_connections()

    server_env = {**worker_env(prefix), "DEMO": "0", "LOG_LEVEL": "warning"}
    try:
        with serving(server_env, 1, log) if via == "http" else nullcontext(("", 0)) as (address, _):
            if via == "http":
                payloads: list[Any] = [requests_for(part) for part in slices]
                send: Callable[[Any], Any] = http_sender(address, statuses)
                senders = 4
            else:
                payloads, send, senders = slices, store_observations, 1
            time.sleep(5)  # workers connect to Redis and the database
            started = time.monotonic()
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            order = iter(enumerate(payloads))
            lock = threading.Lock()

            def offer() -> None:
                while True:
                    with lock:
                        index, payload = next(order, (None, None))
                    if index is None:
                        return
                    if (delay := started + index * REQUEST / RATE - time.monotonic()) > 0:
                        time.sleep(delay)
                    send(payload)

            threads = [threading.Thread(target=offer) for _ in range(senders)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            offered_seconds = time.monotonic() - started
            while backlog() and time.monotonic() - started < offered_seconds + 300:
                time.sleep(0.5)
            drained_seconds = time.monotonic() - started
            stop.set()
            sampler.join()
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
    quarter = max(len(samples) // 4, 1)
    during = [value for at, value in samples if at <= offered_seconds]
    result: dict[str, Any] = {
        "via": via,
        "offered_rate": RATE,
        "workers": WORKERS,
        "observations": len(records),
        "ingest_seconds": round(offered_seconds, 1),
        "achieved_ingest_rate": round(len(records) / offered_seconds),
        "all_correlated_after_seconds": round(drained_seconds, 1),
        "correlation_rate_overall": round(len(records) / drained_seconds),
        "backlog_max_by_quarter": [max((v for _, v in samples[i * quarter : (i + 1) * quarter]), default=0) for i in range(4)],
        "backlog_median_while_ingesting": sorted(during)[len(during) // 2] if during else 0,
        "backlog_samples": samples[:: max(len(samples) // 40, 1)],
    }
    if via == "http":
        result["http_statuses"] = dict(statuses)
    return result


def main() -> dict[str, Any]:
    os.environ["CHOREOSCOPE_REDIS_PREFIX"] = f"bench-corr-{uuid.uuid4().hex[:6]}"
    setup_django(redis_url=REDIS_URL)
    from tracing.models import Observation

    results: dict[str, Any] = {
        "database": DATABASE,
        "observations_in_database": Observation.objects.count(),
        "postgresql": server_settings(),
        "note": "2-core machine shared with other work while measuring; each phase starts after VACUUM ANALYZE",
    }
    vacuum()
    results["batch"] = batch_throughput()
    for via in VIA:
        results[f"vacuum_seconds_before_{via}"] = vacuum()
        results[f"sustained_{via}"] = sustained(via)
    return results


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
