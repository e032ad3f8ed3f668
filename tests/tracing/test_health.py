"""The correlation-health core: plain rows in, findings out, no database."""

from __future__ import annotations

import itertools

import pytest

from tracing.health import (
    HealthInput,
    SampledEdge,
    SampledFlow,
    SampledObservation,
    clock_skews,
    has_reference,
    health_report,
    only_service,
    parse_window,
    reused_keys,
    root_types,
    unconsumed_messages,
)
from tracing.records import SPAN_KIND_CONSUMER, SPAN_KIND_INTERNAL, SPAN_KIND_PRODUCER, SPAN_KIND_SERVER

S = 1_000_000_000
_ids = itertools.count(1)


def span(
    service: str, name: str = "work", *, kind: int = SPAN_KIND_INTERNAL, flow: int | None = 1, **fields
) -> SampledObservation:
    return SampledObservation(next(_ids), "span", service, name, flow, fields.pop("start_ns", 0), kind, **fields)


def consumer(service: str, **fields) -> SampledObservation:
    attributes = {"messaging.operation.type": "process", **fields.pop("attributes", {})}
    return span(service, "process orders", kind=SPAN_KIND_CONSUMER, attributes=attributes, **fields)


def event(
    service: str, name: str, *, flow: int | None = 1, traced: bool = True, key: str = "order-1", cause: str = ""
) -> SampledObservation:
    attributes = {"causationid": cause} if cause else {}
    trace, span_id = ("a" * 32, "b" * 16) if traced else ("", "")
    return SampledObservation(next(_ids), "event", service, name, flow, 0, 0, "", trace, span_id, key, attributes)


def edge(cause: SampledObservation, effect: SampledObservation, kind: str = "follows_from", **fields) -> SampledEdge:
    return SampledEdge(
        cause.id, effect.id, kind, cause.service, effect.service, cause.start_ns, effect.start_ns, effect.flow_id, **fields
    )


def flow(flow_id: int, key: str, count: int, span_s: float, *, steps=("OrderCreated", "EmailSent"), type="order", keyed=True):
    return SampledFlow(flow_id, key, type, ["checkout", "email"], count, 0, int(span_s * S), keyed, steps)


def finding(report, kind: str, service: str):
    [found] = [row for row in report.findings if row.kind == kind and row.service == service]
    return found


def kinds(report) -> set[tuple[str, str]]:
    return {(row.service, row.kind) for row in report.findings}


def test_a_consumer_span_reached_by_an_edge_points_at_its_producer():
    producer = span("checkout", "send orders", kind=SPAN_KIND_PRODUCER, attributes={"messaging.operation.type": "send"})
    linked = consumer("email")
    report = health_report(HealthInput([producer, linked], incoming=[edge(producer, linked)]))
    [email] = [row for row in report.coverage if row.service == "email"]
    assert (email.consumer_spans, email.consumer_spans_pointing) == (1, 1)
    assert ("email", "consumer_points_at_nothing") not in kinds(report)


def test_a_consumer_span_with_no_reference_points_at_nothing_and_one_with_a_dangling_link_at_an_unseen_producer():
    lost, dangling, also_lost = consumer("legacy", flow=7), consumer("legacy", flow=8), consumer("legacy", flow=7)
    report = health_report(HealthInput([lost, dangling, also_lost], pointing=frozenset({dangling.id})))
    nothing = finding(report, "consumer_points_at_nothing", "legacy")
    assert (nothing.affected, nothing.out_of, nothing.example_flow_id, nothing.severity) == (2, 3, 7, "fix")
    unseen = finding(report, "consumer_producer_unseen", "legacy")
    assert (unseen.affected, unseen.example_flow_id, unseen.severity) == (1, 8, "check")


def test_observations_correlation_has_not_reached_yet_are_counted_and_left_out():
    # Their business keys and edges are not known yet: they would all look unkeyed and unlinked.
    waiting = [consumer("email", flow=None), event("email", "EmailSent", flow=None, key="")]
    report = health_report(HealthInput([*waiting, event("checkout", "OrderCreated")]))
    assert (report.observations_read, report.uncorrelated) == (1, 2)
    assert [row.service for row in report.coverage] == ["checkout"]
    assert not any(row.service == "email" for row in report.findings)


def test_spans_that_are_not_messaging_consumers_are_not_counted_as_consumers():
    server = span("checkout", "POST /checkout", kind=SPAN_KIND_SERVER)
    internal = span("checkout", "record order", attributes={"cloudevents.event_id": "e-1", "order.id": "order-1"})
    report = health_report(HealthInput([server, internal]))
    assert report.coverage[0].consumer_spans == 0 and report.findings == []


def test_a_reference_is_a_parent_a_link_or_a_delivered_message_id():
    assert has_reference("b" * 16, {}, {})
    assert has_reference("", {}, {"links": [{"trace_id": "a" * 32, "span_id": "b" * 16}]})
    assert has_reference("", {"messaging.message.id": "m-1"}, {})
    assert has_reference("", {"cloudevents.event_id": "e-1"}, {})
    assert not has_reference("", {"messaging.message.id": "  "}, {"links": [{"trace_id": "", "span_id": ""}, "junk"]})


def test_events_lacking_traceparent_causation_or_key_are_counted_against_their_service():
    flows = [flow(1, "order-1", 10, 2)] * 3
    report = health_report(
        HealthInput(
            [
                event("checkout", "OrderCreated"),  # a root: needs no causationid
                event("email", "EmailSent", cause="e-1"),
                event("email", "EmailSent", traced=False, key="", flow=4),
            ],
            flows=flows,
        )
    )
    assert ("checkout", "event_without_causation") not in kinds(report)
    lacking = {(row.kind, row.affected, row.out_of, row.example_flow_id) for row in report.findings if row.service == "email"}
    assert lacking >= {
        ("event_without_traceparent", 1, 2, 4),
        ("event_without_key", 1, 2, 4),
        ("event_without_causation", 1, 2, 4),
    }
    [email] = [row for row in report.coverage if row.service == "email"]
    assert (email.events, email.events_with_traceparent, email.reaction_events_with_causation, email.events_with_key) == (
        2,
        1,
        1,
        1,
    )


def test_a_type_is_a_root_when_it_starts_most_of_the_flows_it_appears_in():
    flows = [flow(1, "a", 3, 1, steps=("OrderCreated", "EmailSent")), flow(2, "b", 3, 1, steps=("EmailSent", "OrderCreated"))]
    flows += [flow(3, "c", 3, 1, steps=("OrderCreated", "EmailSent", "EmailSent"))]
    assert root_types(flows) == {"OrderCreated"}


def test_messages_nobody_consumed_are_told_apart_from_types_nobody_consumes_at_all():
    created = [event("checkout", "OrderCreated") for _ in range(3)]
    sent = [span("checkout", "send orders", kind=SPAN_KIND_PRODUCER) for _ in created]
    email = [consumer("email") for _ in range(2)]
    points = event("rewards", "PointsCreated")
    data = HealthInput(
        [*created, *sent, *email, points],
        # Two orders were consumed (one through its event, one through its producer span); the third never was.
        outgoing=[
            edge(created[0], email[0], "delivers"),
            edge(sent[1], email[1]),
            *[edge(s, e, "emitted_by") for s, e in zip(sent, created, strict=True)],
        ],
    )
    found = {(row.service, row.kind, row.detail, row.affected, row.out_of) for row in unconsumed_messages(data)}
    assert found == {
        ("checkout", "message_partly_unconsumed", "OrderCreated", 1, 3),
        ("rewards", "message_never_consumed", "PointsCreated", 1, 1),
    }


def test_a_service_reading_its_own_topic_consumes_its_messages_but_its_own_child_span_does_not():
    prepared = event("warehouse", "ShipmentPrepared")
    dispatch = consumer("warehouse")
    sent = span("audit", "send audit", kind=SPAN_KIND_PRODUCER)
    retry = span("audit", "serialize")
    data = HealthInput(
        [prepared, dispatch, sent, retry], outgoing=[edge(prepared, dispatch, "delivers"), edge(sent, retry, "child_of")]
    )
    assert [(row.service, row.detail) for row in unconsumed_messages(data)] == [("audit", "send audit")]


def test_clock_skew_is_the_median_and_max_of_how_far_effects_precede_their_causes():
    cause = span("checkout", start_ns=10 * S)
    early = [span("email", start_ns=10 * S - gap, flow=3) for gap in (int(1.9 * S), int(2.0 * S), int(2.1 * S))]
    on_time = span("email", start_ns=11 * S)
    same_service = span("checkout", start_ns=5 * S)
    [skew] = clock_skews([edge(cause, e) for e in [*early, on_time, same_service]])
    assert (skew.cause_service, skew.effect_service, skew.pairs, skew.behind) == ("checkout", "email", 4, 3)
    assert (skew.median_ns, skew.max_ns, skew.example_flow_id) == (2 * S, int(2.1 * S), 3)
    report = health_report(HealthInput([cause, *early, on_time], incoming=[edge(cause, e) for e in [*early, on_time]]))
    behind = finding(report, "clock_behind", "email")
    assert (behind.detail, behind.affected, behind.out_of) == ("checkout", 3, 4)


def test_scheduling_jitter_is_not_reported_as_a_clock_behind():
    cause = span("checkout", start_ns=10 * S)
    effects = [span("email", start_ns=10 * S + 5_000_000) for _ in range(40)] + [span("email", start_ns=10 * S - 1000)]
    report = health_report(HealthInput([cause, *effects], incoming=[edge(cause, e) for e in effects]))
    assert report.clock_skew and ("email", "clock_behind") not in kinds(report)


def test_a_key_on_far_more_observations_or_a_far_longer_span_than_its_types_usual_looks_reused():
    usual = [flow(i, f"order-{i}", 20, 3) for i in range(1, 9)]
    crowded, lasting = flow(50, "order-crowded", 400, 3), flow(51, "order-lasting", 20, 3600)
    unkeyed = flow(52, "a" * 32, 900, 3, keyed=False)
    found = reused_keys([*usual, crowded, lasting, unkeyed])
    assert [(row.key, row.flow_id, row.usual_observations) for row in found] == [
        ("order-crowded", 50, 20),
        ("order-lasting", 51, 20),
    ]
    assert found[1].span_ns == 3600 * S and found[1].usual_span_ns == 3 * S


def test_no_key_looks_reused_without_enough_flows_of_its_type_to_know_the_usual():
    assert reused_keys([flow(1, "order-1", 20, 3), flow(2, "order-2", 20, 3), flow(3, "order-3", 4000, 3)]) == []


def test_single_observation_flows_and_observations_of_unkeyed_flows_are_counted():
    lonely = span("cron", flow=9)
    unkeyed = [span("cron", flow=9), span("cron", flow=10), span("cron", flow=None)]
    flows = [SampledFlow(9, "f" * 32, "", ["cron"], 1, 0, 0, False), flow(1, "order-1", 5, 1)]
    report = health_report(HealthInput([lonely, *unkeyed], flows=flows, unkeyed_flow_ids=frozenset({9})))
    single = finding(report, "single_observation_flow", "cron")
    assert (single.affected, single.out_of, single.example_flow_id) == (1, 1, 9)
    joined_none = finding(report, "unkeyed_observation", "cron")
    assert (joined_none.affected, joined_none.out_of, joined_none.example_flow_id) == (2, 3, 9)


def test_shared_steps_and_cross_flow_edges_show_how_much_is_batched():
    batch = consumer("analytics", flow=1)
    recorded = span("analytics", flow=2)
    shipment = event("shipping", "ShipmentBooked", flow=5)
    data = HealthInput(
        [batch, recorded, shipment],
        incoming=[edge(batch, recorded, "child_of"), edge(recorded, shipment, "caused_by", cross_flow=True)],
        shared_steps=[(batch.id, 2), (batch.id, 3), (batch.id, 4), (999, 5)],
    )
    report = health_report(data)
    rows = {
        row.service: (row.shared_steps, row.flows_served, row.cross_flow_edges, row.example_flow_id) for row in report.batching
    }
    assert rows == {"analytics": (1, 3, 0, 2), "shipping": (0, 0, 1, 5)}
    assert {("analytics", "shared_step"), ("shipping", "cross_flow_edge")} <= kinds(report)


def test_findings_come_most_severe_first_then_most_affected():
    flows = [flow(1, "order-1", 10, 2)] * 3
    observations = [
        consumer("legacy"),
        *[event("email", "EmailSent", traced=False, cause="e-1") for _ in range(3)],
        event("rewards", "PointsCreated"),
    ]
    report = health_report(HealthInput(observations, flows=flows))
    order = [(row.severity, row.affected) for row in report.findings]
    assert order == sorted(order, key=lambda pair: (["fix", "check", "info"].index(pair[0]), -pair[1]))
    assert report.findings[0].kind == "event_without_traceparent"


def test_a_report_narrowed_to_a_service_keeps_its_rows_and_the_clock_pairs_it_is_an_end_of():
    cause = span("checkout", start_ns=10 * S)
    early = span("email", start_ns=8 * S)
    report = health_report(HealthInput([cause, early, consumer("legacy")], incoming=[edge(cause, early)]))
    narrowed = only_service(report, "checkout")
    assert [row.service for row in narrowed.coverage] == ["checkout"]
    assert narrowed.findings == [] and len(narrowed.clock_skew) == 1
    assert narrowed.observations_read == report.observations_read == 3


@pytest.mark.parametrize(
    ("raw", "expected"), [(None, ("1h", 3600)), ("", ("1h", 3600)), ("5m", ("5m", 300)), ("24h", ("24h", 86_400))]
)
def test_the_window_defaults_to_an_hour(raw, expected):
    assert parse_window(raw) == expected


def test_an_unknown_window_names_the_accepted_ones():
    with pytest.raises(ValueError, match="5m, 15m, 1h, 24h"):
        parse_window("forever")
