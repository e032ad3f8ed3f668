"""The coupling page and the flow page's interaction styles and critical path, in Chromium
against a real server. Each test uses a flow type of its own: other tests share the server."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

pytestmark = [pytest.mark.browser]


def seed(server: Any, key: str, root_type: str) -> dict[str, Any]:
    code = f"from tests.pages.scenarios import main; main('orchestrated', {key!r}, root_type={root_type!r})"
    return json.loads(server.manage("shell", "-c", code).stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def hybrid_orders(server: Any) -> tuple[str, list[dict[str, Any]]]:
    root_type = f"OrderPlaced{uuid.uuid4().hex[:6]}"
    return root_type, [seed(server, f"order-{uuid.uuid4().hex[:8]}", root_type) for _ in range(3)]


def test_the_coupling_page_shows_calls_events_the_chain_and_who_every_flow_waits_on(page, hybrid_orders):
    root_type, orders = hybrid_orders
    page.goto("/services/coupling/?window=1h")
    section = page.locator(f'.coupling-type[data-flow-type="{root_type}"]')
    assert section.locator(".coupling-head").text_content().split()[1:3] == ["3", "flows"]
    # Per flow: fraud-screening, payment and bank entered by calls; email and warehouse by events.
    assert section.locator("[data-call-share]").text_content() == "60%"
    assert section.locator("[data-event-share]").text_content() == "40%"
    assert section.locator("[data-chain] .service-chip").all_text_contents() == ["checkout", "payment", "bank"]
    assert section.locator(".spof-list .service-chip").all_text_contents() == ["bank", "fraud-screening", "payment"]
    critical = section.locator(".critical-table tbody tr")
    assert critical.first.get_attribute("data-service") == "warehouse"
    assert "email" not in critical.evaluate_all("rows => rows.map(row => row.dataset.service)")
    assert page.locator("#coupling-sample").text_content().strip().startswith("From the ")

    section.locator(".spof-list a").first.click()
    page.wait_for_selector("#flow-graph[data-ready=true]")
    assert int(page.locator("#flow-graph").get_attribute("data-call-edges")) == 3
    assert int(page.locator("#flow-graph").get_attribute("data-event-edges")) >= 4
    flow = json.loads(page.locator("#flow-data").text_content())
    assert flow["id"] in {order["flow_id"] for order in orders}
    assert int(page.locator("#flow-graph").get_attribute("data-critical-nodes")) == len(flow["critical_path"])
    rows = page.locator("#flow-critical tbody tr")
    assert rows.evaluate_all("rows => rows.map(row => row.dataset.service)")[0] == "warehouse"
    assert set(rows.evaluate_all("rows => rows.map(row => row.dataset.service)")) == {
        "checkout", "fraud-screening", "payment", "bank", "warehouse",
    }  # fmt: skip
    assert page.locator(".edge-legend li").count() == 4


def test_the_services_map_draws_calls_apart_and_lists_them(page, hybrid_orders):
    page.goto("/services/?window=1h")
    page.wait_for_selector(".service-map[data-ready=true]")
    callers = page.locator("[data-call-table] tr").evaluate_all(
        "rows => rows.map(row => row.cells[0].textContent + '>' + row.cells[1].textContent)"
    )
    assert {"checkout>payment", "checkout>fraud-screening", "payment>bank"} <= set(callers)
    assert page.locator("[data-call-empty-table]").is_hidden()
    assert page.locator(".tabs a[aria-current=page]").text_content() == "Map"


def test_a_window_that_does_not_exist_is_refused_with_the_choices(page):
    response = page.goto("/services/coupling/?window=7d")
    assert response.status == 400
    assert "5m, 15m, 1h, 24h" in page.locator("[role=alert]").text_content()
