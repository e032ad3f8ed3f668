"""Take the README's screenshots.

``python -m tests.pages.screenshots``: the flows pages. Starts a real server on the embedded default
with a flow definition (an order completes at LabelPrinted), writes a handful of recent checkouts
through the real store and correlation (one stuck waiting for rewards, one failed, the others
shipped), and saves 1360x860 and phone-width shots under ``docs/screenshots/``.

``python -m tests.pages.screenshots --demo``: the overview, live, services and alerts pages as
``make run`` shows them: a real server with the demo shop and its flow definition, rewards dropping
30% of its reactions, shot after about a minute and a half of traffic.

``python -m tests.pages.screenshots --sampling``: the live stream listing a sample, on a server
whose pages list up to 100 new rows a second, sent 400 events a second.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tests.conftest import CHROMIUM, CHROMIUM_ARGS, ROOT, RunningServer, log_in, start_server, stop_server

OUT = ROOT / "docs" / "screenshots"
FLOWS_YAML = """
flows:
  - type: order
    start: [OrderCreated]
    end: [LabelPrinted]
"""
ORDERS = [  # (scenario, key, minutes ago), oldest first so the newest lists first
    ("shipped", "order-1037", 48.0),
    ("shipped", "order-1038", 41.0),
    ("failed", "order-1039", 33.0),
    ("shipped", "order-1040", 26.0),
    ("shipped", "order-1041", 17.0),
    ("checkout", "order-1042", 9.0),
]


def seed(server: RunningServer, scenario: str, key: str, minutes_ago: float) -> dict[str, Any]:
    code = f"from tests.pages.scenarios import main; main({scenario!r}, {key!r}, minutes_ago={minutes_ago})"
    return json.loads(server.manage("shell", "-c", code).stdout.strip().splitlines()[-1])


def shoot(server: RunningServer, stuck_flow: int) -> None:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for suffix, viewport, scheme in (
            ("", {"width": 1360, "height": 860}, "light"),
            ("-phone", {"width": 390, "height": 844}, "light"),
            ("-dark", {"width": 1360, "height": 860}, "dark"),
        ):
            context = browser.new_context(base_url=server.url, viewport=viewport, color_scheme=scheme)  # type: ignore[arg-type]
            page = context.new_page()
            log_in(page, server.url)
            page.goto("/flows/")
            page.screenshot(path=OUT / f"flows{suffix}.png")
            page.goto(f"/flows/{stuck_flow}/")
            page.wait_for_selector("#flow-graph[data-ready=true]")
            if suffix != "-phone":
                page.screenshot(path=OUT / f"flow-overview{suffix}.png")
            nodes = json.loads(page.locator("#flow-data").text_content() or "{}")["nodes"]
            rewards = next(n for n in nodes if n["service"] == "rewards")
            page.click(f'.tl-item[data-node-id="{rewards["id"]}"]')
            page.wait_for_timeout(400)
            if suffix != "-phone":
                page.evaluate("() => window.scrollTo(0, 0)")
            page.screenshot(path=OUT / f"flow{suffix}.png", full_page=suffix == "")
            context.close()
        browser.close()


DEMO_SECONDS = 90
DEMO_PAGES = [  # (file name, path, what to wait for)
    ("overview", "/", ".service-map[data-ready=true]"),
    ("live", "/live/", "#live-rows tr"),
    ("services", "/services/", ".service-map[data-ready=true]"),
    ("alerts", "/alerts/", "table"),
]


def shoot_demo(server: RunningServer) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for suffix, viewport in (("", {"width": 1360, "height": 860}), ("-phone", {"width": 390, "height": 844})):
            context = browser.new_context(base_url=server.url, viewport=viewport)  # type: ignore[arg-type]
            page = context.new_page()
            log_in(page, server.url)
            for name, path, ready in DEMO_PAGES:
                page.goto(path)
                page.wait_for_selector(ready)
                page.wait_for_timeout(1500)  # a few live updates and pulses
                page.screenshot(path=OUT / f"{name}{suffix}.png")
            context.close()
        browser.close()


def demo_main() -> None:
    with tempfile.TemporaryDirectory(prefix="screenshots-") as tmp:
        server = start_server(Path(tmp), {"CHOREOSCOPE_FLOWS": str(ROOT / "demo" / "flows.yaml")}, worker=False)
        env = {**server.env, "OTEL_EXPORTER_OTLP_ENDPOINT": server.otlp_url}
        command = ["manage.py", "demo", "--target", server.url, "--fault", "rewards=drop:0.3", "--parent", str(os.getpid())]
        demo = subprocess.Popen([sys.executable, *command], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        try:
            time.sleep(DEMO_SECONDS)
            shoot_demo(server)
        finally:
            demo.send_signal(signal.SIGINT)
            demo.wait(30)
            stop_server(server)
    print(f"screenshots written to {OUT}")


SAMPLING_ROWS_PER_SECOND = 100
SAMPLING_EVENTS_PER_SECOND = 400


def send_steadily(server: RunningServer, per_second: int, stop: threading.Event) -> None:
    """CloudEvents batches, ten a second, each order's events in turn, until ``stop``."""
    from tests.http import post_cloudevents

    types = [("OrderCreated", "checkout"), ("PaymentAuthorized", "payments"), ("ShipmentPrepared", "warehouse")]
    tick = 0
    while not stop.wait(0.1):
        batch = []
        for n in range(per_second // 10):
            key = f"order-{20000 + (tick * per_second // 10 + n) // 3}"
            event_type, source = types[n % 3]
            batch.append(
                {"specversion": "1.0", "id": f"{key}-{event_type}", "source": source, "type": event_type, "correlationid": key}
            )
        post_cloudevents(server.url, batch)
        tick += 1


def sampling_main() -> None:
    """The live stream while more rows arrive than a page lists: it lists the newest and says so."""
    from playwright.sync_api import sync_playwright

    limit = {"CHOREOSCOPE_LIVE_STREAM_ROWS_PER_SECOND": str(SAMPLING_ROWS_PER_SECOND)}
    with tempfile.TemporaryDirectory(prefix="screenshots-") as tmp, sync_playwright() as playwright:
        server = start_server(Path(tmp), limit, worker=False)
        stop = threading.Event()
        sender = threading.Thread(target=send_steadily, args=(server, SAMPLING_EVENTS_PER_SECOND, stop))
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            sender.start()
            for suffix, viewport in (("", {"width": 1360, "height": 860}), ("-phone", {"width": 390, "height": 844})):
                context = browser.new_context(base_url=server.url, viewport=viewport)  # type: ignore[arg-type]
                page = context.new_page()
                log_in(page, server.url)
                page.goto("/live/")
                page.wait_for_selector("#live-sampling:not([hidden])")
                page.wait_for_timeout(4000)  # a few seconds of rates
                page.screenshot(path=OUT / f"live-sampling{suffix}.png")
                context.close()
        finally:
            stop.set()
            sender.join()
            browser.close()
            stop_server(server)
    print(f"screenshots written to {OUT}")


def main() -> None:
    if "--demo" in sys.argv[1:]:
        demo_main()
        return
    if "--sampling" in sys.argv[1:]:
        sampling_main()
        return
    with tempfile.TemporaryDirectory(prefix="screenshots-") as tmp:
        flows_file = Path(tmp) / "flows.yaml"
        flows_file.write_text(FLOWS_YAML)
        server = start_server(Path(tmp), {"CHOREOSCOPE_FLOWS": str(flows_file)}, worker=False)
        try:
            seeded = [seed(server, *order) for order in ORDERS]
            shoot(server, seeded[-1]["flow_id"])
        finally:
            stop_server(server)
    print(f"screenshots written to {OUT}")


if __name__ == "__main__":
    main()
