"""The stream's pure parts: what one page lists of the stored and correlated messages it hears
(every matching row up to its rate, then a sample that says what it left out), and gathering a
process's stored observations into few messages, the first of them at once."""

import math
import threading
import time
from typing import Any

from dashboard import live_feed
from dashboard.live_feed import STREAM_PUBLICATION_CAP, StoredStream, StreamFilters, StreamSampler
from dashboard.live_messages import StreamPublication


def item(obs_id: int, flow_id: int | None = None, **fields: Any) -> Any:
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


def sampler(rows_per_second: float = math.inf, **filters: str) -> StreamSampler:
    return StreamSampler(StreamFilters(**filters), rows_per_second)


def ids(delta) -> list[int]:
    return [i["id"] for i in delta["items"]]


def test_the_correlated_version_of_an_observation_wins_whichever_came_first():
    for datas in ([stored(item(1)), correlated(item(1, flow_id=7))], [correlated(item(1, flow_id=7)), stored(item(1))]):
        delta = sampler().delta(datas, now=0.0)
        assert [(i["id"], i["flow_id"]) for i in delta["items"]] == [(1, 7)]
        assert delta["total"] == 1 and delta["matched"] == 1 and delta["left_out"] == 0 and delta["published_at"] == 1.0


def test_filters_apply_to_both_stages_and_the_rate_counts_every_stored_observation():
    datas = [stored(item(1), item(2, service="warehouse"), total=5), correlated(item(2, flow_id=3, service="warehouse"))]
    delta = sampler(service="warehouse").delta(datas, now=0.0)
    assert [(i["id"], i["flow_id"]) for i in delta["items"]] == [(2, 3)]
    assert delta["total"] == 5 and delta["matched"] == 1
    by_flow_status = sampler(status="running").delta([stored(item(4)), correlated(item(5, flow_id=9))], now=0.0)
    assert ids(by_flow_status) == [5]


def test_a_listed_row_gets_its_flow_in_a_later_delta_and_is_not_counted_again():
    page = sampler()
    first = page.delta([stored(item(1), item(2))], now=0.0)
    later = page.delta([correlated(item(1, flow_id=7), item(2, flow_id=8)), stored(item(3))], now=0.1)
    assert ids(first) == [1, 2] and first["matched"] == 2
    assert [(i["id"], i["flow_id"]) for i in later["items"]] == [(1, 7), (2, 8), (3, None)]
    assert later["matched"] == 1 and later["left_out"] == 0
    again = page.delta([stored(item(3))], now=0.2)
    assert ids(again) == [] and again["matched"] == 0, "a row the page holds is not sent again without news"


def test_a_filtered_page_lists_every_matching_row_up_to_its_rate():
    # 2,000 observations a second in messages every 50 ms, a quarter of them OrderCreated: 500
    # matching rows a second, all listed by a page allowed 600.
    page = sampler(600, type="OrderCreated")
    listed, matched, left_out = [], 0, 0
    names = ("OrderCreated", "EmailSent", "ShipmentPrepared", "PointsCreated")
    for tick in range(40):  # two seconds
        batch = [item(tick * 100 + n, name=names[n % 4]) for n in range(100)]
        delta = page.delta([stored(*batch)], now=tick * 0.05)
        listed += ids(delta)
        matched, left_out = matched + delta["matched"], left_out + delta["left_out"]
    assert matched == 1000 and left_out == 0
    assert listed == [n for n in range(4000) if n % 4 == 0]


def test_above_its_rate_a_page_lists_the_newest_and_counts_the_rest_as_left_out():
    page = sampler(600)
    deltas = [page.delta([stored(*[item(tick * 200 + n) for n in range(200)])], now=tick * 0.1) for tick in range(20)]
    listed = sum(len(delta["items"]) for delta in deltas)
    assert sum(delta["matched"] for delta in deltas) == 4000
    assert sum(delta["left_out"] for delta in deltas) == 4000 - listed
    assert 600 * 1.9 <= listed <= 600 * 3, "about 600 a second: a second's worth at first, then the refill"
    assert ids(deltas[-1]) == list(range(3999 - len(deltas[-1]["items"]) + 1, 4000)), "the newest are listed"
    left = [n for n in range(3800, 4000) if n not in ids(deltas[-1])]
    late = page.delta([correlated(*[item(n, flow_id=1) for n in left])], now=2.0)
    assert ids(late) == [] and late["matched"] == 0, "a row left out stays out, and is counted once"


def test_a_late_version_of_an_observation_the_page_has_forgotten_is_not_new_again(monkeypatch):
    monkeypatch.setattr(live_feed, "STREAM_SEEN_MEMORY", 10)
    page = sampler(5)
    first = page.delta([stored(*[item(n) for n in range(1, 21)])], now=0.0)
    assert first["matched"] == 20 and first["left_out"] == 15
    late = page.delta([correlated(*[item(n, flow_id=1) for n in range(1, 21)])], now=0.1)
    assert late["matched"] == 0 and late["left_out"] == 0, "each observation is counted once, however late"


def test_a_snapshot_restarts_what_the_page_lists():
    page = sampler()
    page.delta([stored(item(1), item(2))], now=0.0)
    page.restart([item(2)])
    delta = page.delta([correlated(item(1, flow_id=4), item(2, flow_id=4))], now=0.1)
    assert [(i["id"], i["flow_id"]) for i in delta["items"]] == [(1, 4), (2, 4)]
    assert delta["matched"] == 1, "1 is not in the snapshot the page now holds: it is new again"


def recording(monkeypatch) -> tuple[list, threading.Event]:
    sent: list = []
    done = threading.Event()

    def publish_many(payloads, loop=None):
        sent.extend(payloads)
        done.set()

    monkeypatch.setattr(live_feed, "publish_many", publish_many)
    return sent, done


def test_after_a_quiet_spell_stored_observations_are_published_at_once(monkeypatch):
    sent, done = recording(monkeypatch)
    stream = StoredStream(interval=5.0)
    started = time.monotonic()
    stream.add([item(1)], 1)
    assert done.wait(3)
    assert time.monotonic() - started < 1.0, "not held back for the interval"
    assert [(group, data["stage"], data["total"]) for group, data in sent] == [(live_feed.STREAM_GROUP, "stored", 1)]


def test_stored_observations_arriving_within_an_interval_go_out_as_one_message_when_it_ends(monkeypatch):
    sent, done = recording(monkeypatch)
    stream = StoredStream(interval=0.5)
    stream.add([item(0)], 1)
    assert done.wait(3)
    done.clear()
    first_at = time.monotonic()
    stream.add([item(n) for n in range(1, STREAM_PUBLICATION_CAP + 1)], STREAM_PUBLICATION_CAP)
    stream.add([item(n) for n in range(STREAM_PUBLICATION_CAP + 1, STREAM_PUBLICATION_CAP + 11)], 10)
    assert done.wait(3)
    assert time.monotonic() - first_at >= 0.3, "the second message waits for the interval to end"
    assert len(sent) == 2
    data = sent[1][1]
    assert data["total"] == STREAM_PUBLICATION_CAP + 10
    assert [i["id"] for i in data["items"]] == list(range(11, STREAM_PUBLICATION_CAP + 11)), "capped: the newest"
