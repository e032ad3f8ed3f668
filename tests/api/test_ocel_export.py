"""``GET /api/flows/export.ocel.json`` read back by PM4Py's OCEL 2.0 JSON importer."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pm4py
import pytest

from dashboard.ocel import object_type, ocel_chunks, ocel_time
from tests.tracing.factories import MS, checkout_flow, event, new_trace_id, span, store_observations
from tracing.records import SPAN_KIND_CONSUMER
from tracing.services import correlate_pending_observations

pytestmark = pytest.mark.django_db

EVENTS_PER_ORDER = 4  # OrderCreated, EmailSent, ShipmentPrepared, PointsCreated


def export(client, tmp_path: Path, **query: str) -> tuple[Any, Path]:  # type: ignore[no-untyped-def]
    response = client.get("/api/flows/export.ocel.json", query)
    assert response.status_code == 200
    assert response.streaming
    path = tmp_path / "export.jsonocel"
    path.write_bytes(b"".join(response.streaming_content))
    return response, path


def test_pm4py_reads_the_export_with_the_right_counts(admin_client, tmp_path):
    orders = [checkout_flow(failing=index == 2) for index in range(3)]
    response, path = export(admin_client, tmp_path)
    ocel = pm4py.read_ocel2_json(str(path))
    assert len(ocel.events) == 3 * EVENTS_PER_ORDER
    assert sorted(ocel.objects["ocel:oid"]) == sorted(order.key for order in orders)
    assert set(ocel.objects["ocel:type"]) == {"order"}
    assert len(ocel.relations) == 3 * EVENTS_PER_ORDER  # every event to its order
    assert set(ocel.relations["ocel:qualifier"]) == {"key"}  # each event carries its order's key
    assert len(ocel.o2o) == 0
    assert set(ocel.events["ocel:activity"]) == {"OrderCreated", "EmailSent", "ShipmentPrepared", "PointsCreated"}
    assert response["X-Choreoscope-Flows"] == "3" and response["X-Choreoscope-Truncated"] == "false"


def test_the_export_takes_the_flows_lists_filters(admin_client, tmp_path):
    wanted, _ = checkout_flow(), checkout_flow()
    _, path = export(admin_client, tmp_path, key=wanted.key)
    ocel = pm4py.read_ocel2_json(str(path))
    assert list(ocel.objects["ocel:oid"]) == [wanted.key]
    assert len(ocel.events) == EVENTS_PER_ORDER


def test_the_export_is_bounded_and_says_so(admin_client, tmp_path, settings):
    settings.OCEL_EXPORT_MAX_FLOWS = 2
    newest = [checkout_flow(start_ns=(1_700_000_000 + minute * 60) * 10**9) for minute in range(3)]
    response, path = export(admin_client, tmp_path)
    document = json.loads(path.read_bytes())
    assert sorted(obj["id"] for obj in document["objects"]) == sorted(order.key for order in newest[1:])
    assert response["X-Choreoscope-Truncated"] == "true"


def test_an_event_reached_by_causality_alone_is_a_step_of_its_flow(admin_client, tmp_path):
    order = checkout_flow()
    created = order.by_name["OrderCreated"]
    audit = event("audit", "OrderAudited", created.start_ns + 5_000_000, caused_by=created)
    store_observations([audit])
    correlate_pending_observations()
    _, path = export(admin_client, tmp_path, key=order.key)
    ocel = pm4py.read_ocel2_json(str(path))
    qualifiers = dict(zip(ocel.relations["ocel:activity"], ocel.relations["ocel:qualifier"], strict=True))
    assert qualifiers["OrderAudited"] == "step" and qualifiers["OrderCreated"] == "key"


def test_an_empty_selection_is_an_empty_log(admin_client, tmp_path):
    # (PM4Py 2.7 itself cannot open a log without events, so this one is read as JSON.)
    _, path = export(admin_client, tmp_path, type="nothing-of-this-type")
    assert json.loads(path.read_bytes()) == {"objects": [], "events": [], "objectTypes": [], "eventTypes": []}


@pytest.mark.parametrize(
    ("query", "says"),
    [({"status": "asleep"}, "'status' must be one of"), ({"cursor": "x"}, "Unknown parameter(s) cursor")],
)
def test_bad_filters_get_a_clear_400(admin_client, query, says):
    answer = admin_client.get("/api/flows/export.ocel.json", query)
    assert answer.status_code == 400 and says in answer.json()["error"]


def test_object_types_come_from_the_key_prefix_else_the_flow_type():
    assert object_type("order-1042", "OrderCreated") == "order"
    assert object_type("shipment_batch-7", "x") == "shipment_batch"
    assert object_type("4bf92f3577b34da6a3ce929d0e0e4736", "OrderCreated") == "OrderCreated"
    assert object_type("-1", "") == "flow"


def test_times_are_utc_to_the_microsecond():
    assert ocel_time(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456Z"


def test_a_flow_caused_from_another_flows_observation_follows_its_object():
    """Cross-flow edges (an observation of one keyed flow caused by another's) become o2o."""
    started = datetime(2026, 1, 1, tzinfo=UTC)
    flows = [
        {"id": 1, "key": "order-1", "type": "order", "status": "completed", "started_at": started},
        {"id": 2, "key": "refund-7", "type": "refund", "status": "running", "started_at": started},
    ]
    row = {"identity": "e1", "name": "RefundRequested", "service": "payments", "status": "unset", "start_ns": 0}
    document = json.loads(b"".join(ocel_chunks(flows, {2: ["order-1"]}, [(2, {**row, "business_key": "refund-7"})])))
    assert document["objects"][1]["relationships"] == [{"objectId": "order-1", "qualifier": "follows"}]
    assert document["events"][0]["relationships"] == [{"objectId": "refund-7", "qualifier": "key"}]
    assert [t["name"] for t in document["objectTypes"]] == ["order", "refund"]


def test_an_event_shared_by_two_orders_is_written_once_and_related_to_both(admin_client, tmp_path):
    first, second = checkout_flow(reacting=()), checkout_flow(reacting=())
    producers = [order.by_name["OrderCreated send"] for order in (first, second)]
    batch_trace = new_trace_id()
    at = max(p.start_ns for p in producers) + 50 * MS
    links = [(p.trace_id, p.span_id) for p in producers]
    batch = span("loyalty", "OrderCreated process", batch_trace, at, 20, kind=SPAN_KIND_CONSUMER, links=links)
    awarded = event("loyalty", "PointsBatchAwarded", at + 10 * MS, emitted_by=batch)  # no key: it serves the batch
    store_observations([batch, awarded])
    correlate_pending_observations()

    _, path = export(admin_client, tmp_path)
    document = json.loads(path.read_text())
    [written] = [item for item in document["events"] if item["type"] == "PointsBatchAwarded"]
    assert sorted(r["objectId"] for r in written["relationships"]) == sorted([first.key, second.key])
    assert sorted(r["qualifier"] for r in written["relationships"]) == ["shared", "step"]
    ocel = pm4py.read_ocel2_json(str(path))
    assert len(ocel.events) == 3  # two OrderCreated and the batch's event, once
    assert len(ocel.relations) == 4
