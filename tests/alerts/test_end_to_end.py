"""End to end: CloudEvents through the real HTTP collector into a real server (its correlation,
its periodic model learning and stuck scan), alerts read through the JSON API, and webhook
notifications received by a small HTTP server in the test."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningServer, _create_postgres_database, _drop_postgres_database, start_server, stop_server
from tests.http import get_json, post_cloudevents, read_token
from tests.polling import eventually

pytestmark = pytest.mark.slow
SECRET = "webhook-test-secret"
FAST = {
    "CHOREOSCOPE_MODEL_MIN_FLOWS": "5",
    "CHOREOSCOPE_QUIET_SECONDS": "2",
    "CHOREOSCOPE_STUCK_FLOOR_SECONDS": "2",
    "CHOREOSCOPE_STUCK_SCAN_SECONDS": "1",
    "CHOREOSCOPE_MODEL_REFRESH_SECONDS": "1",
    "CHOREOSCOPE_WEBHOOK_SECRET": SECRET,
}


class WebhookReceiver:
    """Records every POST it is sent; answers 200."""

    def __init__(self) -> None:
        received = self.received = []  # type: list[tuple[dict[str, str], bytes]]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((dict(self.headers), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[str]:
        return [json.loads(body)["event"] for _, body in self.received]

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hook = WebhookReceiver()
    yield hook
    hook.close()


@contextmanager
def running(tmp: Path, extra: dict[str, str]) -> Iterator[RunningServer]:
    env = {**FAST, **extra}
    base_url, pg_name = os.environ.get("DATABASE_URL"), None
    if base_url:
        env["DATABASE_URL"], pg_name = _create_postgres_database(base_url)
    server = start_server(tmp, env)
    try:
        yield server
    finally:
        stop_server(server)
        if base_url and pg_name:
            _drop_postgres_database(base_url, pg_name)


class Api:
    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.token = read_token(server, "alerts-e2e")

    def get(self, path: str) -> Any:
        return get_json(self.server.url + path, token=self.token)

    def post_events(self, events: list[dict[str, Any]]) -> None:
        assert post_cloudevents(self.server.url, events) in (200, 202)


def cloudevent(source: str, event_type: str, order: str, at: datetime, cause: str = "") -> dict[str, Any]:
    event = {
        "specversion": "1.0",
        "id": f"{event_type}-{order}-{uuid.uuid4().hex[:6]}",
        "source": source,
        "type": event_type,
        "time": at.isoformat(),
        "correlationid": order,
        "datacontenttype": "application/json",
        "data": {"order_id": order},
    }
    if cause:
        event["causationid"] = cause
    return event


def order_events(
    order: str, at: datetime, reactions: tuple[str, ...] = ("email", "warehouse", "rewards")
) -> list[dict[str, Any]]:
    created = cloudevent("/checkout", "OrderCreated", order, at)
    names = {"email": "EmailSent", "warehouse": "ShipmentPrepared", "rewards": "PointsCreated"}
    return [created] + [cloudevent(f"/{r}", names[r], order, at + timedelta(milliseconds=50), created["id"]) for r in reactions]


def add_webhook_channel(server: RunningServer, url: str) -> None:
    create = f"NotificationChannel.objects.create(name='hook', kind='webhook', target={url!r})"
    server.manage("shell", "-c", f"from alerts.models import NotificationChannel; {create}")


def flow_of(api: Api, order: str) -> dict[str, Any] | None:
    results = api.get(f"/api/flows?key={order}")["results"]
    return api.get(f"/api/flows/{results[0]['id']}") if results else None


def assert_signed(headers: dict[str, str], body: bytes) -> None:
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Choreoscope-Signature"], expected)


def stuck_then_resolved(api: Api, receiver: WebhookReceiver, order: str, created_id: str) -> None:
    """The order misses PointsCreated: one alert, one signed webhook; then the late event."""
    [alert] = eventually("an open alert", lambda: api.get("/api/alerts?state=open")["results"], timeout=60)
    assert (alert["flow_key"], alert["step"], alert["after"]) == (order, "PointsCreated", "OrderCreated")
    flow = flow_of(api, order)
    assert flow is not None and flow["status"] == "stuck"
    assert [(m["step"], m["after"]) for m in flow["missing"]] == [("PointsCreated", "OrderCreated")]
    eventually("the webhook", lambda: receiver.received, timeout=60)
    time.sleep(3)  # several more scans and delivery runs: still one alert, one POST
    assert len(api.get("/api/alerts")["results"]) == 1
    assert receiver.events() == ["alert.opened"]
    headers, body = receiver.received[0]
    assert_signed(headers, body)
    assert json.loads(body)["alert"]["missing"][0]["step"] == "PointsCreated"

    late = cloudevent("/rewards", "PointsCreated", order, datetime.now(UTC), created_id)
    api.post_events([late])
    [resolved] = eventually("the alert to resolve", lambda: api.get("/api/alerts?state=resolved")["results"], timeout=60)
    assert resolved["id"] == alert["id"]
    flow = flow_of(api, order)
    assert flow is not None and (flow["status"], flow["missing"]) == ("running", [])
    eventually("the resolved webhook", lambda: receiver.events() == ["alert.opened", "alert.resolved"], timeout=20)


def test_an_order_whose_rewards_never_react_is_stuck_after_its_learned_deadline_and_resolves_late(tmp_path, receiver):
    with running(tmp_path, {}) as server:
        api = Api(server)
        add_webhook_channel(server, receiver.url)
        history = datetime.now(UTC) - timedelta(seconds=30)
        api.post_events([e for n in range(8) for e in order_events(f"order-h{n}", history)])

        def learned() -> bool:
            models = api.get("/api/flow-models")["results"]
            return bool(models) and any(
                t["expected"] and t["target"]["name"] == "PointsCreated" for t in models[0]["graph"]["transitions"]
            )

        def explain() -> str:
            flows = api.get("/api/flows?limit=20")["results"]
            summary = [(f["key"], f["status"], f["stuck_after"], [s["name"] for s in f["steps"]]) for f in flows]
            return f"models {api.get('/api/flow-models')['results']}, flows {summary}\n{server.log()[-3000:]}"

        eventually("a learned model expecting PointsCreated", learned, explain=explain, timeout=60)
        stuck = order_events("order-stuck", datetime.now(UTC), reactions=("email", "warehouse"))
        api.post_events(stuck)
        stuck_then_resolved(api, receiver, "order-stuck", stuck[0]["id"])


def test_a_declared_expectation_makes_an_order_stuck_without_any_history(tmp_path, receiver):
    flows_file = tmp_path / "flows.yaml"
    flows_file.write_text(
        "flows:\n"
        "  - type: order\n"
        "    key_paths: [data.order_id]\n"
        "    start: [OrderCreated]\n"
        "    expect:\n"
        "      - after: OrderCreated\n"
        "        steps: [EmailSent, ShipmentPrepared, PointsCreated]\n"
        "        within: 2s\n"
    )
    with running(tmp_path, {"CHOREOSCOPE_FLOWS": str(flows_file)}) as server:
        api = Api(server)
        add_webhook_channel(server, receiver.url)
        stuck = order_events("order-1", datetime.now(UTC), reactions=("email", "warehouse"))
        api.post_events(stuck)
        stuck_then_resolved(api, receiver, "order-1", stuck[0]["id"])
        assert api.get("/api/flow-models")["results"] == []


def started(tmp: Path, env: dict[str, str]) -> RunningServer:
    try:
        return start_server(tmp, env)
    except subprocess.CalledProcessError as error:
        raise AssertionError(f"{error.cmd} failed:\n{error.stdout}\n{error.stderr}") from None


@pytest.mark.postgres
def test_two_detector_processes_on_one_database_notify_each_stuck_flow_once(tmp_path, receiver):
    flows_file = tmp_path / "flows.yaml"
    flows_file.write_text(
        "flows:\n  - type: order\n    key_paths: [data.order_id]\n    start: [OrderCreated]\n"
        "    expect:\n      - {after: OrderCreated, steps: [PointsCreated], within: 1s}\n"
    )
    database_url, name = _create_postgres_database(os.environ["DATABASE_URL"])
    env = {**FAST, "CHOREOSCOPE_FLOWS": str(flows_file), "DATABASE_URL": database_url}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    servers = []
    try:
        servers.append(first := started(tmp_path / "a", env))
        servers.append(started(tmp_path / "b", env))
        api = Api(first)
        add_webhook_channel(first, receiver.url)
        orders = [f"order-{n}" for n in range(30)]
        api.post_events([e for order in orders for e in order_events(order, datetime.now(UTC), reactions=("email",))])
        eventually("30 alerts", lambda: len(api.get("/api/alerts?state=open")["results"]) == 30, timeout=60)
        eventually("30 webhooks", lambda: len(receiver.received) >= 30, timeout=60)
        time.sleep(4)  # both detectors keep scanning and delivering
        keys = sorted(json.loads(body)["alert"]["flow_key"] for _, body in receiver.received)
        assert keys == sorted(orders)
        assert len(api.get("/api/alerts?limit=100")["results"]) == 30
    finally:
        for server in servers:
            stop_server(server)
        _drop_postgres_database(os.environ["DATABASE_URL"], name)
