"""The flows list and the flow page, driven in Chromium against a real server.

Flows are written through the real store and correlation services in the server's database
(``tests/pages/scenarios.py``); other tests share the server, so every key here is unique and
assertions never assume the list holds only these flows.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import uuid
from typing import Any

import pytest

pytestmark = [pytest.mark.browser]


def seed(server: Any, scenario: str, key: str) -> dict[str, Any]:
    code = f"from tests.pages.scenarios import main; main({scenario!r}, {key!r})"
    result = server.manage("shell", "-c", code)
    return json.loads(result.stdout.strip().splitlines()[-1])


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def stuck_order(server: Any) -> dict[str, Any]:
    return seed(server, "checkout", unique("order"))


@pytest.fixture(scope="module")
def shipped_order(server: Any) -> dict[str, Any]:
    return seed(server, "shipped", unique("order"))


def open_flow(page: Any, flow_id: int) -> None:
    page.goto(f"/flows/{flow_id}/")
    page.wait_for_selector("#flow-graph[data-ready=true]")
    page.wait_for_selector("#flow-timeline .tl-item")


def snapshot(page: Any) -> dict[str, Any]:
    return json.loads(page.locator("#flow-data").text_content())


def test_search_finds_an_order_by_its_key(page, stuck_order, shipped_order):
    page.goto("/flows/")
    page.fill("#f-key", stuck_order["key"])
    page.press("#f-key", "Enter")
    page.wait_for_url(re.compile(r"key=" + stuck_order["key"]))
    rows = page.locator(".flow-row")
    assert rows.count() == 1
    assert rows.first.locator(".flow-key").text_content() == stuck_order["key"]
    rows.first.locator(".flow-key").click()
    page.wait_for_url(f"**/flows/{stuck_order['flow_id']}/")
    assert page.locator("h1#flow-key").text_content() == stuck_order["key"]


def test_a_stuck_flow_is_marked_with_what_it_waits_for(page, stuck_order):
    page.goto(f"/flows/?key={stuck_order['key']}")
    row = page.locator(".flow-row")
    assert "status-stuck" in row.get_attribute("class")
    assert row.locator(".waiting").text_content() == "waiting for PointsCreated from rewards"
    assert row.locator(".step").all_text_contents() == ["OrderCreated", "EmailSent", "ShipmentPrepared", "LabelPrinted"]


def test_filters_narrow_the_list_and_survive_a_reload(page, stuck_order, shipped_order):
    page.goto("/flows/?event_type=LabelPrinted")
    keys = page.locator(".flow-key").all_text_contents()
    assert stuck_order["key"] in keys and shipped_order["key"] in keys

    page.select_option("#f-status", "stuck")
    page.click(".filter-actions button[type=submit]")
    page.wait_for_url(re.compile(r"status=stuck"))
    keys = page.locator(".flow-key").all_text_contents()
    assert stuck_order["key"] in keys and shipped_order["key"] not in keys
    assert set(page.locator(".flow-row .badge").all_text_contents()) == {"stuck"}

    page.reload()
    assert page.locator("#f-status").input_value() == "stuck"
    assert page.locator("#f-event-type").input_value() == "LabelPrinted"
    assert page.locator(".flow-key").all_text_contents() == keys


def test_a_filter_that_matches_nothing_says_so_and_offers_a_way_out(page):
    page.goto(f"/flows/?key={unique('nobody')}")
    assert page.locator(".empty-state h2").text_content() == "No flow matches these filters"
    page.click(".empty-state a")
    page.wait_for_url("**/flows/")


def test_the_flow_page_draws_one_graph_node_per_observation_and_one_lane_per_service(page, stuck_order):
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    open_flow(page, stuck_order["flow_id"])
    flow = snapshot(page)
    graph = page.locator("#flow-graph")
    assert int(graph.get_attribute("data-node-count")) == stuck_order["observations"] == len(flow["nodes"])
    assert int(graph.get_attribute("data-ghost-count")) == 1  # PointsCreated, expected from rewards
    lanes = page.locator("#flow-timeline .tl-lane")
    assert [lanes.nth(i).get_attribute("data-service") for i in range(lanes.count())] == flow["services"]
    assert sorted(flow["services"]) == ["checkout", "email", "payments", "rewards", "shipping", "warehouse"]
    assert page.locator("#flow-timeline .tl-item").count() == len(flow["nodes"])
    assert page.locator("#graph-legend li").all_text_contents() == flow["services"]
    assert errors == []  # nothing broke, and nothing needed an inline style or script the CSP refuses


def test_the_timeline_folds_the_long_wait_and_names_who_it_waited_for(page, stuck_order):
    open_flow(page, stuck_order["flow_id"])
    gaps = [" ".join(gap.split()) for gap in page.locator("#flow-timeline .tl-gap title").all_text_contents()]
    assert any(re.fullmatch(r"waited 3 m \d+ s for warehouse", gap) for gap in gaps), gaps
    assert any(gap.startswith("waiting ") and gap.endswith("for rewards") for gap in gaps), gaps
    assert page.locator("#flow-position").text_content().startswith("Waiting for PointsCreated from rewards, overdue by")


def test_clicking_a_graph_node_opens_its_inspector_and_selects_it_in_the_timeline(page, stuck_order):
    open_flow(page, stuck_order["flow_id"])
    created = next(n for n in snapshot(page)["nodes"] if n["name"] == "OrderCreated")
    point = page.evaluate(
        """async (id) => {
            const { graphFor } = await import('/static/dashboard/flow-graph.js');
            const graph = graphFor(document.getElementById('flow-graph'));
            return graph.renderedCenterOf(id);
        }""",
        str(created["id"]),
    )
    page.mouse.click(point["x"], point["y"])
    assert page.locator("#inspector-title").text_content() == "OrderCreated"
    inspector = page.locator("#flow-inspector")
    assert "TEA-EARLGREY-250" in inspector.locator("pre.data").text_content()
    assert inspector.locator(".relations button").count() >= 4  # the reactions it led to
    assert "selected" in page.locator(f'.tl-item[data-node-id="{created["id"]}"]').get_attribute("class")
    assert page.url.endswith(f"#node={created['id']}")


def test_a_timeline_step_selects_the_graph_node_and_shows_span_details(page, stuck_order):
    open_flow(page, stuck_order["flow_id"])
    rewards = next(n for n in snapshot(page)["nodes"] if n["service"] == "rewards")
    page.click(f'.tl-item[data-node-id="{rewards["id"]}"]')
    selected = page.evaluate(
        """async () => {
            const { graphFor } = await import('/static/dashboard/flow-graph.js');
            return graphFor(document.getElementById('flow-graph')).selectedId();
        }"""
    )
    assert selected == str(rewards["id"])
    inspector = page.locator("#flow-inspector")
    assert inspector.locator(".status-error").text_content() == "error — loyalty-db: timeout after 5000 ms"
    assert inspector.locator(".trace-id").text_content() == rewards["trace_id"]
    # Its link points at the producer span in checkout's trace, part of this flow.
    assert inspector.locator(".links button").text_content() == "OrderCreated send (this flow)"
    inspector.locator(".links button").click()
    assert page.locator("#inspector-title").text_content() == "OrderCreated send"


def test_the_keyboard_walks_the_timeline_in_causal_order(page, stuck_order):
    open_flow(page, stuck_order["flow_id"])
    # The page re-renders from the live socket's snapshot on connect; walk the order it shows then,
    # which is the API's order.
    page.wait_for_selector('.live-status[data-state="live"]')
    page.wait_for_timeout(300)
    nodes = json.loads(page.request.get(f"/api/flows/{stuck_order['flow_id']}").text())["nodes"]
    page.locator('.tl-item[tabindex="0"]').focus()
    page.keyboard.press("Enter")
    assert page.locator("#inspector-title").text_content() == nodes[0]["name"]
    page.keyboard.press("ArrowRight")
    assert page.locator("#inspector-title").text_content() == nodes[1]["name"]
    page.keyboard.press("Escape")
    assert not page.locator("#flow-inspector").is_visible()
    assert "#node=" not in page.url


def test_a_selected_step_survives_a_reload_through_the_url(page, stuck_order):
    nodes = json.loads(page.request.get(f"/api/flows/{stuck_order['flow_id']}").text())["nodes"]
    shipped = next(n for n in nodes if n["name"] == "ShipmentPrepared")
    page.goto(f"/flows/{stuck_order['flow_id']}/#node={shipped['id']}")
    page.wait_for_selector("#flow-graph[data-ready=true]")
    assert page.locator("#inspector-title").text_content() == "ShipmentPrepared"


def test_an_absorbed_flow_redirects_to_its_survivor(page, server, stuck_order, shipped_order):
    absorbed = shipped_order["flow_id"]
    server.manage(
        "shell",
        "-c",
        f"from tracing.models import Flow; Flow.objects.filter(id={absorbed}).update(merged_into={stuck_order['flow_id']})",
    )
    page.goto(f"/flows/{absorbed}/")
    page.wait_for_url(f"**/flows/{stuck_order['flow_id']}/")


def test_script_injection_in_names_attributes_and_data_is_shown_as_text(page, server):
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    key = f'<script>window.__xss=1</script>"><img src=x onerror=window.__xss=1>-{uuid.uuid4().hex[:6]}'
    flow = seed(server, "xss", key)

    page.goto("/flows/?" + urllib.parse.urlencode({"key": key}))
    assert page.locator(".flow-key").text_content() == key
    assert page.locator("#f-key").input_value() == key

    open_flow(page, flow["flow_id"])
    assert page.locator("h1#flow-key").text_content() == key
    for item in page.locator("#flow-timeline .tl-item").all():
        item.click()
        page.wait_for_selector("#inspector-title")
    span = next(n for n in snapshot(page)["nodes"] if n["kind"] == "span")
    page.click(f'.tl-item[data-node-id="{span["id"]}"]')
    assert page.locator("#inspector-title").text_content() == "<script>window.__xss = 1</script>"
    assert "<svg onload=window.__xss=1>" in page.locator("#flow-inspector").text_content()
    page.locator("#copy-json").click()

    assert page.evaluate("() => window.__xss") is None
    assert page.locator("#main img, #main iframe, #main script:not([type]), #main svg svg").count() == 0
    assert dialogs == []


def test_timeline_time_segments_fold_only_long_quiet_stretches(page):
    page.goto("/flows/")
    segments = page.evaluate(
        """async () => {
            const { timeSegments } = await import('/static/dashboard/flow-timeline.js');
            return [
                timeSegments([[0, 50], [40, 120], [192000, 192400]], 0, 192400),
                timeSegments([[0, 50], [300, 400]], 0, 400),
            ];
        }"""
    )
    folded, kept = segments
    assert [s["gap"] for s in folded] == [False, True, False]
    assert folded[1]["start"] == 120 and folded[1]["end"] == 192000
    assert [s["gap"] for s in kept] == [False]
