"""Stuck detection over real stored and correlated flows (the collectors' store, the correlation
service), with the scan's clock controlled by the test."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alerts.bulk_writes import claim_stuck
from alerts.delivery import deliver_due_notifications
from alerts.models import Alert, DeclaredFlow, Delivery, FlowFlip, FlowWatch, LearnedModel, NotificationChannel
from alerts.services import refresh_deadlines, refresh_flow_models, scan_stuck_flows
from alerts.status import FlowState, ShownStatus, flips_of, flow_states
from tests.tracing.factories import MS, checkout_flow, event
from tracing.models import Flow
from tracing.services import correlate_pending_observations
from tracing.store import store_observations

pytestmark = pytest.mark.django_db
NOW_NS = time.time_ns()
NOW = datetime.fromtimestamp(NOW_NS / 1e9, tz=UTC)


@pytest.fixture(autouse=True)
def small_settings(settings):  # type: ignore[no-untyped-def]
    settings.MODEL_MIN_FLOWS = 5
    settings.QUIET_SECONDS = 120  # the history (10 min old) is finished, the order under test (45 s) is not
    settings.STUCK_FLOOR_SECONDS = 30
    settings.FLOWS_FILE = None


@dataclass(frozen=True)
class Seen:
    """A flow as people see it: correlation's row with the alerts app's word on it."""

    id: int
    type: str
    status: str
    stuck_after: datetime | None
    missing: list[dict[str, Any]]


def seen(order) -> Seen:  # type: ignore[no-untyped-def]
    flow = order.flow()
    state: FlowState = flow_states([flow])[flow.id]
    return Seen(flow.id, flow.type, state.status, state.stuck_after, state.missing)


def learned_history(n: int = 6) -> None:
    for _ in range(n):
        checkout_flow(start_ns=NOW_NS - 600_000 * MS)
    assert refresh_flow_models(NOW) == ["OrderCreated"]


def order_without_rewards():  # type: ignore[no-untyped-def]
    # It started 45 s ago: past a 30 s deadline on the test's clock and on the real one, which
    # the correlation service's write path uses.
    return checkout_flow(start_ns=NOW_NS - 45_000 * MS, reacting=("email", "warehouse"))


def points_created_late(order) -> None:  # type: ignore[no-untyped-def]
    late = event("/rewards", "PointsCreated", NOW_NS, caused_by=order.by_name["OrderCreated"], correlation_id=order.key)
    store_observations([late])
    correlate_pending_observations()


def test_a_model_is_learned_only_once_a_type_has_enough_finished_flows():
    for _ in range(4):
        checkout_flow(start_ns=NOW_NS - 600_000 * MS)
    assert refresh_flow_models(NOW) == []
    assert not LearnedModel.objects.exists()
    checkout_flow(start_ns=NOW_NS - 600_000 * MS)
    assert refresh_flow_models(NOW) == ["OrderCreated"]
    assert LearnedModel.objects.get().flow_count == 5


def test_a_running_flow_carries_the_deadline_of_its_first_missing_step_as_soon_as_it_is_written():
    learned_history()
    order = order_without_rewards()
    created_at = order.by_name["OrderCreated send"].start_ns / 1e9
    assert seen(order).stuck_after == pytest.approx(datetime.fromtimestamp(created_at + 30, tz=UTC), abs=timedelta(seconds=0.01))


def test_a_new_model_gives_running_flows_their_deadlines():
    order = order_without_rewards()
    assert seen(order).stuck_after is None
    learned_history()
    assert seen(order).stuck_after is not None


def test_a_late_flow_becomes_stuck_naming_every_missing_step_and_opens_exactly_one_alert():
    learned_history()
    order = order_without_rewards()
    assert scan_stuck_flows(NOW - timedelta(seconds=16)) == []
    [alert_id] = scan_stuck_flows(NOW)
    assert scan_stuck_flows(NOW + timedelta(seconds=10)) == []
    flow = seen(order)
    assert flow.status == ShownStatus.STUCK
    missing = {(m["step"], m["service"], m["after"]) for m in flow.missing}
    assert missing == {("OrderCreated process", "rewards", "OrderCreated send"), ("PointsCreated", "rewards", "OrderCreated")}
    assert len(flow.missing) == 2
    alert = Alert.objects.get(id=alert_id)
    assert (alert.flow_id, alert.state, alert.flow_type, alert.service) == (flow.id, "open", "OrderCreated", "rewards")


def test_the_late_reaction_resolves_the_alert_and_the_flow_runs_again():
    learned_history()
    order = order_without_rewards()
    [alert_id] = scan_stuck_flows(NOW)
    points_created_late(order)
    # The consumer span is still missing, so the flow stays stuck on that step alone.
    flow = seen(order)
    assert flow.status == ShownStatus.STUCK
    assert [m["step"] for m in flow.missing] == ["OrderCreated process"]
    assert Alert.objects.get(id=alert_id).state == "open"


def test_a_flow_whose_missing_steps_all_arrive_is_no_longer_stuck_and_its_alert_resolves():
    DeclaredFlow.objects.create(flow_type="OrderCreated").expectations.create(
        after="OrderCreated", steps=["PointsCreated"], within_seconds=20
    )
    order = order_without_rewards()
    [alert_id] = scan_stuck_flows(NOW)
    assert seen(order).status == ShownStatus.STUCK
    points_created_late(order)
    flow = seen(order)
    assert (flow.status, flow.missing, flow.stuck_after) == (ShownStatus.RUNNING, [], None)
    alert = Alert.objects.get(id=alert_id)
    assert alert.state == "resolved"
    assert alert.resolved_at is not None


def test_a_declared_expectation_works_without_any_history_and_names_the_service_it_can():
    DeclaredFlow.objects.create(flow_type="OrderCreated").expectations.create(
        after="OrderCreated", steps=["EmailSent", "rewards/PointsCreated"], within_seconds=20
    )
    order = order_without_rewards()
    [alert_id] = scan_stuck_flows(NOW)
    assert [(m["step"], m["service"], m["origin"]) for m in seen(order).missing] == [("PointsCreated", "rewards", "declared")]
    assert Alert.objects.get(id=alert_id).after == "OrderCreated"


def orders_ending_at_shipment(tmp_path, settings, expected_after_order_created: str) -> None:  # type: ignore[no-untyped-def]
    """A flow definition file: orders end at ShipmentPrepared and expect these steps within 20 s."""
    flows_file = tmp_path / "flows.yaml"
    flows_file.write_text(
        f"""
flows:
  - type: order
    start: [OrderCreated]
    end: [ShipmentPrepared]
    expect:
      - after: OrderCreated
        steps: [{expected_after_order_created}]
        within: 20s
"""
    )
    settings.FLOWS_FILE = str(flows_file)


def test_a_flow_that_reached_its_end_while_a_fan_out_reaction_is_missing_waits_for_it(tmp_path, settings):
    orders_ending_at_shipment(tmp_path, settings, "email/EmailSent, warehouse/ShipmentPrepared, rewards/PointsCreated")
    order = order_without_rewards()  # ShipmentPrepared, the end step, came; PointsCreated did not
    flow = seen(order)
    assert (flow.type, flow.status, flow.stuck_after is not None) == ("order", ShownStatus.RUNNING, True)

    [alert_id] = scan_stuck_flows(NOW)
    flow = seen(order)
    assert flow.status == ShownStatus.STUCK
    assert [(m["step"], m["service"]) for m in flow.missing] == [("PointsCreated", "rewards")]

    points_created_late(order)
    flow = seen(order)
    assert (flow.status, flow.missing, flow.stuck_after) == (ShownStatus.COMPLETED, [], None)
    assert Alert.objects.get(id=alert_id).state == "resolved"


def test_a_completed_flow_with_nothing_outstanding_stays_completed_without_a_deadline(tmp_path, settings):
    orders_ending_at_shipment(tmp_path, settings, "email/EmailSent, warehouse/ShipmentPrepared")
    flow = seen(order_without_rewards())
    assert (flow.status, flow.stuck_after, flow.missing) == (ShownStatus.COMPLETED, None, [])
    assert scan_stuck_flows(NOW + timedelta(hours=1)) == []


def test_declared_expectations_win_over_learned_ones():
    learned_history()
    DeclaredFlow.objects.create(flow_type="OrderCreated").expectations.create(
        after="OrderCreated", steps=["EmailSent"], within_seconds=600
    )
    order = order_without_rewards()
    assert len(scan_stuck_flows(NOW)) == 1
    # PointsCreated was learned as a reaction to OrderCreated, which now has declared reactions
    # only; the learned reaction to "OrderCreated send" (rewards' consumer span) still stands.
    assert [(m["step"], m["origin"]) for m in seen(order).missing] == [("OrderCreated process", "learned")]


def test_each_interested_channel_gets_one_delivery_per_alert_and_one_when_it_resolves():
    DeclaredFlow.objects.create(flow_type="OrderCreated").expectations.create(
        after="OrderCreated", steps=["PointsCreated"], within_seconds=5
    )
    wanted = NotificationChannel.objects.create(name="ops", kind="email", target="ops@example.com", flow_types=["OrderCreated"])
    NotificationChannel.objects.create(name="refunds", kind="email", target="refunds@example.com", flow_types=["RefundRequested"])
    order = order_without_rewards()
    scan_stuck_flows(NOW)
    scan_stuck_flows(NOW + timedelta(seconds=1))
    points_created_late(order)
    assert sorted(Delivery.objects.values_list("channel__name", "event")) == [("ops", "opened"), ("ops", "resolved")]
    assert deliver_due_notifications() == 2
    assert set(Delivery.objects.values_list("state", flat=True)) == {"delivered"}
    assert wanted.deliveries.count() == 2


def test_a_flow_claimed_by_one_scan_cannot_be_claimed_by_another():
    DeclaredFlow.objects.create(flow_type="OrderCreated").expectations.create(
        after="OrderCreated", steps=["PointsCreated"], within_seconds=5
    )
    flow = seen(order_without_rewards())
    missing = {flow.id: [{"step": "PointsCreated"}]}
    assert claim_stuck(missing, NOW) == [flow.id]
    assert claim_stuck(missing, NOW) == []
    assert FlowWatch.objects.get(flow_id=flow.id).missing == [{"step": "PointsCreated"}]


def test_a_model_that_moves_a_deadline_later_does_not_resolve_a_stuck_flow():
    declared = DeclaredFlow.objects.create(flow_type="OrderCreated")
    expectation = declared.expectations.create(after="OrderCreated", steps=["PointsCreated"], within_seconds=5)
    order = order_without_rewards()
    [alert_id] = scan_stuck_flows(NOW)
    expectation.within_seconds = 3600
    expectation.save()
    refresh_deadlines([seen(order).id])
    assert seen(order).status == ShownStatus.STUCK
    assert Alert.objects.get(id=alert_id).state == "open"
    expectation.delete()  # no longer expected at all: nothing is missing any more
    refresh_deadlines([seen(order).id])
    assert seen(order).status == ShownStatus.RUNNING
    assert Alert.objects.get(id=alert_id).state == "resolved"


def test_a_flows_stuck_and_recovered_history_is_kept_as_rows():
    declared = DeclaredFlow.objects.create(flow_type="OrderCreated")
    expectation = declared.expectations.create(after="OrderCreated", steps=["PointsCreated"], within_seconds=5)
    order = order_without_rewards()
    scan_stuck_flows(NOW)
    expectation.delete()
    refresh_deadlines([seen(order).id], NOW + timedelta(seconds=1))
    declared.expectations.create(after="OrderCreated", steps=["PointsCreated"], within_seconds=5)
    refresh_deadlines([seen(order).id], NOW + timedelta(seconds=2))
    assert seen(order).status == ShownStatus.RUNNING
    scan_stuck_flows(NOW + timedelta(seconds=5))
    assert seen(order).status == ShownStatus.STUCK
    history = [(flip.old_status, flip.new_status) for flip in flips_of(seen(order).id)]
    assert history == [("running", "stuck"), ("stuck", "running"), ("running", "stuck")]
    assert [m["step"] for m in flips_of(seen(order).id)[0].missing] == ["PointsCreated"]
    assert FlowFlip.objects.count() == 3


def test_correlation_never_writes_stuck_and_alerts_never_write_the_flow_row():
    DeclaredFlow.objects.create(flow_type="OrderCreated").expectations.create(
        after="OrderCreated", steps=["PointsCreated"], within_seconds=5
    )
    order = order_without_rewards()
    before = Flow.objects.filter(id=seen(order).id).values().get()
    scan_stuck_flows(NOW)
    assert Flow.objects.filter(id=seen(order).id).values().get() == before
    assert (before["status"], seen(order).status) == (Flow.Status.RUNNING, ShownStatus.STUCK)
