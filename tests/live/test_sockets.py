"""The live sockets, driven through the real ASGI application (origin check, session auth,
routing) with ``WebsocketCommunicator``; data goes in through the real store and correlation."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from dashboard import broadcast
from dashboard.live_feed import publish_batch
from tests.live.sockets import ORIGIN, aingest, astore, connect, event
from tracing.models import Flow, Observation

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest.fixture(autouse=True)
async def _close_connections_of_the_async_orm_thread():
    """The async ORM queries from one worker thread; close its connection so the test database
    can be dropped at the end of the run."""
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()


async def receive_until(communicator, kind: str, timeout: float = 3.0) -> dict:
    """The next message of type ``kind``, skipping others."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        message = await communicator.receive_json_from(timeout=max(0.05, deadline - loop.time()))
        if message["type"] == kind:
            return message


async def test_a_visitor_who_is_not_logged_in_is_closed_with_4401():
    communicator = await connect("/ws/stream/", logged_in=False)
    closed = await communicator.receive_output(timeout=2)
    assert closed == {"type": "websocket.close", "code": 4401}


async def test_a_socket_opened_from_a_foreign_origin_is_refused():
    communicator = WebsocketCommunicatorFor("/ws/stream/", origin=b"https://evil.example")
    connected, _ = await communicator.connect(timeout=5)
    assert connected is False


def WebsocketCommunicatorFor(path: str, origin: bytes):
    from channels.testing import WebsocketCommunicator

    from choreoscope.asgi import application

    return WebsocketCommunicator(application, path, headers=[(b"origin", origin)])


async def test_the_stream_opens_with_a_snapshot_of_the_newest_observations():
    await aingest(event("OrderCreated", "checkout", "order-1"), event("OrderCreated", "checkout", "order-2"))
    stream = await connect("/ws/stream/")
    snapshot = await stream.receive_json_from(timeout=3)
    assert snapshot["type"] == "snapshot"
    assert [item["flow_key"] for item in snapshot["items"]] == ["order-1", "order-2"]
    assert snapshot["items"][0] | {"id": 0, "time": "", "received_at": "", "flow_id": 0} == {
        "id": 0,
        "kind": "event",
        "name": "OrderCreated",
        "service": "checkout",
        "status": "unset",
        "time": "",
        "received_at": "",
        "flow_id": 0,
        "flow_key": "order-1",
        "flow_status": "running",
    }
    await stream.disconnect()


async def stream_deltas_until(stream, done, start_seq: int) -> list[dict]:
    """Deltas until ``done(deltas)``; they must continue the numbering without a hole."""
    deltas: list[dict] = []
    last = start_seq
    while not deltas or not done(deltas):
        delta = await receive_until(stream, "delta")
        assert delta["first"] == last + 1, "deltas continue the numbering without a hole"
        last = delta["seq"]
        deltas.append(delta)
    return deltas


async def test_an_ingested_batch_reaches_the_stream_when_stored_and_again_when_correlated():
    stream = await connect("/ws/stream/")
    snapshot = await stream.receive_json_from(timeout=3)
    await aingest(*[event("OrderCreated", "checkout", f"order-{n}") for n in range(30)])
    deltas = await stream_deltas_until(stream, lambda deltas: sum(d["total"] for d in deltas) >= 30, snapshot["seq"])
    assert sum(delta["total"] for delta in deltas) == 30, "the rate counts each stored observation once"
    versions: dict[int, list[dict]] = {}
    for delta in deltas:
        for item in delta["items"]:
            versions.setdefault(item["id"], []).append(item)
    assert len(versions) == 30
    assert sorted(items[0]["flow_key"] for items in versions.values()) == sorted(f"order-{n}" for n in range(30))
    # The embedded default correlates within the storing request, so the correlated version
    # comes first here; the page keeps it when the stored one follows.
    assert all(any(item["flow_id"] and item["flow_status"] == "running" for item in items) for items in versions.values())
    assert await stream.receive_nothing(timeout=0.4)
    await stream.disconnect()


async def test_a_stored_observation_reaches_the_stream_before_it_is_correlated(monkeypatch):
    import tracing.store
    from tracing.services import correlate_pending_observations

    monkeypatch.setattr(tracing.store, "enqueue_correlation", lambda: None)  # as with a busy worker
    stream = await connect("/ws/stream/")
    snapshot = await stream.receive_json_from(timeout=3)
    await astore(event("OrderCreated", "checkout", "order-early"))
    stored = await receive_until(stream, "delta")
    assert stored["first"] == snapshot["seq"] + 1 and stored["total"] == 1
    [item] = stored["items"]
    assert (item["name"], item["flow_key"], item["flow_id"], item["flow_status"]) == ("OrderCreated", "order-early", None, None)
    await database_sync_to_async(correlate_pending_observations)()
    correlated = await receive_until(stream, "delta")
    assert correlated["first"] == stored["seq"] + 1 and correlated["total"] == 0
    assert [(i["id"], i["flow_key"], i["flow_status"]) for i in correlated["items"]] == [(item["id"], "order-early", "running")]
    assert correlated["items"][0]["flow_id"] == await Flow.objects.values_list("id", flat=True).aget(key="order-early")
    await stream.disconnect()


async def test_a_page_filtered_by_flow_status_sees_observations_once_correlated(monkeypatch):
    import tracing.store
    from tracing.services import correlate_pending_observations

    monkeypatch.setattr(tracing.store, "enqueue_correlation", lambda: None)
    stream = await connect("/ws/stream/")
    await stream.receive_json_from(timeout=3)
    await stream.send_json_to({"type": "subscribe", "filters": {"status": "running"}})
    snapshot = await receive_until(stream, "snapshot")
    await astore(event("OrderCreated", "checkout", "order-filtered"))
    stored = await receive_until(stream, "delta")
    assert stored["items"] == [] and stored["total"] == 1, "its flow's status is not known yet"
    await database_sync_to_async(correlate_pending_observations)()
    correlated = await receive_until(stream, "delta")
    assert correlated["first"] == snapshot["seq"] + 2
    assert [(i["flow_key"], i["flow_status"]) for i in correlated["items"]] == [("order-filtered", "running")]
    await stream.disconnect()


async def test_a_burst_of_batches_is_coalesced_into_few_spaced_messages_that_lose_nothing(settings):
    settings.LIVE_UPDATE_SECONDS = 1.0
    await aingest(*[event("OrderCreated", "checkout", f"burst-{n}") for n in range(8)])
    ids = [pk async for pk in Observation.objects.filter(name="OrderCreated").order_by("id").values_list("id", flat=True)]
    stream = await connect("/ws/stream/")
    snapshot = await stream.receive_json_from(timeout=3)
    # Eight correlated batches in quick succession, as a burst of ingest requests makes them.
    for pk in ids:
        await database_sync_to_async(publish_batch)([], [pk], {})
    deltas = await stream_deltas_until(stream, lambda deltas: sum(len(d["items"]) for d in deltas) >= 8, snapshot["seq"])
    seen = [item["flow_key"] for delta in deltas for item in delta["items"]]
    assert sorted(seen) == sorted(f"burst-{n}" for n in range(8))
    assert len(deltas) == 2, "the first batch goes out at once, the other seven together one interval later"
    await stream.disconnect()


async def test_the_stream_filters_on_the_server():
    stream = await connect("/ws/stream/")
    await stream.receive_json_from(timeout=3)
    await stream.send_json_to({"type": "subscribe", "filters": {"service": "warehouse"}})
    filtered = await receive_until(stream, "snapshot")
    assert filtered["filters"]["service"] == "warehouse"
    await aingest(event("OrderCreated", "checkout", "order-7"), event("ShipmentPrepared", "warehouse", "order-7"))
    deltas = await stream_deltas_until(stream, lambda deltas: sum(d["total"] for d in deltas) >= 2, filtered["seq"])
    assert {item["service"] for delta in deltas for item in delta["items"]} == {"warehouse"}
    assert sum(delta["total"] for delta in deltas) == 2, "the rate counts everything, the list only what matches"
    await stream.disconnect()


async def test_a_bad_request_gets_an_error_message_and_the_socket_stays_open():
    stream = await connect("/ws/stream/")
    await stream.receive_json_from(timeout=3)
    await stream.send_to(text_data="not json")
    assert (await stream.receive_json_from(timeout=2))["type"] == "error"
    await stream.send_json_to({"type": "subscribe", "filters": {"status": "sideways"}})
    error = await stream.receive_json_from(timeout=2)
    assert error["type"] == "error" and "status" in error["message"]
    await asyncio.sleep(0.25)
    await stream.send_json_to({"type": "snapshot"})
    assert (await stream.receive_json_from(timeout=2))["type"] == "snapshot"
    await stream.disconnect()


async def test_a_socket_that_asks_for_snapshots_too_often_is_told_to_wait():
    stream = await connect("/ws/stream/")
    await stream.receive_json_from(timeout=3)
    await stream.send_json_to({"type": "snapshot"})
    await stream.send_json_to({"type": "snapshot"})
    assert (await stream.receive_json_from(timeout=2))["type"] == "snapshot"
    refused = await stream.receive_json_from(timeout=2)
    assert refused["type"] == "error" and "too many requests" in refused["message"]
    await stream.disconnect()


async def test_a_hole_in_the_numbering_is_answered_with_a_fresh_snapshot():
    stream = await connect("/ws/stream/")
    snapshot = await stream.receive_json_from(timeout=3)
    await aingest(event("OrderCreated", "checkout", "order-lost"))
    # The message numbered next is lost on the way (the channel layer drops by design); the
    # one after it arrives.
    lost = await sync_to_async(broadcast.next_sequence)(broadcast.STREAM_GROUP)
    assert lost >= snapshot["seq"] + 2
    data = {"stage": "stored", "items": [], "total": 0, "published_at": 0.0}
    await get_channel_layer().group_send(broadcast.STREAM_GROUP, {"type": broadcast.MESSAGE_TYPE, "seq": lost + 1, "data": data})
    await sync_to_async(broadcast.next_sequence)(broadcast.STREAM_GROUP)
    delta = await receive_until(stream, "delta")
    while delta["seq"] < lost - 1:
        delta = await receive_until(stream, "delta")
    assert delta["seq"] == lost - 1
    resync = await receive_until(stream, "snapshot", timeout=3)
    assert resync["seq"] >= lost + 1
    assert "order-lost" in [item["flow_key"] for item in resync["items"]]
    await stream.disconnect()


async def test_a_flow_socket_opens_with_the_flow_and_delivers_a_new_reaction():
    await aingest(event("OrderCreated", "checkout", "order-42", event_id="created-42"))
    flow = await Flow.objects.aget(key="order-42")
    page = await connect(f"/ws/flows/{flow.id}/")
    snapshot = await page.receive_json_from(timeout=3)
    assert snapshot["type"] == "snapshot"
    assert snapshot["flow"]["id"] == flow.id
    assert [node["name"] for node in snapshot["flow"]["nodes"]] == ["OrderCreated"]

    await aingest(event("EmailSent", "email", "order-42", causation="created-42"))
    delta = await receive_until(page, "delta")
    assert delta["first"] == snapshot["seq"] + 1
    names = {node["id"]: node["name"] for node in delta["flow"]["nodes"]}
    assert sorted(names.values()) == ["EmailSent", "OrderCreated"]
    assert [names[node_id] for node_id in delta["new"]] == ["EmailSent"]
    await page.disconnect()


async def test_a_flow_socket_hears_when_its_flow_becomes_stuck():
    from datetime import timedelta

    from django.utils import timezone

    from alerts.models import DeclaredFlow
    from alerts.services import scan_stuck_flows

    declared = await DeclaredFlow.objects.acreate(flow_type="OrderCreated")
    await declared.expectations.acreate(after="OrderCreated", steps=["rewards/PointsCreated"], within_seconds=1)
    await aingest(event("OrderCreated", "checkout", "order-77"))
    flow = await Flow.objects.aget(key="order-77")
    page = await connect(f"/ws/flows/{flow.id}/")
    snapshot = await page.receive_json_from(timeout=3)
    assert (snapshot["flow"]["status"], snapshot["flow"]["missing"]) == ("running", [])

    await sync_to_async(scan_stuck_flows)(timezone.now() + timedelta(seconds=5))
    delta = await receive_until(page, "delta")
    assert delta["flow"]["status"] == "stuck"
    assert [(m["step"], m["service"]) for m in delta["flow"]["missing"]] == [("PointsCreated", "rewards")]
    assert delta["new"] == []
    await page.disconnect()


async def test_a_flow_socket_hears_nothing_of_other_flows():
    await aingest(event("OrderCreated", "checkout", "order-50"))
    flow = await Flow.objects.aget(key="order-50")
    page = await connect(f"/ws/flows/{flow.id}/")
    await page.receive_json_from(timeout=3)
    await aingest(event("OrderCreated", "checkout", "order-51"))
    assert await page.receive_nothing(timeout=0.5)
    await page.disconnect()


async def test_a_socket_for_a_flow_that_does_not_exist_is_closed_with_4404():
    page = await connect("/ws/flows/999999/")
    assert await page.receive_output(timeout=2) == {"type": "websocket.close", "code": 4404}


async def test_the_topology_socket_sends_the_map_then_pulses_along_its_edges():
    await aingest(event("OrderCreated", "checkout", "order-60", event_id="created-60"))
    await aingest(event("EmailSent", "email", "order-60", causation="created-60"))
    socket = await connect("/ws/topology/")
    snapshot = await socket.receive_json_from(timeout=3)
    assert snapshot["window"] == "15m"
    assert {(e["source"], e["target"]) for e in snapshot["edges"]} >= {
        ("service:checkout", "type:OrderCreated"),
        ("type:OrderCreated", "service:email"),
        ("service:email", "type:EmailSent"),
    }
    await aingest(event("OrderCreated", "checkout", "order-61", event_id="created-61"))
    await aingest(event("PointsCreated", "rewards", "order-61", causation="created-61"))
    pulses = set()
    while ("type:OrderCreated", "service:rewards") not in pulses:
        delta = await receive_until(socket, "delta")
        pulses |= {(p["source"], p["target"]) for p in delta["pulses"]}
    assert ("service:checkout", "type:OrderCreated") in pulses
    await socket.send_json_to({"type": "subscribe", "window": "24h"})
    assert (await receive_until(socket, "snapshot"))["window"] == "24h"
    await asyncio.sleep(0.25)
    await socket.send_json_to({"type": "subscribe", "window": "2w"})
    assert "5m, 15m, 1h, 24h" in (await receive_until(socket, "error"))["message"]
    await socket.disconnect()


async def test_a_flow_absorbed_by_an_older_one_tells_its_page_where_it_went():
    await aingest(event("OrderCreated", "checkout", "order-70", event_id="created-70"))
    # An e-mail without a key of its own, sent for a payment not seen yet: a keyless flow for now.
    await aingest(event("EmailSent", "email", "", event_id="mail-70", causation="payment-70"))
    older = await Flow.objects.aget(key="order-70")
    younger = (await Observation.objects.aget(event_id="mail-70")).flow_id
    assert younger != older.id
    page = await connect(f"/ws/flows/{younger}/")
    await page.receive_json_from(timeout=3)
    # The payment it reacted to arrives late, and belongs to order-70: the e-mail serves order-70 now.
    await aingest(event("PaymentAuthorized", "payments", "order-70", event_id="payment-70"))
    delta = await receive_until(page, "delta")
    assert delta["merged_into"] == older.id
    await page.disconnect()


def open_alert_for(key: str) -> int:
    from django.utils import timezone

    from alerts.models import Alert

    flow = Flow.objects.get(key=key)
    alert = Alert.objects.create(
        flow=flow,
        flow_key=flow.key,
        flow_type="order",
        step="PointsCreated",
        service="rewards",
        after="OrderCreated",
        due_at=timezone.now(),
        missing=[
            {
                "step": "PointsCreated",
                "service": "rewards",
                "after": "OrderCreated",
                "after_service": "checkout",
                "due_at": "2026-01-01T00:00:00+00:00",
                "origin": "declared",
            }
        ],
    )
    return alert.id


async def test_the_alerts_socket_opens_with_the_alerts_and_delivers_an_acknowledgement():
    from alerts.services import acknowledge_alert

    await aingest(event("OrderCreated", "checkout", "order-80"))
    alert_id = await database_sync_to_async(open_alert_for)("order-80")
    socket = await connect("/ws/alerts/")
    snapshot = await socket.receive_json_from(timeout=3)
    assert snapshot["type"] == "snapshot"
    assert [(alert["id"], alert["state"]) for alert in snapshot["alerts"]] == [(alert_id, "open")]
    assert [(group["step"], group["open"]) for group in snapshot["groups"]] == [("PointsCreated", 1)]
    assert snapshot["counts"]["open"] == 1

    await database_sync_to_async(acknowledge_alert)(alert_id, None)
    delta = await receive_until(socket, "delta")
    assert delta["first"] == snapshot["seq"] + 1
    assert [(alert["id"], alert["state"]) for alert in delta["alerts"]] == [(alert_id, "acknowledged")]
    assert [(group["open"], group["acknowledged"]) for group in delta["groups"]] == [(0, 1)]
    assert (delta["counts"]["open"], delta["counts"]["acknowledged"]) == (0, 1)
    await socket.disconnect()


async def test_logging_out_closes_the_sockets_of_that_session_with_4401():
    from channels.testing import WebsocketCommunicator
    from django.contrib.auth import get_user_model
    from django.test import Client

    from choreoscope.asgi import application

    def logged_in_client(username: str) -> Client:
        client = Client()
        client.force_login(get_user_model().objects.get_or_create(username=username)[0])
        return client

    leaving = await database_sync_to_async(logged_in_client)("leaving")
    staying = await database_sync_to_async(logged_in_client)("staying")
    sockets = []
    for client in (leaving, staying):
        cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
        socket = WebsocketCommunicator(application, "/ws/alerts/", headers=[ORIGIN, (b"cookie", cookie)])
        await socket.connect(timeout=5)
        assert (await socket.receive_json_from(timeout=3))["type"] == "snapshot"
        sockets.append(socket)

    await database_sync_to_async(leaving.logout)()
    assert await sockets[0].receive_output(timeout=2) == {"type": "websocket.close", "code": 4401}
    assert await sockets[1].receive_nothing(timeout=0.3), "another session's socket stays open"
    await sockets[1].disconnect()
