"""The demo shop driven for a few seconds against a real Choreoscope: what arrived, and how it
was put together."""

from __future__ import annotations

import subprocess
import sys
import urllib.parse
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from demo.catalog import SERVICES
from demo.orchestrated import ORCHESTRATED_SERVICES
from tests.conftest import ROOT
from tests.demo.sink import delete_rabbit_namespace
from tests.http import get_json, read_token
from tests.polling import eventually

pytestmark = pytest.mark.slow


def _demo_flows(server, token: str, expect_orders: int, context: str, since: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The demo's order flows once correlation has caught up (their count stops changing).

    The server is shared with other tests, so only flows active since the demo started count."""
    query = f"{server.url}/api/flows?limit=200&since=" + urllib.parse.quote(since)
    last: list[Any] = [None]

    def settled() -> list[dict[str, Any]] | None:
        flows = [flow for flow in get_json(query, token=token)["results"] if flow["key"].startswith("order-")]
        signature = sorted((flow["key"], flow["observation_count"]) for flow in flows)
        done = len(flows) >= expect_orders and signature == last[0]
        last[0] = signature
        return flows if done else None

    return eventually(
        "the demo's flows settle", settled, timeout, every=1.0, explain=lambda: f"{last[0]}\n{context}\n{server.log()[-3000:]}"
    )


def test_the_demo_feeds_a_real_choreoscope_whole_flows_with_a_drop_fault_visible(server):
    token = read_token(server, "demo-e2e")
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

    # Checkout calls fraud-screening and payment before OrderCreated; the rest reacts to events.
    everyone = [flow for flow in flows if set(flow["services"]) == set(SERVICES) | set(ORCHESTRATED_SERVICES)]
    assert everyone, "no order reached every service"
    with_rewards = [flow for flow in flows if "rewards" in flow["services"]]
    assert 0 < len(with_rewards) < len(flows), "rewards drops half of its deliveries"

    detail = get_json(f"{server.url}/api/flows/{everyone[0]['id']}", token=token)
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
    # The hybrid: two calls out of checkout's request, events everywhere else.
    nodes = {node["id"]: node for node in detail["nodes"]}
    calls = {(nodes[e["source"]]["service"], nodes[e["target"]]["service"]) for e in detail["edges"] if e["style"] == "call"}
    assert calls == {("checkout", "fraud-screening"), ("checkout", "payment")}
    across = [e for e in follows if nodes[e["source"]]["service"] != nodes[e["target"]]["service"]]
    assert across and {e["style"] for e in across} == {"event"}  # warehouse reacting to its own event is internal
    assert nodes[detail["critical_path"][0]]["name"] == "POST /checkout"


@pytest.mark.rabbitmq
def test_the_demo_on_rabbitmq_reaches_choreoscope_through_the_tap_one_flow_per_order(server):
    token = read_token(server, "demo-rabbitmq")
    prefix = f"test-demo-{uuid.uuid4().hex[:8]}"
    env = {**server.env, "DEMO_BUS": "rabbitmq", "CHOREOSCOPE_REDIS_PREFIX": prefix}
    demo_started = datetime.now(UTC).isoformat()
    arguments = ["--target", server.url, "--rate", "5", "--duration", "4", "--fraud-joins-after", "0", "--seed", "7"]
    try:
        run = subprocess.run(
            [sys.executable, "manage.py", "demo", *arguments, "--latency-scale", "0.3"],
            cwd=ROOT,
            env=env,
            text=True,
            capture_output=True,
            timeout=120,
            check=True,
        )
    finally:
        delete_rabbit_namespace(prefix)
    output = run.stdout + run.stderr
    assert "on RabbitMQ" in output and "Events via the tap on the bus" in output
    orders = int(run.stdout.rsplit("after ", 1)[1].split()[0])
    assert orders >= 10, output
    # The tap (`manage.py tap rabbitmq`, started by the demo) stored every event the shop published.
    stored = int(output.split("Stored ", 1)[1].split()[0])
    assert "rejected 0" in output and stored >= orders * 6, output

    flows = _demo_flows(server, token, orders, context=output, since=demo_started)
    assert len(flows) == orders  # one flow per order
    complete = [flow for flow in flows if set(flow["services"]) == set(SERVICES) | set(ORCHESTRATED_SERVICES)]
    assert complete, "no order reached every service"
    detail = get_json(f"{server.url}/api/flows/{complete[0]['id']}", token=token)
    spans = [node for node in detail["nodes"] if node["kind"] == "span"]
    assert any(node["name"].startswith(f"send {prefix}.shop.") for node in spans)  # the exchanges, as the spans name them
    events = [node for node in detail["nodes"] if node["kind"] == "event"]
    assert {node["name"] for node in events} >= {"OrderCreated", "EmailSent", "ShipmentPrepared", "PointsCreated"}
