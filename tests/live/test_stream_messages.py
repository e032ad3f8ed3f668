"""The stream's pure parts: merging stored and correlated messages into one socket's delta, and
gathering a process's stored observations into few messages."""

import threading
from typing import Any

from dashboard import live_feed
from dashboard.live_feed import STREAM_BATCH_CAP, StoredStream, StreamFilters, stream_delta
from dashboard.live_messages import StreamPublication


def item(obs_id: int, flow_id: int | None = None, **fields) -> dict:
    return {
        "id": obs_id,
        "kind": "event",
        "name": "OrderCreated",
        "service": "checkout",
        "status": "unset",
        "flow_id": flow_id,
        "flow_key": "order-1",
        "flow_status": "running" if flow_id else None,
        **fields,
    }


def stored(*items: Any, total: int | None = None) -> StreamPublication:
    return {"stage": "stored", "items": list(items), "total": len(items) if total is None else total, "published_at": 2.0}


def correlated(*items: Any) -> StreamPublication:
    return {"stage": "correlated", "items": list(items), "published_at": 1.0}


def test_the_correlated_version_of_an_observation_wins_whichever_came_first():
    for datas in ([stored(item(1)), correlated(item(1, flow_id=7))], [correlated(item(1, flow_id=7)), stored(item(1))]):
        delta = stream_delta(datas, StreamFilters())
        assert [(i["id"], i["flow_id"]) for i in delta["items"]] == [(1, 7)]
        assert delta["total"] == 1 and delta["published_at"] == 1.0


def test_filters_apply_to_both_stages_and_the_rate_counts_every_stored_observation():
    datas = [stored(item(1), item(2, service="warehouse"), total=5), correlated(item(2, flow_id=3, service="warehouse"))]
    delta = stream_delta(datas, StreamFilters(service="warehouse"))
    assert [(i["id"], i["flow_id"]) for i in delta["items"]] == [(2, 3)]
    assert delta["total"] == 5
    by_flow_status = stream_delta([stored(item(4)), correlated(item(5, flow_id=9))], StreamFilters(status="running"))
    assert [i["id"] for i in by_flow_status["items"]] == [5]


def test_a_delta_carries_the_newest_items_oldest_first():
    datas = [stored(*[item(n) for n in range(STREAM_BATCH_CAP + 50, 0, -1)])]
    ids = [i["id"] for i in stream_delta(datas, StreamFilters())["items"]]
    assert ids == list(range(51, STREAM_BATCH_CAP + 51))


def test_stored_observations_of_one_interval_go_out_as_one_capped_message(monkeypatch):
    sent: list = []
    done = threading.Event()

    def publish_many(payloads):
        sent.extend(payloads)
        done.set()

    monkeypatch.setattr(live_feed, "publish_many", publish_many)
    stream = StoredStream(interval=0.2)
    stream.add([item(n) for n in range(150)], 150)
    stream.add([item(n) for n in range(150, 300)], 150)
    stream.add([item(300)], 1)
    assert done.wait(3)
    assert len(sent) == 1
    group, data = sent[0]
    assert group == live_feed.STREAM_GROUP
    assert data["stage"] == "stored" and data["total"] == 301
    assert [i["id"] for i in data["items"]] == list(range(301 - STREAM_BATCH_CAP, 301))
    done.clear()
    stream.add([item(301)], 1)  # the next interval starts a new message
    assert done.wait(3)
    assert len(sent) == 2 and sent[1][1]["total"] == 1
