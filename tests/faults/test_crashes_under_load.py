"""Faults under load, in production mode (PostgreSQL, Redis, a Celery worker, ingest tokens
required): while client threads send CloudEvents batches and OTLP exports, the web process is
killed (-9) and restarted, the worker is killed (-9) and restarted, and the web process is
stopped with SIGTERM (graceful: requests in flight are answered) and restarted. Afterwards every
acknowledged item is stored exactly once and every stored observation ends in a flow.

The clients behave as real exporters do: an item counts as acknowledged only when its request got
a 2xx; a refused connection, a reset, a 429 or a 503 makes them send the same items again."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.conftest import (
    ROOT,
    RunningServer,
    _create_postgres_database,
    _drop_postgres_database,
    celery_worker_command,
    start_server,
    stop_server,
    wait_for,
)
from tests.polling import eventually

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

EVENT_THREADS, SPAN_THREADS = 2, 2
EVENTS_PER_BATCH, SPANS_PER_TRACE = 20, 8
# A request that began this long before SIGTERM has surely been accepted by the server, so a
# graceful stop must answer it.
IN_FLIGHT_MARGIN_SECONDS = 0.3
BIG_BATCH_EVENTS = 10_000


@dataclass
class Ledger:
    """What the clients sent and what the server acknowledged, shared by the client threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acknowledged_events: set[str] = field(default_factory=set)
    acknowledged_spans: set[tuple[str, str]] = field(default_factory=set)
    retries: int = 0
    answers: dict[str, int] = field(default_factory=dict)
    # (start, end, outcome) of every request: outcome is an HTTP status or an error name.
    requests: list[tuple[float, float, str]] = field(default_factory=list)
    refused_unexpectedly: list[str] = field(default_factory=list)

    def record(self, started: float, outcome: str) -> None:
        with self.lock:
            self.requests.append((started, time.monotonic(), outcome))
            self.answers[outcome] = self.answers.get(outcome, 0) + 1


@pytest.fixture
def production_server(tmp_path: Path) -> Iterator[tuple[RunningServer, str]]:
    base_url = os.environ["DATABASE_URL"]
    database_url, name = _create_postgres_database(base_url)
    env = {
        "CHOREOSCOPE_ENV": "production",
        "SECRET_KEY": uuid.uuid4().hex * 2,
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": database_url,
        "CHOREOSCOPE_SWEEP_SECONDS": "5",
        "LOG_LEVEL": "warning",
    }
    server = start_server(tmp_path, env, worker=True)
    try:
        yield server, database_url
    finally:
        stop_server(server)
        _drop_postgres_database(base_url, name)


def ingest_token(server: RunningServer) -> str:
    return server.manage("token", "create", "fault-load", "--scope", "ingest").stdout.strip().splitlines()[-1]


def finished_trace(service: str, key: str) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("faults")
    with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER, attributes={"order.id": key}):
        for step in range(SPANS_PER_TRACE - 1):
            with tracer.start_as_current_span(f"step {step}", kind=SpanKind.INTERNAL):
                pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def event_batch(key: str, size: int) -> list[dict[str, Any]]:
    return [
        {
            "specversion": "1.0",
            "id": f"{key}-{index}",
            "source": "/faults/checkout",
            "type": "OrderCreated" if index == 0 else f"OrderStep{index}",
            "correlationid": key,
            "data": {"order_id": key, "step": index},
        }
        for index in range(size)
    ]


def post_batch_once(server: RunningServer, token: str, events: list[dict[str, Any]], ledger: Ledger) -> str:
    """One POST of ``events``; returns the status, or the name of the error that ended it."""
    headers = {"Content-Type": "application/cloudevents-batch+json", "Authorization": f"Bearer {token}"}
    request = urllib.request.Request(f"{server.url}/v1/events", data=json.dumps(events).encode(), headers=headers, method="POST")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            outcome = str(response.status)
    except urllib.error.HTTPError as error:
        outcome = str(error.code)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        outcome = type(getattr(error, "reason", error)).__name__
    ledger.record(started, outcome)
    if outcome.startswith("2"):
        with ledger.lock:
            ledger.acknowledged_events.update(event["id"] for event in events)
    return outcome


def send_events(server: RunningServer, token: str, ledger: Ledger, thread: int, stop: threading.Event, deadline: float) -> None:
    batch_number = 0
    while not stop.is_set():
        batch_number += 1
        events = event_batch(f"fault-order-{thread}-{batch_number}", EVENTS_PER_BATCH)
        while time.monotonic() < deadline:
            outcome = post_batch_once(server, token, events, ledger)
            if outcome.startswith("2"):
                break
            if outcome[0] == "4" and outcome != "429":
                ledger.refused_unexpectedly.append(f"events: {outcome}")
                return
            with ledger.lock:
                ledger.retries += 1
            time.sleep(0.2)


def send_spans(server: RunningServer, token: str, ledger: Ledger, thread: int, stop: threading.Event, deadline: float) -> None:
    exporter = OTLPSpanExporter(endpoint=f"{server.url}/v1/traces", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    trace_number = 0
    while not stop.is_set():
        trace_number += 1
        spans = finished_trace(f"faults-{thread}", f"fault-trace-{thread}-{trace_number}")
        while time.monotonic() < deadline:
            started = time.monotonic()
            result = exporter.export(spans)
            ledger.record(started, "export-ok" if result == SpanExportResult.SUCCESS else "export-failed")
            if result == SpanExportResult.SUCCESS:
                with ledger.lock:
                    ledger.acknowledged_spans.update(
                        (format(span.context.trace_id, "032x"), format(span.context.span_id, "016x")) for span in spans
                    )
                break
            with ledger.lock:
                ledger.retries += 1
            time.sleep(0.2)
    exporter.shutdown()


def restart_web(server: RunningServer) -> None:
    log = server.log_path.open("ab")
    web = subprocess.Popen([sys.executable, "manage.py", "serve", "--no-demo"], cwd=ROOT, env=server.env, stdout=log, stderr=log)
    server.processes[0] = web
    wait_for(f"{server.url}/healthz", timeout=30, process=web)


def restart_worker(server: RunningServer) -> None:
    log = server.log_path.open("ab")
    command = celery_worker_command(server.env["CHOREOSCOPE_REDIS_PREFIX"], name=f"restarted-{uuid.uuid4().hex[:6]}@%h")
    server.processes[1] = subprocess.Popen(command, cwd=ROOT, env=server.env, stdout=log, stderr=log)


def stored_items(database_url: str) -> dict[str, list[tuple[str, int]]]:
    """Per stored item the clients sent: its identity and flow (``-1`` while uncorrelated)."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT kind, event_id, trace_id, span_id, COALESCE(flow_id, -1) FROM tracing_observation"
            " WHERE event_source = %s OR service LIKE %s",
            ["/faults/checkout", "faults-%"],
        ).fetchall()
    found: dict[str, list[tuple[str, int]]] = {"event": [], "span": []}
    for kind, event_id, trace_id, span_id, flow_id in rows:
        found[kind].append((event_id if kind == "event" else f"{trace_id}/{span_id}", flow_id))
    return found


def test_no_acknowledged_item_is_lost_or_duplicated_when_processes_crash_or_stop_under_load(production_server):
    server, database_url = production_server
    token, ledger, stop = ingest_token(server), Ledger(), threading.Event()
    deadline = time.monotonic() + 45
    senders = [send_events] * EVENT_THREADS + [send_spans] * SPAN_THREADS
    clients = [
        threading.Thread(target=sender, args=(server, token, ledger, number, stop, deadline), daemon=True)
        for number, sender in enumerate(senders)
    ]
    for client in clients:
        client.start()

    time.sleep(2)
    server.processes[0].kill()  # kill -9 the web process mid-ingest
    server.processes[0].wait(10)
    restart_web(server)
    time.sleep(2)
    server.processes[1].kill()  # kill -9 the worker mid-correlation
    server.processes[1].wait(10)
    restart_worker(server)
    time.sleep(2)
    # A large batch takes the server a second or two: SIGTERM arrives while it is in flight.
    big_batch = event_batch("fault-big-batch", BIG_BATCH_EVENTS)
    big_batch_answer: list[str] = []
    in_flight = threading.Thread(target=lambda: big_batch_answer.append(post_batch_once(server, token, big_batch, ledger)))
    in_flight.start()
    time.sleep(IN_FLIGHT_MARGIN_SECONDS)
    terminated_at = time.monotonic()
    server.processes[0].send_signal(signal.SIGTERM)  # graceful stop under load
    graceful_exit = server.processes[0].wait(30)
    in_flight.join(10)
    restart_web(server)
    time.sleep(2)

    stop.set()
    for client in clients:
        client.join(timeout=max(1.0, deadline - time.monotonic()))
    assert not any(client.is_alive() for client in clients), "a client still had unacknowledged items at the deadline"
    assert ledger.refused_unexpectedly == [], ledger.answers

    surely_accepted = terminated_at - IN_FLIGHT_MARGIN_SECONDS
    in_flight_at_sigterm = [
        outcome for started, ended, outcome in ledger.requests if started < surely_accepted and ended > terminated_at
    ]
    # uvicorn finishes what is in flight, then re-raises the signal so the exit status tells it.
    assert graceful_exit in (0, -signal.SIGTERM), server.log()[-3000:]
    assert big_batch_answer == ["202"], big_batch_answer
    assert all(outcome[0].isdigit() or outcome.startswith("export-") for outcome in in_flight_at_sigterm), in_flight_at_sigterm

    def drained() -> dict[str, list[tuple[str, int]]] | None:
        found = stored_items(database_url)
        everything = [flow for rows in found.values() for _, flow in rows]
        return found if everything and -1 not in everything else None

    found = eventually("every stored observation correlated", drained, timeout=30, every=0.5)
    stored_events = [identity for identity, _ in found["event"]]
    stored_spans = [identity for identity, _ in found["span"]]
    acknowledged_spans = {f"{trace}/{span}" for trace, span in ledger.acknowledged_spans}

    lost = (ledger.acknowledged_events - set(stored_events)) | (acknowledged_spans - set(stored_spans))
    duplicated = len(stored_events) - len(set(stored_events)) + len(stored_spans) - len(set(stored_spans))
    assert ledger.acknowledged_events and acknowledged_spans and ledger.retries > 0, ledger.answers
    assert (len(lost), duplicated) == (0, 0), f"lost {sorted(lost)[:10]}; answers {ledger.answers}"
    print(
        f"\nacknowledged {len(ledger.acknowledged_events)} events and {len(acknowledged_spans)} spans;"
        f" stored {len(stored_events)} and {len(stored_spans)}; {ledger.retries} retries;"
        f" {len(in_flight_at_sigterm)} requests in flight at SIGTERM, all answered; answers {ledger.answers}"
    )
