"""Take the README's screenshots.

``python -m tests.pages.screenshots``: the flows pages. Starts a real server on the embedded default
with a flow definition (an order completes at LabelPrinted), writes a handful of recent checkouts
through the real store and correlation (one stuck waiting for rewards, one failed, the others
shipped), and saves 1360x860 and phone-width shots under ``docs/screenshots/``.

``python -m tests.pages.screenshots --shared``: one flow whose batch step is shared with two
other orders, with a cross-flow edge to a shipment and a consumer clock two seconds behind.

``python -m tests.pages.screenshots --admin-forms``: the admin's notification channel form after a
JSON box held what could not be stored (a NUL), as the operator sees the error.

``python -m tests.pages.screenshots --sampling``: the live stream listing a sample, on a server
whose pages list up to 100 new rows a second, sent 400 events a second.

``python -m tests.pages.screenshots --demo``: the overview, live, services, correlation-health and alerts pages as
``make run`` shows them: a real server with the demo shop and its flow definition, rewards dropping
30% of its reactions, shot after about a minute and a half of traffic.

``python -m tests.pages.screenshots --contracts``: the contracts page with the demo shop and its
AsyncAPI documents (rewards' out of date), after half a minute of traffic.


``python -m tests.pages.screenshots --rabbitmq``: the demo shop on RabbitMQ (``DEMO_BUS=rabbitmq``,
its events read by ``tap rabbitmq``) with warehouse slowed down so that its queue fills: the
services page with the queue lag, and a flow page's inspector on a warehouse span with its log
records. Needs RabbitMQ (``CHOREOSCOPE_RABBITMQ_URL``).
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
    ("correlation-health", "/services/health/", "table.findings"),
    ("alerts", "/alerts/", "table"),
    ("coupling", "/services/coupling/", ".coupling-type"),
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
            shoot_hybrid_flow(page, suffix)
            context.close()
        browser.close()


def shoot_hybrid_flow(page: Any, suffix: str) -> None:
    """A completed order of the demo: its calls, its events and its critical path."""
    completed = page.request.get("/api/flows?status=completed&type=order&limit=1").json()["results"]
    if not completed:
        return
    page.goto(f"/flows/{completed[0]['id']}/")
    page.wait_for_selector("#flow-graph[data-ready=true]")
    page.wait_for_timeout(400)
    page.screenshot(path=OUT / f"flow-hybrid{suffix}.png", full_page=True)


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


CONTRACTS_SECONDS = 30


def shoot_contracts(server: RunningServer) -> None:
    from playwright.sync_api import sync_playwright

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
            page.goto("/services/contracts/")
            page.wait_for_selector("table.drift")
            page.screenshot(path=OUT / f"contracts{suffix}.png", full_page=suffix == "")
            if suffix == "":
                page.goto("/services/")
                page.check("[data-contracts-overlay]")
                page.wait_for_selector(".service-map[data-overlay]")
                page.wait_for_timeout(1000)
                page.screenshot(path=OUT / "services-contracts.png")
            context.close()
        browser.close()


def contracts_main() -> None:
    with tempfile.TemporaryDirectory(prefix="screenshots-") as tmp:
        documents = str(ROOT / "demo" / "asyncapi" / "*.yaml")
        extra = {"CHOREOSCOPE_FLOWS": str(ROOT / "demo" / "flows.yaml"), "CHOREOSCOPE_ASYNCAPI": documents}
        server = start_server(Path(tmp), extra, worker=False)
        env = {**server.env, "OTEL_EXPORTER_OTLP_ENDPOINT": server.otlp_url}
        command = ["manage.py", "demo", "--target", server.url, "--parent", str(os.getpid())]
        demo = subprocess.Popen([sys.executable, *command], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        try:
            time.sleep(CONTRACTS_SECONDS)
            shoot_contracts(server)
        finally:
            demo.send_signal(signal.SIGINT)
            demo.wait(30)
            stop_server(server)


RABBITMQ_SECONDS = 75


def shoot_rabbitmq(server: RunningServer) -> None:
    from playwright.sync_api import sync_playwright

    from tests.http import get_json, read_token

    token = read_token(server, "screenshots")
    # The oldest first: warehouse's spans end (and arrive) 20 s and a queue's wait after the order.
    flows = get_json(f"{server.url}/api/flows?limit=200", token=token)["results"][::-1]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=server.url, viewport={"width": 1360, "height": 860})
        page = context.new_page()
        log_in(page, server.url)
        page.goto("/services/")
        page.wait_for_selector(".service-map[data-ready=true]")
        page.wait_for_selector("[data-lag-table] tr")
        page.wait_for_timeout(1500)
        page.screenshot(path=OUT / "services-rabbitmq.png", full_page=True)
        for flow in flows:
            detail = get_json(f"{server.url}/api/flows/{flow['id']}", token=token)
            logged = [n for n in detail["nodes"] if n["service"] == "warehouse" and n.get("logs")]
            if logged:
                page.goto(f"/flows/{flow['id']}/")
                page.wait_for_selector("#flow-graph[data-ready=true]")
                page.click(f'.tl-item[data-node-id="{logged[0]["id"]}"]')
                page.wait_for_selector("#inspector-body .span-logs")
                page.locator("#inspector-body .span-logs").scroll_into_view_if_needed()
                page.wait_for_timeout(400)
                page.screenshot(path=OUT / "flow-inspector-logs.png")
                break
        context.close()
        browser.close()


def rabbitmq_main() -> None:
    import uuid

    from demo.catalog import SERVICES
    from tests.demo.sink import delete_rabbit_namespace

    prefix = f"shots-{uuid.uuid4().hex[:6]}"
    queues = ",".join(f"{name}={prefix}.shop.{name}" for name in (*SERVICES[1:], "choreoscope"))
    extra = {
        "CHOREOSCOPE_FLOWS": str(ROOT / "demo" / "flows.yaml"),
        "CHOREOSCOPE_REDIS_PREFIX": prefix,
        "CHOREOSCOPE_WATCH_RABBITMQ_QUEUES": queues,
        "DEMO_BUS": "rabbitmq",
    }
    with tempfile.TemporaryDirectory(prefix="screenshots-") as tmp:
        server = start_server(Path(tmp), extra, worker=False)
        env = {**server.env, "OTEL_EXPORTER_OTLP_ENDPOINT": server.otlp_url}
        command = ["manage.py", "demo", "--target", server.url, "--fault", "warehouse=slow:20", "--parent", str(os.getpid())]
        demo = subprocess.Popen([sys.executable, *command], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        try:
            time.sleep(RABBITMQ_SECONDS)
            shoot_rabbitmq(server)
        finally:
            demo.send_signal(signal.SIGINT)
            demo.wait(60)
            stop_server(server)
            delete_rabbit_namespace(prefix)
    print(f"screenshots written to {OUT}")


def shoot_shared(server: RunningServer, flow_id: int) -> None:
    """A flow with a shared batch step, a cross-flow edge and a skewed clock, the batch step selected."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=server.url, viewport={"width": 1360, "height": 900})
        page = context.new_page()
        log_in(page, server.url)
        page.goto(f"/flows/{flow_id}/")
        page.wait_for_selector("#flow-graph[data-ready=true]")
        nodes = json.loads(page.locator("#flow-data").text_content() or "{}")["nodes"]
        batch = next(n for n in nodes if n["service"] == "loyalty" and n["name"] == "OrderCreated process")
        page.click(f'.tl-item[data-node-id="{batch["id"]}"]')
        page.wait_for_timeout(400)
        page.evaluate("() => window.scrollTo(0, 0)")
        page.screenshot(path=OUT / "flow-shared.png", full_page=True)
        context.close()
        browser.close()


def shared_main() -> None:
    with tempfile.TemporaryDirectory(prefix="screenshots-") as tmp:
        flows_file = Path(tmp) / "flows.yaml"
        flows_file.write_text(FLOWS_YAML)
        server = start_server(Path(tmp), {"CHOREOSCOPE_FLOWS": str(flows_file)}, worker=False)
        try:
            shoot_shared(server, seed(server, "batched", "order-1043", 3.0)["flow_id"])
        finally:
            stop_server(server)
    print(f"screenshot written to {OUT / 'flow-shared.png'}")


def admin_forms_main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="screenshots-") as tmp:
        server = start_server(Path(tmp), worker=False)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(base_url=server.url, viewport={"width": 1360, "height": 860})
                log_in(page, server.url)
                page.goto("/admin/alerts/notificationchannel/add/")
                page.fill("#id_name", "ops")
                page.select_option("#id_kind", "webhook")
                page.fill("#id_target", "https://hooks.example.com/choreoscope")
                page.fill("#id_flow_types", '["order", "refund\\u0000"]')
                page.click("input[name=_save]")
                page.wait_for_selector(".errornote")
                page.screenshot(path=OUT / "admin-json-error.png")
                browser.close()
        finally:
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


def flows_main() -> None:
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


# The scenario a flag names; without one, the flows pages.
MODES = {
    "--demo": demo_main,
    "--contracts": contracts_main,
    "--rabbitmq": rabbitmq_main,
    "--shared": shared_main,
    "--admin-forms": admin_forms_main,
    "--sampling": sampling_main,
}


def main() -> None:
    chosen = [MODES[flag] for flag in sys.argv[1:] if flag in MODES]
    (chosen[0] if chosen else flows_main)()


if __name__ == "__main__":
    main()
