"""An event ingested over HTTP reaches a WebSocket client of a real server. With Redis (the
PostgreSQL + Redis phase), correlation runs in a real Celery worker and the message crosses
channels-redis from the worker to the web process."""

import json
import time
import uuid

import pytest
from websockets.sync.client import connect
from websockets.typing import Origin

from tests.http import post_event, session_cookie


def open_socket(server, path: str):
    ws_url = server.url.replace("http://", "ws://") + path
    return connect(ws_url, origin=server.url, additional_headers={"Cookie": session_cookie(server.url)}, open_timeout=10)


def next_of_type(socket, kind: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(socket.recv(timeout=max(0.01, deadline - time.monotonic())))
        if message["type"] == kind:
            return message


def test_an_event_posted_over_http_reaches_a_stream_socket(server):
    with open_socket(server, "/ws/stream/") as socket:
        snapshot = next_of_type(socket, "snapshot", 5)
        key = f"order-{uuid.uuid4().hex[:8]}"
        post_event(server.url, "OrderCreated", "checkout", key)
        delta = next_of_type(socket, "delta", 5)
        while key not in [item["flow_key"] for item in delta["items"]]:
            delta = next_of_type(socket, "delta", 5)
        assert delta["seq"] > snapshot["seq"]


@pytest.mark.redis
@pytest.mark.postgres
def test_through_a_celery_worker_and_redis_an_ingested_event_reaches_the_socket_of_its_flow(server):
    assert len(server.processes) == 2, "the server fixture runs a Celery worker beside the web process"
    key = f"order-{uuid.uuid4().hex[:8]}"
    post_event(server.url, "OrderCreated", "checkout", key, event_id=f"c-{key}")
    with open_socket(server, "/ws/stream/") as stream:
        next_of_type(stream, "snapshot", 5)
        post_event(server.url, "EmailSent", "email", key, causation=f"c-{key}")
        delta = next_of_type(stream, "delta", 10)
        # Stored (from the web process), then correlated (from the worker, with its flow).
        while not [item for item in delta["items"] if item["name"] == "EmailSent" and item["flow_id"]]:
            delta = next_of_type(stream, "delta", 10)
        flow_id = next(item["flow_id"] for item in delta["items"] if item["name"] == "EmailSent" and item["flow_key"] == key)
    with open_socket(server, f"/ws/flows/{flow_id}/") as flow:
        snapshot = next_of_type(flow, "snapshot", 5)
        assert sorted(node["name"] for node in snapshot["flow"]["nodes"]) == ["EmailSent", "OrderCreated"]
        post_event(server.url, "ShipmentPrepared", "warehouse", key, causation=f"c-{key}")
        delta = next_of_type(flow, "delta", 10)
        assert delta["first"] == snapshot["seq"] + 1
        names = {node["id"]: node["name"] for node in delta["flow"]["nodes"]}
        assert [names[node_id] for node_id in delta["new"]] == ["ShipmentPrepared"]


def test_a_socket_from_another_site_is_refused_by_the_real_server(server):
    from websockets.exceptions import InvalidStatus

    ws_url = server.url.replace("http://", "ws://") + "/ws/stream/"
    with pytest.raises(InvalidStatus) as refused:
        connect(
            ws_url,
            origin=Origin("https://attacker.example"),
            additional_headers={"Cookie": session_cookie(server.url)},
            open_timeout=10,
        )
    assert refused.value.response.status_code == 403
