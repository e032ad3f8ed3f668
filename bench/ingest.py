"""Ingestion throughput, end to end: accepted spans/s and CloudEvents/s from concurrent clients on
loopback (HTTP in, committed in the database), on SQLite and on PostgreSQL, next to the bare
pipeline (decode + flatten + one bulk write per request, no HTTP) measured in the same run.

Bodies are pre-encoded and distinct (every span and event is new), sent by client threads over
keep-alive connections. Spans go as OTLP protobuf requests of 512 spans (the OpenTelemetry SDK's
default export batch), events as CloudEvents batches of 100. Correlation is not part of the
measure: the server hands it to a Celery queue (a throwaway Redis prefix, no worker), as in
production. PostgreSQL runs use a throwaway database, created and dropped here.

    python -m bench ingest                 # everything
    BENCH_INGEST_DATABASES=postgresql BENCH_INGEST_WORKERS=1,2 python -m bench ingest
"""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SPANS_PER_REQUEST = 512
EVENTS_PER_REQUEST = 100
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def setting(name: str, default: str) -> str:
    return os.environ.get(f"BENCH_INGEST_{name}", default)


# --- pre-encoded bodies ------------------------------------------------------------------------


def span_body(rng: random.Random, spans: int) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

    def kv(key: str, value: Any) -> KeyValue:
        if isinstance(value, int):
            return KeyValue(key=key, value=AnyValue(int_value=value))
        return KeyValue(key=key, value=AnyValue(string_value=value))

    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    service = rng.choice(["checkout", "email", "warehouse", "rewards"])
    resource_spans.resource.attributes.extend(
        [
            kv("service.name", service),
            kv("service.version", "1.4.2"),
            kv("host.name", "node-7"),
            kv("telemetry.sdk.language", "python"),
            kv("telemetry.sdk.version", "1.45.1"),
        ]
    )
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "opentelemetry.instrumentation.django"
    scope_spans.scope.version = "0.66b1"
    trace_id = rng.randbytes(16)
    parent = rng.randbytes(8)
    start = time.time_ns()
    for index in range(spans):
        if index % 8 == 0:
            trace_id, parent = rng.randbytes(16), rng.randbytes(8)
        span = scope_spans.spans.add()
        span.trace_id, span.span_id, span.parent_span_id = trace_id, rng.randbytes(8), parent
        span.name = rng.choice(["POST /orders", "publish OrderCreated", "process OrderCreated", "SELECT orders"])
        span.kind = Span.SpanKind.ValueType(rng.randint(1, 5))
        span.start_time_unix_nano = start + index * 1000
        span.end_time_unix_nano = start + index * 1000 + rng.randint(100_000, 90_000_000)
        span.attributes.extend(
            [
                kv("http.request.method", "POST"),
                kv("http.route", "/orders"),
                kv("http.response.status_code", 201),
                kv("order.id", f"order-{rng.randint(1, 10**6)}"),
                kv("messaging.system", "redis"),
                kv("messaging.destination.name", "orders"),
                kv("server.address", "checkout.internal"),
                kv("user_agent.original", "python-requests/2.32"),
            ]
        )
        span.status.code = Status.StatusCode.STATUS_CODE_OK
    return request.SerializeToString()


def event_body(rng: random.Random, events: int) -> bytes:
    batch = []
    for _ in range(events):
        order = rng.randint(1, 10**6)
        batch.append(
            {
                "specversion": "1.0",
                "id": uuid.UUID(int=rng.getrandbits(128)).hex,
                "source": "/checkout",
                "type": "OrderCreated",
                "time": "2026-11-22T10:00:00.123456Z",
                "datacontenttype": "application/json",
                "correlationid": f"order-{order}",
                "traceparent": f"00-{rng.randbytes(16).hex()}-{rng.randbytes(8).hex()}-01",
                "data": {"order_id": order, "total": 42.5, "items": [{"sku": "A-1", "qty": 2}]},
            }
        )
    return json.dumps(batch).encode()


def bodies(kind: str, requests: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    if kind == "spans":
        return [span_body(rng, SPANS_PER_REQUEST) for _ in range(requests)]
    return [event_body(rng, EVENTS_PER_REQUEST) for _ in range(requests)]


PATHS = {
    "spans": ("/v1/traces", "application/x-protobuf", SPANS_PER_REQUEST),
    "events": ("/v1/events", "application/cloudevents-batch+json", EVENTS_PER_REQUEST),
}


# --- the bare pipeline (run in a subprocess configured like the server) ----------------------------


def bare(kind: str, requests: int, seed: int) -> dict[str, Any]:
    import django

    django.setup()
    from django.db import connection

    from collectors import cloudevents, otlp
    from tracing import store

    store.enqueue_correlation = lambda: None  # the bare cost is decode + flatten + one bulk write
    payloads = bodies(kind, requests, seed)
    backend = None
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
    backend_cpu = process_cpu(backend) if backend else 0.0
    started, cpu_started = time.perf_counter(), time.process_time()
    for body in payloads:
        records = otlp.decode_protobuf(body).records if kind == "spans" else cloudevents.decode_batch(body)
        store.store_observations(records)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started + ((process_cpu(backend) - backend_cpu) if backend else 0.0)
    return {"items": requests * PATHS[kind][2], "seconds": elapsed, "cpu_seconds": cpu}


# --- the server and its clients ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(env: dict[str, str], workers: int, log: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    args = [PYTHON, "manage.py", "serve", "--no-demo", "--port", str(port), "--otlp-port", "0", "--otlp-grpc-port", "0"]
    if workers > 1:
        args += ["--workers", str(workers)]
    with log.open("ab") as output:
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=output, stderr=output)
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz", process=process)
        yield f"127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


def send_all(address: str, kind: str, payloads: list[bytes], concurrency: int) -> dict[str, Any]:
    path, content_type, per_request = PATHS[kind]
    host, port = address.split(":")
    queue = list(reversed(payloads))
    lock = threading.Lock()
    statuses: dict[int, int] = {}
    latencies: list[float] = []

    def client() -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=120)
        while True:
            with lock:
                if not queue:
                    break
                body = queue.pop()
            sent = time.perf_counter()
            connection.request("POST", path, body, {"Content-Type": content_type})
            response = connection.getresponse()
            response.read()
            with lock:
                statuses[response.status] = statuses.get(response.status, 0) + 1
                latencies.append(time.perf_counter() - sent)
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    accepted = statuses.get(200, 0) + statuses.get(202, 0)
    return {
        "requests": len(payloads),
        "statuses": statuses,
        "seconds": round(elapsed, 3),
        "per_second": round(accepted * per_request / elapsed),
        "median_request_ms": round(statistics.median(latencies) * 1000, 1),
    }


# --- CPU accounting: on a shared machine, CPU time per item is steadier than wall time ------------

TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def descendants(pid: int) -> list[int]:
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found += descendants(int(child))
    return found


def postgres_backends(database_url: str | None) -> list[int]:
    if not database_url:
        return []
    import psycopg

    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return [row[0] for row in rows]


def cpu_snapshot(server_pid: int, database_url: str | None) -> dict[int, float]:
    return {pid: process_cpu(pid) for pid in descendants(server_pid) + postgres_backends(database_url)}


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


# --- databases ---------------------------------------------------------------------------------


@contextmanager
def database(kind: str, workdir: Path) -> Iterator[dict[str, str]]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "CHOREOSCOPE_DATA_DIR": str(workdir),
        "DEMO": "0",
        "LOG_LEVEL": "warning",
        "REDIS_URL": REDIS_URL,
        "CHOREOSCOPE_REDIS_PREFIX": prefix,
        "CHOREOSCOPE_IN_PROCESS_SCHEDULER": "0",
        "CHOREOSCOPE_MAX_PENDING": "100000000",
        "DJANGO_SETTINGS_MODULE": "choreoscope.settings",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("DATABASE_URL", None)
    if kind == "sqlite-embedded":
        # The embedded default as `make run` starts it: no Redis, correlation runs in-process.
        for variable in ("REDIS_URL", "CHOREOSCOPE_IN_PROCESS_SCHEDULER"):
            env.pop(variable, None)
    name = f"choreoscope_bench_{uuid.uuid4().hex[:8]}"
    if kind == "postgresql":
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        env["DATABASE_URL"] = POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        subprocess.run([PYTHON, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True)
        yield env
    finally:
        if kind == "postgresql":
            import psycopg

            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
        client.close()


def stored_rows(env: dict[str, str], workdir: Path) -> int:
    if env.get("DATABASE_URL"):
        import psycopg

        with psycopg.connect(env["DATABASE_URL"]) as conn:
            return conn.execute("SELECT count(*) FROM tracing_observation").fetchone()[0]  # type: ignore[index]
    with sqlite3.connect(workdir / "choreoscope.sqlite3") as conn:
        return conn.execute("SELECT count(*) FROM tracing_observation").fetchone()[0]


def run_bare(env: dict[str, str], kind: str, requests: int, seed: int) -> dict[str, Any]:
    code = f"import json; from bench.ingest import bare; print(json.dumps(bare({kind!r}, {requests}, {seed})))"
    output = subprocess.run([PYTHON, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
    result = json.loads(output.strip().splitlines()[-1])
    return {
        "per_second": round(result["items"] / result["seconds"]),
        "seconds": round(result["seconds"], 3),
        "cpu_ms_per_1000": round(result["cpu_seconds"] * 1e6 / result["items"], 1),
    }


def measure(db: str, workers_list: list[int], concurrency: int, requests: dict[str, int]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp, database(db, Path(tmp)) as env:
        workdir = Path(tmp)
        seed = 1
        for kind in ("spans", "events"):
            seed += 1
            results[f"bare_{kind}"] = run_bare(env, kind, requests[kind], seed)
        for workers in workers_list:
            if db == "sqlite-embedded" and workers > 1:
                continue  # the embedded mode serves from one process
            with serving(env, workers, workdir / "server.log") as (address, server_pid):
                for kind in ("spans", "events"):
                    seed += 1
                    payloads = bodies(kind, requests[kind], seed)
                    send_all(address, kind, payloads[: max(2, concurrency)], concurrency)  # warm-up: connections, caches
                    before = stored_rows(env, workdir)
                    cpu_before = cpu_snapshot(server_pid, env.get("DATABASE_URL"))
                    run = send_all(address, kind, payloads[concurrency:], concurrency)
                    cpu = cpu_used(cpu_before, cpu_snapshot(server_pid, env.get("DATABASE_URL")))
                    run["committed"] = stored_rows(env, workdir) - before
                    run["cpu_ms_per_1000"] = round(cpu * 1e6 / max(1, run["committed"]), 1)
                    run["ratio_to_bare"] = round(run["per_second"] / results[f"bare_{kind}"]["per_second"], 2)
                    # CPU (server + database) per item relative to the bare pipeline's: the framework's cost.
                    run["cpu_ratio_to_bare"] = round(run["cpu_ms_per_1000"] / results[f"bare_{kind}"]["cpu_ms_per_1000"], 2)
                    results[f"http_{kind}_workers_{workers}"] = run
    return results


def main() -> dict[str, Any]:
    databases = setting("DATABASES", "sqlite,sqlite-embedded,postgresql").split(",")
    workers_list = [int(n) for n in setting("WORKERS", "1").split(",")]
    concurrency = int(setting("CONCURRENCY", "8"))
    requests = {"spans": int(setting("SPAN_REQUESTS", "120")), "events": int(setting("EVENT_REQUESTS", "300"))}
    results: dict[str, Any] = {
        "spans_per_request": SPANS_PER_REQUEST,
        "events_per_request": EVENTS_PER_REQUEST,
        "client_threads": concurrency,
        "note": "2-core machine shared with other work while measured",
    }
    for db in databases:
        results[db] = measure(db.strip(), workers_list, concurrency, requests)
        print(json.dumps({db: results[db]}), flush=True)
    return results


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
