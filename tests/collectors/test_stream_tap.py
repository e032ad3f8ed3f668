"""The event-bus tap: Redis Streams entries in, stored observations out, acknowledged after commit."""

from __future__ import annotations

import json
import os
import uuid
from io import StringIO

import pytest
from django.core.management import call_command

from choreoscope.metrics import REGISTRY
from collectors.taps.base import tap_batch_outcome
from collectors.taps.redis_streams import BadEntry, StreamTap, entry_event, entry_record
from tests.collectors.payloads import cloudevent
from tracing.models import Observation
from tracing.store import store_observations


def test_an_entry_may_hold_a_structured_event_in_one_field():
    event = cloudevent(id="s-1")
    assert entry_event({b"cloudevent": json.dumps(event).encode()}) == event
    assert entry_event({"event": json.dumps(event)}) == event


def test_an_entry_may_hold_one_field_per_attribute_with_json_data():
    fields = {
        b"specversion": b"1.0",
        b"id": b"f-1",
        b"source": b"/checkout",
        b"type": b"OrderCreated",
        b"correlationid": b"order-9",
        b"datacontenttype": b"application/json",
        b"data": b'{"order_id": 9}',
    }
    record = entry_record(dict(fields), received_ns=5)  # type: ignore[arg-type]  # bytes keys, as redis-py returns them
    assert (record.event_id, record.name, record.start_ns) == ("f-1", "OrderCreated", 5)
    assert record.attributes == {"correlationid": "order-9"} and record.detail["data"] == {"order_id": 9}


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({b"cloudevent": b"{nope"}, "not JSON"),
        ({b"cloudevent": b"[1]"}, "JSON object"),
        ({b"specversion": b"1.0", b"id": b"x"}, "required attribute 'source' is missing"),
        ({b"specversion": b"\xff"}, "not UTF-8"),
    ],
)
def test_a_bad_entry_says_why(fields, reason):
    with pytest.raises(BadEntry, match=reason):
        entry_record(fields, 0)


# --- against a real Redis ------------------------------------------------------------------------


def test_a_tap_batch_is_accepted_partial_or_rejected_like_an_ingest_request():
    assert tap_batch_outcome(stored=3, rejected=0) == "accepted"
    assert tap_batch_outcome(stored=2, rejected=1) == "partial"
    assert tap_batch_outcome(stored=0, rejected=2) == "rejected"


@pytest.fixture
def redis_client():
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    streams: list[str] = []
    yield client, streams
    for stream in streams:
        client.delete(stream)
    client.close()


def new_stream(redis_client) -> str:
    _, streams = redis_client
    name = f"test-tap-{uuid.uuid4().hex[:10]}"
    streams.append(name)
    return name


def make_tap(client, stream: str, consumer: str = "tap-1", store=store_observations, reports=None, **options) -> StreamTap:
    return StreamTap(
        client=client,
        streams=[stream],
        group="choreoscope",
        consumer=consumer,
        store=store,
        report=(reports if reports is not None else []).append,
        block_ms=100,
        **options,
    )


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_the_tap_stores_good_entries_reports_bad_ones_and_acknowledges_all(redis_client):
    client, _ = redis_client
    stream = new_stream(redis_client)
    client.xadd(stream, {"cloudevent": json.dumps(cloudevent(id="a"))})
    client.xadd(stream, {"specversion": "1.0", "id": "b", "source": "/warehouse", "type": "ShipmentPrepared"})
    client.xadd(stream, {"specversion": "0.3", "id": "c"})
    reports: list[str] = []
    tap = make_tap(client, stream, reports=reports)
    tap.run(should_stop=lambda: False, exit_when_idle=True)
    assert sorted(Observation.objects.values_list("event_id", flat=True)) == ["a", "b"]
    assert len(reports) == 1 and "specversion must be '1.0'" in reports[0]
    assert client.xpending(stream, "choreoscope")["pending"] == 0


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_nothing_is_acknowledged_when_the_store_fails_and_a_restart_resumes_without_loss_or_duplicates(redis_client):
    client, _ = redis_client
    stream = new_stream(redis_client)
    for index in range(3):
        client.xadd(stream, {"cloudevent": json.dumps(cloudevent(id=f"r-{index}"))})

    def database_down(records):
        raise ConnectionError("database unavailable")

    failing = make_tap(client, stream, store=database_down)
    failing.ensure_groups()
    unavailable = {"endpoint": "tap_redis-stream", "outcome": "unavailable"}
    before = REGISTRY.get_sample_value("choreoscope_ingest_request_seconds_count", unavailable) or 0.0
    with pytest.raises(ConnectionError):
        failing.read_new()
    assert client.xpending(stream, "choreoscope")["pending"] == 3 and Observation.objects.count() == 0
    # The failed batch is an ingest request that ended "unavailable", as a 503 over HTTP would.
    assert REGISTRY.get_sample_value("choreoscope_ingest_request_seconds_count", unavailable) == before + 1

    client.xadd(stream, {"cloudevent": json.dumps(cloudevent(id="r-0"))})  # a re-publication of r-0
    make_tap(client, stream).run(should_stop=lambda: False, exit_when_idle=True)  # same consumer, restarted
    assert sorted(Observation.objects.values_list("event_id", flat=True)) == ["r-0", "r-1", "r-2"]
    assert client.xpending(stream, "choreoscope")["pending"] == 0


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_entries_left_pending_by_a_dead_consumer_are_claimed(redis_client):
    client, _ = redis_client
    stream = new_stream(redis_client)
    client.xadd(stream, {"cloudevent": json.dumps(cloudevent(id="orphan"))})
    client.xgroup_create(stream, "choreoscope", id="0")
    client.xreadgroup("choreoscope", "dead-consumer", {stream: ">"})  # read, never acknowledged
    make_tap(client, stream, consumer="tap-2", claim_idle_ms=0).run(should_stop=lambda: False, exit_when_idle=True)
    assert Observation.objects.get().event_id == "orphan"
    assert client.xpending(stream, "choreoscope")["pending"] == 0


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_the_tap_command_reads_several_streams(redis_client):
    client, _ = redis_client
    first, second = new_stream(redis_client), new_stream(redis_client)
    client.xadd(first, {"cloudevent": json.dumps(cloudevent(id="one"))})
    client.xadd(second, {"cloudevent": json.dumps(cloudevent(id="two"))})
    out = StringIO()
    call_command("tap", "redis-stream", first, second, "--exit-when-idle", "--block", "0.2", stdout=out, stderr=StringIO())
    assert "Stored 2 event(s), rejected 0." in out.getvalue()
    assert Observation.objects.count() == 2
