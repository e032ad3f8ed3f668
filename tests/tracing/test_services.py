"""Correlation through its service functions and the flows API: merges, configuration,
retention, signals, and a query count that does not grow with the batch."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.tracing.factories import SPAN_KIND_CONSUMER, SPAN_KIND_PRODUCER, checkout_flow, checkout_records, new_trace_id, span
from tracing.models import Anchor, Edge, Flow, Observation, PendingRef
from tracing.services import correlate_pending_observations, prune_expired_data
from tracing.signals import flows_changed
from tracing.store import store_observations

pytestmark = pytest.mark.django_db


def correlate(records):
    store_observations(records)
    correlate_pending_observations()


def test_a_late_producer_merges_two_partial_flows_and_the_absorbed_id_redirects(admin_client):
    now = time.time_ns()
    trace = new_trace_id()
    root = span("checkout", "POST /checkout", trace, now)
    producer = span("checkout", "OrderCreated send", trace, now + 1000, parent=root.span_id, kind=SPAN_KIND_PRODUCER)
    consumer = span(
        "email", "OrderCreated process", new_trace_id(), now + 5000, kind=SPAN_KIND_CONSUMER, links=[(trace, producer.span_id)]
    )
    correlate([consumer])
    correlate([root])
    first, second = Flow.objects.order_by("id")
    assert PendingRef.objects.count() == 1  # the consumer's link waits for the producer

    received = []

    def receiver(**kwargs):
        received.append(kwargs)

    flows_changed.connect(receiver)
    try:
        correlate([producer])
    finally:
        flows_changed.disconnect(receiver)

    second.refresh_from_db()
    assert second.merged_into_id == first.id
    assert received[0]["merged"] == {second.id: first.id} and received[0]["flow_ids"] == [first.id]
    assert not PendingRef.objects.exists()
    detail = admin_client.get(f"/api/flows/{second.id}").json()
    assert detail["id"] == first.id and len(detail["nodes"]) == 3 and len(detail["edges"]) == 2
    assert [flow["id"] for flow in admin_client.get("/api/flows").json()["results"]] == [first.id]


def test_a_configured_flow_type_names_the_key_and_completes_on_its_end_event(admin_client, settings, tmp_path):
    flows_file = tmp_path / "flows.yaml"
    flows_file.write_text(
        "flows:\n  - type: order\n    key_paths: [data.order_id]\n    start: [OrderCreated]\n    end: [ShipmentPrepared]\n"
    )
    settings.FLOWS_FILE = str(flows_file)
    records = checkout_records("order-77")
    for record in records.records:
        record.attributes.pop("correlationid", None)  # the key must come from the configured path alone
    correlate(records.records)
    [flow] = admin_client.get("/api/flows").json()["results"]
    assert (flow["key"], flow["type"], flow["status"]) == ("order-77", "order", "completed")


def test_an_error_span_fails_its_flow():
    order = checkout_flow(failing=True)
    flow = order.flow()
    assert flow.status == "failed" and flow.error_count == 1


def test_retention_removes_old_flows_with_everything_they_hold_and_keeps_recent_ones():
    old = checkout_flow(start_ns=time.time_ns() - 10 * 86_400 * 10**9)
    recent = checkout_flow()
    removed = prune_expired_data(batch_size=1)
    assert removed == 1
    assert list(Flow.objects.values_list("key", flat=True)) == [recent.key]
    assert not Observation.objects.filter(identity__in=[r.identity for r in old.records]).exists()
    assert Edge.objects.count() == Edge.objects.filter(flow__key=recent.key).count() > 0
    assert Anchor.objects.filter(observation__flow__key=recent.key).count() == Anchor.objects.count()


def test_retention_follows_the_setting(settings):
    checkout_flow(start_ns=time.time_ns() - 3 * 86_400 * 10**9)
    settings.RETENTION_DAYS = 7
    assert prune_expired_data() == 0
    assert prune_expired_data(now=timezone.now() + timedelta(days=5)) == 1


def test_a_batch_costs_the_same_number_of_queries_whatever_its_size():
    def queries_for(orders: int) -> int:
        records = [record for _ in range(orders) for record in checkout_records().records]
        store_observations(records)
        with CaptureQueriesContext(connection) as context:
            correlate_pending_observations(batch_size=10_000)
        return len(context.captured_queries)

    assert queries_for(40) == queries_for(5)
