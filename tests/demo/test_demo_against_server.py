"""The demo shop driven for a few seconds against a real Choreoscope: what arrived, and how it
was put together."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from typing import Any

import pytest

from demo.catalog import SERVICES

pytestmark = pytest.mark.slow


def _api(server, token: str, path: str) -> Any:
    request = urllib.request.Request(f"{server.url}{path}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _demo_flows(server, token: str, expect_orders: int, context: str, since: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The demo's order flows once correlation has caught up (their count stops changing).

    The server is shared with other tests, so only flows active since the demo started count."""
    deadline, last = time.monotonic() + timeout, None
    query = "/api/flows?limit=200&since=" + urllib.parse.quote(since)
    while time.monotonic() < deadline:
        flows = [flow for flow in _api(server, token, query)["results"] if flow["key"].startswith("order-")]
        signature = sorted((flow["key"], flow["observation_count"]) for flow in flows)
        if len(flows) >= expect_orders and signature == last:
            return flows
        last = signature
        time.sleep(1.0)
    raise AssertionError(f"the demo's flows did not settle within {timeout}s: {last}\n{context}\n{server.log()[-3000:]}")


def test_the_demo_feeds_a_real_choreoscope_whole_flows_with_a_drop_fault_visible(server):
    token = server.manage("token", "create", "demo-e2e", "--scope", "read").stdout.strip().splitlines()[-1]
    demo_started = datetime.now(UTC).isoformat()
    run = server.manage(
        "demo",
        "--target",
        server.url,
        "--rate",
        "6",
        "--duration",
        "4",
        "--fraud-joins-after",
        "1",
        "--latency-scale",
        "0.3",
        "--seed",
        "11",
        "--fault",
        "rewards=drop:0.5",
    )
    orders = int(run.stdout.rsplit("after ", 1)[1].split()[0])
    assert orders >= 10, run.stdout + run.stderr

    flows = _demo_flows(server, token, orders, context=run.stdout + run.stderr, since=demo_started)
    assert len(flows) == orders  # one flow per order: every consumer's new trace was joined to its order

    everyone = [flow for flow in flows if set(flow["services"]) == set(SERVICES)]
    assert everyone, "no order reached every service"
    with_rewards = [flow for flow in flows if "rewards" in flow["services"]]
    assert 0 < len(with_rewards) < len(flows), "rewards drops half of its deliveries"

    detail = _api(server, token, f"/api/flows/{everyone[0]['id']}")
    events = {node["name"]: node for node in detail["nodes"] if node["kind"] == "event"}
    assert set(events) >= {
        "OrderCreated",
        "EmailSent",
        "ShipmentPrepared",
        "ShipmentDispatched",
        "DispatchNoticeSent",
        "PointsCreated",
        "FraudCleared",
    }
    assert {events[name]["service"] for name in events} == set(SERVICES)
    kinds = {edge["kind"] for edge in detail["edges"]}
    assert {"caused_by", "emitted_by", "follows_from", "child_of"} <= kinds
    spans = {node["id"]: node for node in detail["nodes"] if node["kind"] == "span"}
    follows = [edge for edge in detail["edges"] if edge["kind"] == "follows_from"]
    # Each consumer span links back to a producer span in another trace.
    assert all(spans[edge["source"]]["trace_id"] != spans[edge["target"]]["trace_id"] for edge in follows)
    assert {spans[edge["target"]]["service"] for edge in follows} == set(SERVICES) - {"checkout"}
