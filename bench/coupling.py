"""The coupling page over a busy window: ``/services/coupling/`` with ``BENCH_COUPLING_FLOWS``
(600) hybrid orders in the last hour, of which the page reads the newest 300 (``SAMPLE_FLOWS``).

A fresh database (SQLite in a temporary directory, or a throwaway PostgreSQL database when
``DATABASE_URL`` is set), migrated; the orders are written through the real store and
correlation (``tests/pages/scenarios.py``, ``orchestrated``: three calls, two reactions, 15
observations each). Then, in one process, ``BENCH_COUPLING_REPEAT`` (20) times each:

- ``read``: ``tracing.coupling.recent_flow_samples`` (three queries);
- ``compute``: ``coupling_by_type`` over what was read (styles, critical paths, chains);
- ``page``: the whole page through Django's request handling, logged in.

    python -m bench coupling
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/choreoscope python -m bench coupling
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any

REPEAT = int(os.environ.get("BENCH_COUPLING_REPEAT", "20"))
FLOWS = int(os.environ.get("BENCH_COUPLING_FLOWS", "600"))

MEASURE = """
import json, statistics, time, uuid
from django.contrib.auth.models import User
from django.test import Client
from tests.pages.scenarios import orchestrated
from tracing.coupling import coupling_by_type, recent_flow_samples
from tracing.models import Flow, Observation
from tracing.services import correlate_pending_observations
from tracing.store import store_observations

for start in range(0, FLOWS, 50):
    records = []
    for n in range(start, min(start + 50, FLOWS)):
        records += orchestrated(f"order-{uuid.uuid4().hex[:10]}", minutes_ago=50 * (1 - n / FLOWS))[0]
    store_observations(records)
    while Observation.objects.filter(flow__isnull=True).exists():
        correlate_pending_observations()

def timed(function):
    samples = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    ordered = sorted(samples)
    return {"median_ms": round(statistics.median(ordered), 1), "p95_ms": round(ordered[int(len(ordered) * 0.95)], 1), "n": REPEAT}

samples = recent_flow_samples(3600)
user, _ = User.objects.get_or_create(username="bench-coupling", defaults={"is_staff": True})
client = Client()
client.force_login(user)
assert client.get("/services/coupling/").status_code == 200
out = {
    "flows": Flow.objects.count(),
    "observations": Observation.objects.count(),
    "sampled_flows": len(samples),
    "read": timed(lambda: recent_flow_samples(3600)),
    "compute": timed(lambda: coupling_by_type(samples)),
    "page": timed(lambda: client.get("/services/coupling/")),
}
print(json.dumps(out))
"""


def run(env: dict[str, str]) -> dict[str, Any]:
    from tests.conftest import ROOT

    def manage(*args: str) -> str:
        command = [sys.executable, "manage.py", *args]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=3600).stdout

    manage("migrate", "--noinput")
    output = manage("shell", "-c", f"FLOWS = {FLOWS}\nREPEAT = {REPEAT}\n{MEASURE}")
    return json.loads(output.strip().splitlines()[-1])


def main() -> dict[str, Any]:
    from tests.conftest import _create_postgres_database, _drop_postgres_database

    base_url = os.environ.get("DATABASE_URL")
    with tempfile.TemporaryDirectory(prefix="bench-coupling-") as tmp:
        env = {**os.environ, "CHOREOSCOPE_DATA_DIR": tmp, "CHOREOSCOPE_REDIS_PREFIX": "bench-coupling"}
        env.pop("REDIS_URL", None)
        env.pop("DJANGO_SETTINGS_MODULE", None)
        name = None
        if base_url:
            env["DATABASE_URL"], name = _create_postgres_database(base_url)
        try:
            results = run(env)
        finally:
            if base_url and name:
                _drop_postgres_database(base_url, name)
    results["database"] = "postgresql" if base_url else "sqlite"
    results["note"] = "medians; the machine (2 cores) was shared with other work while this ran"
    return results


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
