"""Memory a hostile request costs the server: peak RSS growth of a real ``manage.py serve`` (one
process, a fresh one per probe) while it answers one body built to amplify, on SQLite and on
PostgreSQL. Each probe is answered, then ``/healthz`` must answer 200.

The peak is the process's ``VmHWM`` (``/proc/PID/status``), reset after a warm-up request by
writing 5 to ``/proc/PID/clear_refs``; growth is that peak minus the RSS at the reset.

    python -m bench memory
    BENCH_MEMORY_DATABASES=postgresql BENCH_MEMORY_MIB=16 BENCH_MEMORY_PROBES=span_events python -m bench memory
"""

from __future__ import annotations

import gzip
import http.client
import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.ingest import database, descendants, serving, span_body

MIB = 1024 * 1024
TRACE_ID, SPAN_ID = b"\x01" * 16, b"\x02" * 8


def setting(name: str, default: str) -> str:
    return os.environ.get(f"BENCH_MEMORY_{name}", default)


# --- hostile bodies ------------------------------------------------------------------------------


def varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def one_span_request(inner: bytes) -> bytes:
    """An ExportTraceServiceRequest of one span holding ``inner`` (its fields, encoded)."""
    span = field(1, TRACE_ID) + field(2, SPAN_ID) + field(5, b"hostile") + inner
    return field(1, field(2, field(2, span)))


def empty_fields(number: int, size: int) -> bytes:
    """As many empty messages in field ``number`` as fit in about ``size`` bytes."""
    one = field(number, b"")
    return one * ((size - 64) // len(one))


def span_events(size: int) -> bytes:
    return one_span_request(empty_fields(11, size))


def span_links(size: int) -> bytes:
    return one_span_request(empty_fields(13, size))


def span_attributes(size: int) -> bytes:
    return one_span_request(empty_fields(9, size))


def event_attributes(size: int) -> bytes:
    return one_span_request(field(11, field(1, b"e") + empty_fields(3, size - 16)))


def array_values(size: int) -> bytes:
    """One attribute whose value is an array of millions of empty values."""
    array = field(5, empty_fields(1, size - 32))
    return one_span_request(field(9, field(1, b"a") + field(2, array)))


def resource_spans(size: int) -> bytes:
    return empty_fields(1, size)


def log_attributes(size: int) -> bytes:
    """An ExportLogsServiceRequest of one log record with millions of empty attributes."""
    return field(1, field(2, field(2, field(9, b"x") + empty_fields(6, size - 16))))


def otlp_json_objects(size: int) -> bytes:
    count = (size - 32) // 3
    return b'{"resourceSpans":[' + b"{}," * count + b"{}]}"


def cloudevent_data_objects(size: int) -> bytes:
    count = (size - 128) // 3
    return b'{"specversion":"1.0","id":"m","source":"/s","type":"T","data":[' + b"{}," * count + b"{}]}"


def cloudevents_gzip_bomb(size: int) -> bytes:
    return b"[" + b"{}," * ((size - 4) // 3) + b"{}]"


def span_events_within_the_limit(size: int) -> bytes:
    """One span with 1.99 million empty events: just under CHOREOSCOPE_MAX_ELEMENTS_PER_REQUEST's
    default, so taken (and truncated): what the limit lets one request cost."""
    return one_span_request(field(11, b"") * 1_990_000)


def normal_spans(size: int) -> bytes:
    return span_body(random.Random(1), 512)


PROTOBUF, JSON = "application/x-protobuf", "application/json"
PROBES: dict[str, tuple[str, str, Callable[[int], bytes], bool]] = {
    # name: (path, content type, body of about N bytes, gzip)
    "normal_512_spans": ("/v1/traces", PROTOBUF, normal_spans, False),
    "span_events": ("/v1/traces", PROTOBUF, span_events, False),
    "span_events_within_the_limit": ("/v1/traces", PROTOBUF, span_events_within_the_limit, False),
    "span_links": ("/v1/traces", PROTOBUF, span_links, False),
    "span_attributes": ("/v1/traces", PROTOBUF, span_attributes, False),
    "event_attributes": ("/v1/traces", PROTOBUF, event_attributes, False),
    "array_values": ("/v1/traces", PROTOBUF, array_values, False),
    "resource_spans": ("/v1/traces", PROTOBUF, resource_spans, False),
    "log_attributes": ("/v1/logs", PROTOBUF, log_attributes, False),
    "otlp_json_objects": ("/v1/traces", JSON, otlp_json_objects, False),
    "cloudevent_data_objects": ("/v1/events", "application/cloudevents+json", cloudevent_data_objects, False),
    "cloudevents_gzip_bomb": ("/v1/events", "application/cloudevents-batch+json", cloudevents_gzip_bomb, True),
}


# --- measuring -----------------------------------------------------------------------------------


def status_kib(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


def post(address: str, path: str, content_type: str, body: bytes, gzipped: bool) -> tuple[int, int, float]:
    host, port = address.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=600)
    headers = {"Content-Type": content_type}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    started = time.perf_counter()
    connection.request("POST", path, body, headers)
    response = connection.getresponse()
    answer = response.read()
    connection.close()
    return response.status, len(answer), time.perf_counter() - started


def healthy(address: str) -> bool:
    host, port = address.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def probe(env: dict[str, str], workdir: Path, name: str, size: int) -> dict[str, Any]:
    path, content_type, build, gzipped = PROBES[name]
    raw = build(size)
    body = gzip.compress(raw, 6) if gzipped else raw
    warm_up = span_body(random.Random(2), 8)
    with serving(env, 1, workdir / "server.log") as (address, server_pid):
        post(address, "/v1/traces", PROTOBUF, warm_up, False)
        pids = descendants(server_pid)
        for pid in pids:
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        before = {pid: status_kib(pid, "VmRSS") for pid in pids}
        status, answer_bytes, seconds = post(address, path, content_type, body, gzipped)
        growth = max(status_kib(pid, "VmHWM") - before[pid] for pid in pids)
        ok = healthy(address)
    return {
        "body_bytes": len(body),
        "decoded_bytes": len(raw),
        "status": status,
        "answer_bytes": answer_bytes,
        "seconds": round(seconds, 2),
        "peak_growth_mib": round(growth / 1024, 1),
        "healthy_after": ok,
    }


def main() -> dict[str, Any]:
    size = int(float(setting("MIB", "63.9")) * MIB)
    names = [name for name in setting("PROBES", ",".join(PROBES)).split(",") if name]
    results: dict[str, Any] = {"body_mib": round(size / MIB, 1), "note": "2-core machine shared with other work while measured"}
    for db in setting("DATABASES", "sqlite,postgresql").split(","):
        with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp, database(db, Path(tmp)) as env:
            env = {**env, "CHOREOSCOPE_MAX_PENDING": "100000000"}
            results[db] = {}
            for name in names:
                results[db][name] = probe(env, Path(tmp), name, size)
                print(db, name, results[db][name], flush=True)
    return results
