"""The declarations of the live messages: the checker that the socket tests run on every real
message, every socket's declarations, and the pages reading the declared names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args, get_type_hints

import pytest

from dashboard import live_messages
from dashboard.consumers import LiveConsumer
from dashboard.live_messages import AlertRow, FlowDetail, IncidentGroup, StreamDelta, StreamItem, StreamPublication
from dashboard.routing import websocket_urlpatterns
from tests.live.message_shapes import ShapeError, check, heard_publications, sent_messages

STATIC = Path(__file__).resolve().parents[2] / "dashboard" / "static" / "dashboard"


def stream_item(**changes) -> dict:
    item = {
        "id": 1,
        "kind": "event",
        "name": "OrderCreated",
        "service": "checkout",
        "status": "unset",
        "time": "2026-01-01T00:00:00+00:00",
        "received_at": "2026-01-01T00:00:00+00:00",
        "flow_id": None,
        "flow_key": "order-1",
        "flow_status": None,
    }
    return {**item, **changes}


def stream_delta(**changes) -> dict:
    delta = {"type": "delta", "first": 3, "seq": 4, "items": [stream_item()], "total": 1, "matched": 1, "left_out": 0}
    return {**delta, "published_at": 1.5, **changes}


def test_the_checker_accepts_a_message_as_declared_and_names_what_is_wrong_otherwise():
    check(stream_delta(), StreamDelta)
    with pytest.raises(ShapeError, match=r"items\[0\]: expected only the fields of StreamItem, got \['flowKey'\]"):
        renamed = stream_item(flowKey="order-1")
        del renamed["flow_key"]
        check(stream_delta(items=[renamed]), StreamDelta)
    without_total = stream_delta()
    del without_total["total"]
    with pytest.raises(ShapeError, match="field 'total'"):
        check(without_total, StreamDelta)
    with pytest.raises(ShapeError, match="field 'left_out'"):
        check({key: value for key, value in stream_delta().items() if key != "left_out"}, StreamDelta)
    with pytest.raises(ShapeError, match=r"\.seq: expected an integer, got '4'"):
        check(stream_delta(seq="4", items=[], published_at=None), StreamDelta)
    with pytest.raises(ShapeError, match=r"\.kind: expected one of \('event', 'span'\)"):
        check(stream_item(kind="log"), StreamItem)


def test_a_field_declared_not_required_may_be_left_out():
    check({"stage": "correlated", "items": [], "published_at": 1.0}, StreamPublication)
    check({"stage": "stored", "items": [], "total": 3, "published_at": 1.0}, StreamPublication)


def routed_consumers() -> list[type[LiveConsumer]]:
    return [pattern.callback.consumer_class for pattern in websocket_urlpatterns]  # type: ignore[attr-defined]


@pytest.mark.parametrize("consumer", routed_consumers(), ids=lambda consumer: consumer.__name__)
def test_every_socket_declares_a_snapshot_a_delta_and_what_its_group_carries(consumer):
    kinds = set()
    for message in get_args(sent_messages(consumer)):
        kinds |= set(get_args(get_type_hints(message)["type"]))
    assert kinds == {"snapshot", "delta", "error"}
    publication = heard_publications(consumer)
    assert all(option.__module__ == "dashboard.live_messages" for option in get_args(publication) or (publication,))


def test_the_client_treats_the_servers_close_codes_as_final():
    source = (STATIC / "live-socket.js").read_text()
    final_codes = re.search(r"const FINAL_CODES = new Map\(\[(.*?)\]\);", source, re.S)
    assert final_codes is not None
    assert sorted(int(code) for code in re.findall(r"\[(\d{4}),", final_codes.group(1))) == sorted(
        live_messages.FINAL_CLOSE_CODES
    )


def fields_read(script: str, variable: str) -> set[str]:
    return set(re.findall(rf"\b{variable}\.([a-z_]+)\b", (STATIC / script).read_text()))


def declared(*messages: type) -> set[str]:
    return {name for message in messages for name in get_type_hints(message)}


@pytest.mark.parametrize(
    ("script", "variable", "messages"),
    [
        ("alerts.js", "alert", [AlertRow]),
        ("alerts.js", "group", [IncidentGroup]),
        ("live.js", "item", [StreamItem]),
        ("live.js", "snapshot", [live_messages.StreamSnapshot]),
        ("live.js", "delta", [StreamDelta]),
        ("live-flow.js", "message", [live_messages.FlowSnapshot, live_messages.FlowDelta, live_messages.FlowMergedDelta]),
        ("flow-page.js", "snapshot", [FlowDetail]),
        ("service-map.js", "snapshot", [live_messages.TopologySnapshot]),
        ("service-map.js", "delta", [live_messages.TopologyDelta]),
        ("live-socket.js", "message", [live_messages.StreamSnapshot, StreamDelta, live_messages.ErrorMessage]),
    ],
)
def test_the_pages_read_the_declared_field_names(script, variable, messages):
    read = fields_read(script, variable)
    assert read, f"{script} reads no {variable}.<field>: the pattern is out of date"
    assert read <= declared(*messages), f"{script} reads undeclared fields of {variable}: {sorted(read - declared(*messages))}"
