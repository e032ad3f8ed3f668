"""Page timings for a 1,000-observation flow: server time of ``/flows/<id>/`` and ``/flows/``,
and the time until the causal graph and the timeline are drawn in Chromium.

Starts a real server (``manage.py serve``, as the end-to-end tests do) on the embedded default,
or on PostgreSQL when ``DATABASE_URL`` is set (a fresh database, dropped afterwards); writes the
flow through the real store and correlation (``tests/pages/scenarios.py``); then

- server time: ``BENCH_PAGES_REPEAT`` GETs of each page over loopback with a logged-in session
  (Django's full request path plus a local round trip);
- time to a drawn graph: ``BENCH_PAGES_LOADS`` fresh page loads, each read from the page's own
  performance marks (navigation start → graph drawn, → timeline drawn) and the graph's share.

With ``BENCH_PAGES_LARGE_DATABASE_URL`` (the database ``python -m bench api`` fills with a million
observations), it also times ``/flows/`` with each filter there, in-process.

    python -m bench pages
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/choreoscope python -m bench pages
    BENCH_PAGES_LARGE_DATABASE_URL=postgres://postgres@127.0.0.1:5432/choreoscope_bench python -m bench pages
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

REPEAT = int(os.environ.get("BENCH_PAGES_REPEAT", "30"))
LOADS = int(os.environ.get("BENCH_PAGES_LOADS", "10"))
OBSERVATIONS = 1000


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 1),
        "min_ms": round(ordered[0], 1),
        "n": len(ordered),
    }


def timed_gets(page: Any, path: str) -> list[float]:
    samples = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        response = page.request.get(path)
        body = response.body()
        samples.append((time.perf_counter() - started) * 1000)
        if response.status != 200 or not body:
            raise RuntimeError(f"{path} answered {response.status}")
    return samples


def drawn_times(page: Any, path: str) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"graph_drawn_ms": [], "timeline_drawn_ms": [], "graph_render_ms": []}
    for _ in range(LOADS):
        page.goto(path)
        page.wait_for_selector("#flow-graph[data-ready=true]", timeout=120_000)
        marks = page.evaluate(
            """() => Object.fromEntries(['flow-graph-start', 'flow-graph-drawn', 'flow-timeline-drawn']
                .map((name) => [name, performance.getEntriesByName(name)[0].startTime]))"""
        )
        times["graph_drawn_ms"].append(marks["flow-graph-drawn"])
        times["timeline_drawn_ms"].append(marks["flow-timeline-drawn"])
        times["graph_render_ms"].append(marks["flow-graph-drawn"] - marks["flow-graph-start"])
    return times


def measure(server: Any) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    from tests.conftest import ADMIN_PASSWORD, CHROMIUM, CHROMIUM_ARGS

    seeded = server.manage("shell", "-c", f"from tests.pages.scenarios import main; main('large', 'bench-saga-{OBSERVATIONS}')")
    flow = json.loads(seeded.stdout.strip().splitlines()[-1])
    flow_path = f"/flows/{flow['flow_id']}/"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=server.url, viewport={"width": 1360, "height": 860})
        page = context.new_page()
        page.set_default_timeout(120_000)  # a busy shared machine can be slow; the figures say how slow
        page.goto("/login/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", ADMIN_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{server.url}/")
        timed_gets(page, flow_path)  # warm up caches and the connection
        results: dict[str, Any] = {
            "observations": flow["observations"],
            "flow_page_server": summary(timed_gets(page, flow_path)),
            "flows_list_server": summary(timed_gets(page, "/flows/")),
            "flow_page_html_bytes": len(page.request.get(flow_path).body()),
        }
        for name, samples in drawn_times(page, flow_path).items():
            results[name] = summary(samples)
        browser.close()
    return results


LIST_TIMING = """
import json, statistics, time
from django.contrib.auth.models import User
from django.test import Client
from tracing.models import Flow, Observation
user, _ = User.objects.get_or_create(username="bench-pages", defaults={"is_staff": True})
client = Client()
client.force_login(user)
queries = {"newest": "", "key": "key=order-4242", "status": "status=stuck", "service": "service=fraud-check",
           "event_type": "event_type=PointsCreated", "range": "range=24h&status=failed"}
out = {"observations": Observation.objects.count(), "flows": Flow.objects.count()}
for name, query in queries.items():
    client.get("/flows/?" + query)
    samples = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        response = client.get("/flows/?" + query)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (query, response.status_code)
    out[name] = {"median_ms": round(statistics.median(samples), 1), "p95_ms": round(sorted(samples)[int(len(samples) * 0.95)], 1)}
print(json.dumps(out))
"""


def list_on_large_database(url: str) -> dict[str, Any]:
    """``/flows/`` with each filter, in-process, on a database that ``python -m bench api`` filled."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {**os.environ, "DATABASE_URL": url, "CHOREOSCOPE_REDIS_PREFIX": "bench-pages"}
    env.pop("REDIS_URL", None)
    code = f"REPEAT = {REPEAT}\n{LIST_TIMING}"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> dict[str, Any]:
    from tests.conftest import _create_postgres_database, _drop_postgres_database, start_server, stop_server

    base_url = os.environ.get("DATABASE_URL")
    extra: dict[str, str] = {}
    name = None
    if base_url:
        extra["DATABASE_URL"], name = _create_postgres_database(base_url)
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as tmp:
        server = start_server(Path(tmp), extra)
        try:
            results = measure(server)
        finally:
            stop_server(server)
            if base_url and name:
                _drop_postgres_database(base_url, name)
    results["database"] = "postgresql" if base_url else "sqlite"
    large = os.environ.get("BENCH_PAGES_LARGE_DATABASE_URL")
    if large:
        results["flows_list_on_large_database"] = list_on_large_database(large)
    results["note"] = "medians; the machine (2 cores) was shared with other work while this ran"
    return results


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
