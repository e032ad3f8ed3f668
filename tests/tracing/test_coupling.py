"""Coupling per flow type, on plain data: calls vs events, synchronous depth, critical services,
single points of failure."""

from __future__ import annotations

from tests.tracing.test_interactions import choreographed_order, event, orchestrated_checkout, span
from tracing.coupling import FlowSample, coupling_by_type, deepest_synchronous_chain, entry_styles
from tracing.interactions import CONSUMER, PRODUCER


def hybrid(flow_id: int) -> FlowSample:
    steps, edges = orchestrated_checkout()
    reactions = [span(20, "checkout", 92, 97, PRODUCER), event(21, "checkout", 95), span(22, "email", 130, 160, CONSUMER)]
    edges = [*edges, (1, 20, "child_of"), (20, 21, "emitted_by"), (21, 22, "delivers"), (20, 22, "follows_from")]
    return FlowSample(flow_id, f"order-{flow_id}", "order", [*steps, *reactions], edges)


def choreography(flow_id: int) -> FlowSample:
    steps, edges = choreographed_order()
    return FlowSample(flow_id, f"order-{flow_id}", "order", steps, edges)


def test_a_step_is_a_flows_entry_into_a_service_reached_by_a_call_or_an_event() -> None:
    sample = hybrid(1)
    entries = entry_styles(sample.steps, sample.edges)
    assert entries == {4: "call", 6: "call", 8: "call", 22: "event"}


def test_an_event_emitted_by_its_own_services_span_is_not_an_entry() -> None:
    sample = choreography(1)
    # EmailSent is caused by OrderCreated (another service) but emitted by email's own consumer span.
    assert entry_styles(sample.steps, sample.edges) == {4: "event", 6: "event", 8: "event"}


def test_the_deepest_synchronous_chain_follows_calls_through_each_service() -> None:
    sample = hybrid(1)
    assert deepest_synchronous_chain(sample.steps, sample.edges) == ["checkout", "payment", "bank"]
    plain = choreography(2)
    assert deepest_synchronous_chain(plain.steps, plain.edges) == ["checkout"]


def test_coupling_of_a_hybrid_type_counts_calls_and_events_and_finds_who_every_flow_waits_on() -> None:
    (summary,) = coupling_by_type([hybrid(1), hybrid(2), hybrid(3)])
    assert (summary.flow_type, summary.flows, summary.call_steps, summary.event_steps) == ("order", 3, 9, 3)
    assert summary.call_share == 0.75 and summary.chain_depth == 2
    assert summary.deepest_chain_example is not None
    assert [service for service, _ in summary.single_points] == ["bank", "fraud", "payment"]
    assert [ref.id for ref in summary.single_points[0][1]] == [1, 2, 3]
    on_every_path = {entry.service for entry in summary.critical_services if entry.flow_share == 1.0}
    assert on_every_path == {"checkout", "fraud", "payment", "bank", "email"}
    # email reacts last: 35 ms queued after OrderCreated (at 95 ms), then 30 ms of work; 160 ms in all.
    assert summary.critical_services[0].service == "email"
    assert round(summary.critical_services[0].time_share, 3) == round(65 / 160, 3)


def test_a_service_called_by_only_some_flows_is_not_a_single_point_of_failure() -> None:
    summaries = coupling_by_type([hybrid(1), choreography(2), choreography(3)])
    (order,) = summaries
    assert order.single_points == []
    assert (order.call_steps, order.event_steps) == (3, 1 + 3 + 3)
    # warehouse ends two of the three flows: it is on their critical path, with most of the time.
    warehouse = next(entry for entry in order.critical_services if entry.service == "warehouse")
    assert warehouse.flows == 2 and warehouse.time_share > 0.8
    assert [ref.id for ref in warehouse.examples] in ([2, 3], [3, 2])


def test_types_are_listed_most_frequent_first() -> None:
    other = FlowSample(9, "t-1", "refund", [span(1, "refunds", 0, 5)], [])
    summaries = coupling_by_type([other, hybrid(1), hybrid(2)])
    assert [summary.flow_type for summary in summaries] == ["order", "refund"]
    assert summaries[1].call_share == 0.0 and summaries[1].deepest_chain == ["refunds"]
    assert summaries[1].deepest_chain_example is None
