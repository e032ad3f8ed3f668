"""The faults panel drives a running demo: a separate process that re-reads its faults."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import ROOT, RunningServer, log_in, server_of_its_own
from tests.polling import eventually

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def shop_server(tmp_path: Path) -> Iterator[RunningServer]:
    """A server of the demo's own: on the session's server another test's demo could share its
    fault settings and backlogs, and take the change meant for this one."""
    with server_of_its_own(tmp_path) as running:
        yield running


@pytest.fixture
def page(browser, shop_server):  # type: ignore[no-untyped-def]
    context = browser.new_context(base_url=shop_server.url, viewport={"width": 1360, "height": 860})
    page = context.new_page()
    log_in(page, shop_server.url)
    yield page
    context.close()


@pytest.fixture
def running_demo(shop_server):
    demo = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "demo",
            "--target",
            shop_server.url,
            "--rate",
            "4",
            "--latency-scale",
            "0.3",
            "--events-via",
            "http",
            "--services",
            "checkout,warehouse,rewards",
            "--seed",
            "4",
        ],
        cwd=ROOT,
        env=shop_server.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield demo
    if demo.poll() is None:
        demo.kill()


def test_taking_a_service_offline_from_the_panel_builds_a_backlog_that_drains_when_it_returns(page, running_demo):
    panel = page.locator("#demo-faults")
    warehouse = panel.locator("form.fault-row[data-service=warehouse]")

    def panel_shows_the_running_demo() -> bool:
        # Wait for this demo to have registered its services and reported in.
        page.reload()
        return (
            panel.count() == 1
            and panel.locator(".demo-running").get_attribute("data-running") == "yes"
            and panel.locator(".demo-faulty").text_content() == "all services healthy"
        )

    def waiting() -> int:
        return int(warehouse.locator(".fault-backlog-value").text_content() or 0)

    eventually("the panel shows the running demo", panel_shows_the_running_demo, 40, every=1.0)
    assert panel.locator(".demo-faulty").text_content() == "all services healthy"
    panel.locator("summary").click()  # folded while every service is healthy
    expect(warehouse.locator(".fault-state")).to_have_text("running")

    warehouse.locator("input[name=offline]").check()
    warehouse.locator("button").click()
    expect(panel.locator(".demo-message")).to_have_text("warehouse: offline.")
    expect(panel.locator(".demo-faulty")).to_have_text("warehouse offline")
    expect(warehouse.locator(".fault-state")).to_have_text("offline", timeout=10_000)
    # Orders keep coming while nobody in the warehouse reads them (the panel refreshes every 2 s).
    eventually("a backlog of 8 at the offline warehouse", lambda: waiting() >= 8, 30, every=0.25)

    warehouse.locator("input[name=offline]").uncheck()
    warehouse.locator("button").click()
    expect(warehouse.locator(".fault-state")).to_have_text("running", timeout=10_000)
    eventually("the backlog drains below 5", lambda: waiting() < 5, 30, every=0.25)

    running_demo.send_signal(signal.SIGINT)
    output, _ = running_demo.communicate(timeout=20)
    assert running_demo.returncode == 0, output
    assert "Demo shop stopped after" in output
    assert "warehouse: offline" in output and "warehouse: healthy" in output
