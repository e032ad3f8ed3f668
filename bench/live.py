"""Live latency, end to end: from the 2xx answer of ``POST /v1/events`` to the ``/ws/stream/``
message that carries the event, on 20 open WebSocket clients, at 100 and at 2,000 events/s.

A real server (``manage.py serve``) is started per mode: ``embedded`` (SQLite, in-memory channel
layer, correlation in-process) and ``services`` (PostgreSQL, Redis, a Celery worker; a throwaway
database and Redis prefix). Events are sent as CloudEvents batches over keep-alive connections,
paced every 50 ms; each event carries its own flow key, so a client can tell when it arrived.

An event reaches the stream twice: when its request commits (``stored``, no flow yet) and when
correlation has committed it (with its flow). ``latency_ms_*`` is the first, what a stream page
shows; ``with_flow_ms_*`` the second, when the row links to its flow.

A page lists at most ``CHOREOSCOPE_LIVE_STREAM_ROWS_PER_SECOND`` (600) new rows a second and
says how many matching rows it left out (``left_out``). So at 2,000 events/s an unfiltered page
lists a sample: latency is measured over the events that were listed, ``listed_share``
(``with_flow_share``) says how many that was, and ``accounted_share`` how many were listed or
reported left out (1.0: the page knows what it does not show). ``BENCH_LIVE_FILTERED`` of the
clients (4) filter on ``type=OrderCreated``, a quarter of the events (500 rows/s at 2,000/s):
their ``filtered_listed_share`` should be 1.0.

Then, per mode, ``quiet``: the clients stay connected for ``BENCH_LIVE_QUIET_SECONDS`` (60) with
nothing sent; ``sockets_dropped`` counts those that closed, ``sockets_hearing_after`` those that
receive the event sent afterwards.

    python -m bench live
    BENCH_LIVE_MODES=embedded BENCH_LIVE_RATES=100 BENCH_LIVE_SECONDS=5 BENCH_LIVE_QUIET_SECONDS=5 python -m bench live
"""

from __future__ import annotations

import asyncio
import http.client
import http.cookiejar
import json
import os
import socket
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

from tests.conftest import celery_worker_command, wait_for
from tests.http import session_cookie
from tracing.latency import percentile

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
PASSWORD = "bench-live-password-not-secret"  # noqa: S105 - a throwaway server's admin
TICK_SECONDS = 0.05
HEADERS = {"Content-Type": "application/cloudevents-batch+json"}
EVENT_TYPES = ("OrderCreated", "PaymentAuthorized", "ShipmentPrepared", "EmailSent")


def setting(name: str, default: str) -> str:
    return os.environ.get(f"BENCH_LIVE_{name}", default)


def ms(value: float | None) -> float | None:
    return round(value * 1000, 1) if value is not None else None


# --- the server ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def postgres_database() -> Iterator[str]:
    import psycopg

    name = f"bench_live_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def serving(mode: str, workdir: Path) -> Iterator[tuple[str, list[int]]]:
    """The server's address, and the process ids of the web process and the worker (if any)."""
    port = free_port()
    env = {
        **os.environ,
        "CHOREOSCOPE_DATA_DIR": str(workdir),
        "PORT": str(port),
        "OTLP_PORT": "0",
        "DEMO": "0",
        "ADMIN_PASSWORD": PASSWORD,
        "LOG_LEVEL": "warning",
        "CHOREOSCOPE_REDIS_PREFIX": f"bench-live-{uuid.uuid4().hex[:6]}",
        "CHOREOSCOPE_IN_PROCESS_SCHEDULER": "0",
    }
    for name in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    with postgres_database() if mode == "services" else nullcontext() as database_url:
        if mode == "services":
            env.update(DATABASE_URL=database_url, REDIS_URL=REDIS_URL)
        subprocess.run([PYTHON, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True)
        subprocess.run([PYTHON, "manage.py", "ensureadmin"], cwd=ROOT, env=env, check=True, capture_output=True)
        with (workdir / "server.log").open("ab") as log:
            processes = [
                subprocess.Popen(
                    [PYTHON, "manage.py", "serve", "--no-demo", "--port", str(port), "--otlp-port", "0", "--otlp-grpc-port", "0"],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=log,
                )
            ]
            if mode == "services":
                worker = celery_worker_command(env["CHOREOSCOPE_REDIS_PREFIX"])
                processes.append(subprocess.Popen(worker, cwd=ROOT, env=env, stdout=log, stderr=log))
            try:
                wait_for(f"http://127.0.0.1:{port}/healthz", process=processes[0])
                yield f"127.0.0.1:{port}", [process.pid for process in processes]
            finally:
                for process in processes:
                    process.terminate()
                for process in processes:
                    try:
                        process.wait(15)
                    except subprocess.TimeoutExpired:
                        process.kill()


@contextmanager
def nullcontext() -> Iterator[str]:
    yield ""


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- senders -------------------------------------------------------------------------------------


def batch_body(keys: list[str], tick: int) -> bytes:
    events = [
        {
            "specversion": "1.0",
            "id": key,
            "source": f"/bench/{EVENT_TYPES[n % 4].lower()}",
            "type": EVENT_TYPES[n % 4],
            "correlationid": key,
            "data": {"order_id": key, "tick": tick},
        }
        for n, key in enumerate(keys)
    ]
    return json.dumps(events).encode()


def send_schedule(address: str, rate: int, seconds: float, acked: dict[str, float], errors: list[str]) -> float:
    """Send ``rate`` events/s for ``seconds`` on a few keep-alive connections; ``acked[key]`` is
    the monotonic time the request holding ``key`` got its 2xx. Returns the achieved events/s."""
    per_tick = max(1, round(rate * TICK_SECONDS))
    ticks = int(seconds / TICK_SECONDS)
    plan = []
    for tick in range(ticks):
        keys = [f"b{tick}-{n}-{uuid.uuid4().hex[:6]}" for n in range(per_tick)]
        plan.append((tick * TICK_SECONDS, keys, batch_body(keys, tick)))
    lock = threading.Lock()
    cursor = iter(plan)
    started = time.monotonic() + 0.2

    def sender() -> None:
        connection = http.client.HTTPConnection(address, timeout=30)
        while True:
            with lock:
                item = next(cursor, None)
            if item is None:
                return
            offset, keys, body = item
            delay = started + offset - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                connection.request("POST", "/v1/events", body=body, headers=HEADERS)
                response = connection.getresponse()
                response.read()
                now = time.monotonic()
                if 200 <= response.status < 300:
                    with lock:
                        acked.update(dict.fromkeys(keys, now))
                else:
                    errors.append(f"HTTP {response.status}")
            except OSError as error:
                errors.append(repr(error))
                connection = http.client.HTTPConnection(address, timeout=30)

    threads = [threading.Thread(target=sender) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(acked) / max(max(acked.values(), default=started) - started, 1e-9)


# --- clients -------------------------------------------------------------------------------------


FILTER = {"type": "OrderCreated"}


async def client(
    address: str,
    cookie: str,
    arrivals: dict[str, float],
    linked: dict[str, float],
    ready: asyncio.Event,
    messages: list[int],
    delivery: list[float],
    stop: asyncio.Event,
    filtered: bool = False,
) -> None:
    """``messages``: [messages, snapshots after the first, rows reported left out]."""
    from websockets.asyncio.client import connect
    from websockets.typing import Origin

    async with connect(
        f"ws://{address}/ws/stream/", origin=Origin(f"http://{address}"), additional_headers={"Cookie": cookie}, max_size=2**24
    ) as socket:
        json.loads(await socket.recv())  # the snapshot
        if filtered:
            await socket.send(json.dumps({"type": "subscribe", "filters": FILTER}))
            while json.loads(await socket.recv())["type"] != "snapshot":
                pass
        ready.set()
        while not stop.is_set():
            try:
                text = await asyncio.wait_for(socket.recv(), timeout=0.5)
            except TimeoutError:
                continue
            now = time.monotonic()
            message = json.loads(text)
            messages[0] += 1
            if message["type"] == "snapshot":
                messages[1] += 1
            elif message.get("published_at"):
                delivery.append(time.time() - message["published_at"])
            messages[2] += message.get("left_out", 0)
            for item in message.get("items", []):
                arrivals.setdefault(item["flow_key"] or "", now)
                if item["flow_id"]:
                    linked.setdefault(item["flow_key"], now)


def share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


async def measure_rate(address: str, cookie: str, rate: int, seconds: float, clients: int, filtered: int) -> dict[str, Any]:
    arrivals: list[dict[str, float]] = [{} for _ in range(clients)]
    linked: list[dict[str, float]] = [{} for _ in range(clients)]
    readies = [asyncio.Event() for _ in range(clients)]
    counts = [[0, 0, 0] for _ in range(clients)]
    stop = asyncio.Event()
    delivery: list[float] = []  # seconds from a group message's publication to a client's receipt
    is_filtered = [n >= clients - filtered for n in range(clients)]
    tasks = [
        asyncio.create_task(
            client(address, cookie, arrivals[n], linked[n], readies[n], counts[n], delivery, stop, filtered=is_filtered[n])
        )
        for n in range(clients)
    ]
    await asyncio.wait_for(asyncio.gather(*(ready.wait() for ready in readies)), timeout=30)
    acked: dict[str, float] = {}
    errors: list[str] = []
    achieved = await asyncio.to_thread(send_schedule, address, rate, seconds, acked, errors)
    await asyncio.sleep(3)  # stragglers
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    latencies = [arrived[key] - at for arrived in arrivals for key, at in acked.items() if key in arrived]
    with_flow = [arrived[key] - at for arrived in linked for key, at in acked.items() if key in arrived]
    pairs = len(acked) * clients
    # The events each client should list: all of them, or those of its filter's type.
    matching = {key for key in acked if EVENT_TYPES[int(key.split("-")[1]) % 4] == FILTER["type"]}
    unfiltered = [n for n in range(clients) if not is_filtered[n]]
    filtered_ones = [n for n in range(clients) if is_filtered[n]]
    listed_unfiltered = sum(len(arrivals[n].keys() & acked.keys()) for n in unfiltered)
    left_out_unfiltered = sum(counts[n][2] for n in unfiltered)
    listed_filtered = sum(len(arrivals[n].keys() & matching) for n in filtered_ones)
    return {
        "target_events_per_s": rate,
        "achieved_events_per_s": round(achieved, 1),
        "events_acknowledged": len(acked),
        "http_errors": len(errors),
        "clients": clients,
        "messages_per_client_per_s": round(statistics.mean(c[0] for c in counts) / (seconds + 3), 2),
        "resyncs_per_client": round(statistics.mean(c[1] for c in counts), 1),
        "listed_share": round(len(latencies) / pairs, 4) if pairs else None,
        "unfiltered_listed_share": share(listed_unfiltered, len(acked) * len(unfiltered)),
        "accounted_share": share(listed_unfiltered + left_out_unfiltered, len(acked) * len(unfiltered)),
        "filtered_clients": filtered,
        "filtered_listed_share": share(listed_filtered, len(matching) * len(filtered_ones)),
        "latency_ms_p50": ms(percentile(latencies, 0.50)),
        "latency_ms_p99": ms(percentile(latencies, 0.99)),
        "latency_ms_max": ms(max(latencies)) if latencies else None,
        "with_flow_share": round(len(with_flow) / pairs, 4) if pairs else None,
        "with_flow_ms_p50": ms(percentile(with_flow, 0.50)),
        "with_flow_ms_p99": ms(percentile(with_flow, 0.99)),
        "publish_to_client_ms_p50": ms(percentile(delivery, 0.50)),
        "publish_to_client_ms_p99": ms(percentile(delivery, 0.99)),
    }


async def quiet_socket(address: str, cookie: str, ready: asyncio.Event, key: str, heard: asyncio.Event) -> str:
    """One socket through the quiet spell: "dropped" if it closed, else whether it heard ``key``."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed
    from websockets.typing import Origin

    try:
        async with connect(
            f"ws://{address}/ws/stream/", origin=Origin(f"http://{address}"), additional_headers={"Cookie": cookie}
        ) as socket:
            json.loads(await socket.recv())  # the snapshot
            ready.set()
            while True:
                message = json.loads(await socket.recv())
                if key in [item["flow_key"] for item in message.get("items", [])]:
                    heard.set()
                    return "heard"
    except ConnectionClosed:
        return "dropped"


async def measure_quiet(address: str, cookie: str, seconds: float, clients: int) -> dict[str, Any]:
    key = f"quiet-{uuid.uuid4().hex[:8]}"
    readies = [asyncio.Event() for _ in range(clients)]
    heard = [asyncio.Event() for _ in range(clients)]
    tasks = [asyncio.create_task(quiet_socket(address, cookie, readies[n], key, heard[n])) for n in range(clients)]
    await asyncio.wait_for(asyncio.gather(*(ready.wait() for ready in readies)), timeout=30)
    await asyncio.sleep(seconds)
    dropped = sum(task.done() for task in tasks)  # a socket that hears nothing returns only when it closes
    body = json.dumps({"specversion": "1.0", "id": key, "source": "/bench/quiet", "type": "OrderCreated", "correlationid": key})
    connection = http.client.HTTPConnection(address, timeout=10)
    connection.request("POST", "/v1/events", body=body, headers={"Content-Type": "application/cloudevents+json"})
    status = connection.getresponse().status
    await asyncio.wait([asyncio.create_task(event.wait()) for event in heard], timeout=5)
    for task in tasks:
        task.cancel()
    return {
        "quiet_seconds": seconds,
        "clients": clients,
        "sockets_dropped": dropped,
        "event_status": status,
        "sockets_hearing_after": sum(event.is_set() for event in heard),
    }


def main() -> dict[str, Any]:
    modes = [m.strip() for m in setting("MODES", "embedded,services").split(",") if m.strip()]
    rates = [int(r) for r in setting("RATES", "100,2000").split(",")]
    seconds = float(setting("SECONDS", "10"))
    clients = int(setting("CLIENTS", "20"))
    filtered = int(setting("FILTERED", "4"))
    quiet = float(setting("QUIET_SECONDS", "60"))
    results: dict[str, Any] = {"note": "shared 2-core machine; one run per cell; latency over listed events (see listed_share)"}
    for mode in modes:
        with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp, serving(mode, Path(tmp)) as (address, pids):
            cookie = session_cookie(f"http://{address}", PASSWORD)
            for rate in rates:
                print(f"  {mode}: {rate} events/s for {seconds:g} s, {clients} clients", flush=True)
                cpu_before, started = [cpu_seconds(pid) for pid in pids], time.monotonic()
                results[f"{mode}_{rate}"] = asyncio.run(measure_rate(address, cookie, rate, seconds, clients, filtered))
                elapsed = time.monotonic() - started
                used = [cpu_seconds(pid) - before for pid, before in zip(pids, cpu_before, strict=True)]
                # CPU per second of the run (sending, stragglers, socket set-up included): on a shared
                # machine, steadier than the latencies for comparing two versions' cost.
                results[f"{mode}_{rate}"]["web_cpu_share"] = round(used[0] / elapsed, 3)
                if len(used) > 1:
                    results[f"{mode}_{rate}"]["worker_cpu_share"] = round(used[1] / elapsed, 3)
                print(f"    {results[f'{mode}_{rate}']}", flush=True)
            if quiet:
                print(f"  {mode}: {clients} clients through {quiet:g} quiet seconds", flush=True)
                results[f"{mode}_quiet"] = asyncio.run(measure_quiet(address, cookie, quiet, clients))
                print(f"    {results[f'{mode}_quiet']}", flush=True)
    return results


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
