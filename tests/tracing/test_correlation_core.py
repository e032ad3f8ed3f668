"""Unit tests of the pure correlation core: no database."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from tracing.correlation import (
    CAUSED_BY,
    CHILD_OF,
    DELIVERS,
    EMITTED_BY,
    FOLLOWS_FROM,
    FlowNode,
    FlowSummary,
    Member,
    Reference,
    assign_flows,
    causal_order,
    clock_skew,
    edge_between,
    event_anchor,
    event_id_anchor,
    linkage,
    message_anchor,
    messaging_side,
    retried_successfully,
    span_anchor,
    summarize_flow,
    unit_of,
    value_at,
)
from tracing.flowconfig import EMPTY, parse_flows_config
from tracing.records import SPAN_KIND_CLIENT, SPAN_KIND_CONSUMER, SPAN_KIND_INTERNAL, SPAN_KIND_PRODUCER, ObservationRecord

T1, T2 = "a" * 32, "b" * 32
ORDERS = parse_flows_config("""
flows:
  - type: order
    key_paths: [data.order.id, order.id]
    key_prefix: "order-"
    start: [OrderCreated]
    end: [ShipmentPrepared]
    errors: [PaymentDeclined]
""")


def span(span_id="1" * 16, trace_id=T1, parent="", kind=SPAN_KIND_INTERNAL, attributes=None, links=()):
    detail = {"links": [{"trace_id": t, "span_id": s} for t, s in links]} if links else {}
    return ObservationRecord(
        "span",
        f"s:{trace_id}:{span_id}",
        "work",
        "svc",
        0,
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        span_kind=kind,
        attributes=attributes or {},
        detail=detail,
    )


def event(event_id="e1", source="/shop", attributes=None, data=None, traceparent=("", "")):
    return ObservationRecord(
        "event",
        f"e:{event_id}",
        "OrderCreated",
        source,
        0,
        trace_id=traceparent[0],
        span_id=traceparent[1],
        event_source=source,
        event_id=event_id,
        attributes=attributes or {},
        detail={"data": data or {}},
    )


def test_a_span_is_known_by_its_context_and_points_at_its_parent_and_its_links():
    found = linkage(span(parent="2" * 16, links=[(T2, "3" * 16)]), EMPTY)
    assert found.anchors == (span_anchor(T1, "1" * 16),)
    parent, link = Reference(span_anchor(T1, "2" * 16), CHILD_OF), Reference(span_anchor(T2, "3" * 16), FOLLOWS_FROM)
    assert found.references == (parent, link)


def test_an_event_is_known_by_its_id_and_points_at_its_cause_and_the_span_that_emitted_it():
    found = linkage(event(attributes={"causationid": "e0"}, traceparent=(T1, "4" * 16)), EMPTY)
    assert found.anchors == (event_id_anchor("e1"), event_anchor("/shop", "e1"))
    assert Reference(event_id_anchor("e0"), CAUSED_BY) in found.references
    assert Reference(span_anchor(T1, "4" * 16), EMITTED_BY) in found.references


def test_an_event_naming_itself_as_its_cause_makes_no_reference():
    assert linkage(event(attributes={"causationid": "e1"}), EMPTY).references == ()


@pytest.mark.parametrize(
    ("kind", "attributes", "side"),
    [
        (SPAN_KIND_PRODUCER, {}, "producer"),
        (SPAN_KIND_CONSUMER, {}, "consumer"),
        (SPAN_KIND_CLIENT, {"messaging.operation.type": "send"}, "producer"),
        (SPAN_KIND_CLIENT, {"messaging.operation.type": "settle"}, "consumer"),
        (SPAN_KIND_INTERNAL, {"messaging.operation.type": "create"}, "producer"),
        (SPAN_KIND_INTERNAL, {"messaging.operation": "publish"}, "producer"),
        (SPAN_KIND_INTERNAL, {"messaging.operation": "deliver"}, "consumer"),
        (SPAN_KIND_CONSUMER, {"messaging.operation.type": "receive"}, "consumer"),
    ],
)
def test_messaging_conventions_current_and_old_tell_producers_from_consumers(kind, attributes, side):
    assert messaging_side(kind, attributes) == side


def test_a_producer_span_emits_the_cloudevent_it_names_and_a_consumer_span_is_delivered_it():
    attributes = {"cloudevents.event_id": "e1", "cloudevents.event_source": "/shop"}
    producer = linkage(span(kind=SPAN_KIND_PRODUCER, attributes=attributes), EMPTY)
    consumer = linkage(span(kind=SPAN_KIND_CONSUMER, attributes=attributes), EMPTY)
    assert Reference(event_anchor("/shop", "e1"), EMITTED_BY, anchor_is_cause=False) in producer.references
    assert Reference(event_anchor("/shop", "e1"), DELIVERS) in consumer.references


def test_a_message_id_is_owned_by_its_producer_and_referred_to_by_its_consumers():
    producer = linkage(span(kind=SPAN_KIND_PRODUCER, attributes={"messaging.message.id": "m-7"}), EMPTY)
    consumer = linkage(span(kind=SPAN_KIND_CONSUMER, attributes={"messaging.message.id": "m-7"}), EMPTY)
    assert message_anchor("m-7") in producer.anchors
    assert Reference(message_anchor("m-7"), DELIVERS) in consumer.references


def test_a_consumer_without_a_cloudevents_source_refers_to_the_event_id_alone():
    consumer = linkage(span(kind=SPAN_KIND_CONSUMER, attributes={"cloudevents.event_id": "e1"}), EMPTY)
    assert Reference(event_id_anchor("e1"), DELIVERS) in consumer.references


def test_business_keys_come_from_correlationid_conversation_id_and_configured_paths():
    assert linkage(event(attributes={"correlationid": "order-1"}), EMPTY).business_key == "order-1"
    assert linkage(span(attributes={"messaging.message.conversation_id": "c-9"}), EMPTY).business_key == "c-9"
    assert linkage(event(data={"order": {"id": 1042}}), ORDERS).business_key == "order-1042"
    assert linkage(span(attributes={"order.id": "77"}), ORDERS).business_key == "order-77"
    keyed = linkage(span(attributes={"order.id": "77"}), ORDERS)
    assert not any(anchor.startswith("key:") for anchor in keyed.anchors), "a key joins nothing by itself"
    assert linkage(event(data={"order": {"id": 1042}}), EMPTY).business_key == ""


def test_key_paths_walk_data_and_read_dotted_attribute_names():
    assert value_at("data.a.b", {}, {"data": {"a": {"b": True}}}) == "true"
    assert value_at("data.a.b", {}, {"data": {"a": "flat"}}) == ""
    assert value_at("data.a", {}, {"data": {"a": {"nested": 1}}}) == ""
    assert value_at("order.id", {"order.id": 5}, {}) == "5"
    assert value_at("attributes.order.id", {"order.id": 5}, {}) == "5"


def test_very_long_identifiers_make_bounded_exact_anchor_names():
    long_a, long_b = "x" * 5000, "x" * 4999 + "y"
    assert len(event_id_anchor(long_a)) < 320
    assert event_id_anchor(long_a) != event_id_anchor(long_b)


def test_a_resolved_reference_becomes_an_edge_from_cause_to_effect():
    assert edge_between(1, 2, Reference("span:x", CHILD_OF)) == (1, 2, CHILD_OF)
    assert edge_between(1, 2, Reference("ev:x", EMITTED_BY, anchor_is_cause=False)) == (2, 1, EMITTED_BY)
    assert edge_between(2, 2, Reference("span:x", CHILD_OF)) is None


def test_causal_order_puts_a_cause_before_its_effect_whatever_the_clocks_say():
    # 3 is stamped first but is caused by 2, which is caused by 1.
    order = causal_order({1: (100, 1), 2: (200, 2), 3: (50, 3), 4: (150, 4)}, [(1, 2), (2, 3)])
    assert order.index(1) < order.index(2) < order.index(3)
    assert order == [1, 4, 2, 3]


def test_causal_order_survives_a_cycle_without_dropping_nodes():
    assert sorted(causal_order({1: (1, 1), 2: (2, 2), 3: (3, 3)}, [(1, 2), (2, 1), (2, 3)])) == [1, 2, 3]


def node(id, kind="event", name="OrderCreated", service="shop", start=0, status="unset", key="", trace=""):
    return FlowNode(id, kind, name, service, start, None, status, trace, key)


def test_a_flow_takes_its_key_from_its_earliest_keyed_node_else_its_root_trace():
    nodes = [node(1, "span", "POST", trace=T1, start=0), node(2, key="order-1", start=5), node(3, key="order-2", start=1)]
    assert summarize_flow(nodes, [(1, 2), (2, 3)], EMPTY).key == "order-1"
    assert summarize_flow(nodes[:1], [], EMPTY).key == T1


def test_a_flow_type_is_configured_else_its_root_events_type():
    nodes = [node(1, name="Hello", start=0), node(2, name="OrderCreated", start=1)]
    assert summarize_flow(nodes, [(1, 2)], ORDERS).type == "order"
    assert summarize_flow(nodes, [(1, 2)], EMPTY).type == "Hello"


@pytest.mark.parametrize(
    ("nodes", "status"),
    [
        ([node(1), node(2, name="EmailSent")], "running"),
        ([node(1), node(2, name="ShipmentPrepared")], "completed"),
        ([node(1), node(2, kind="span", name="charge", status="error")], "failed"),
        ([node(1), node(2, name="PaymentDeclined")], "failed"),
        ([node(1), node(2, name="com.shop.payment.failed")], "failed"),
        ([node(1), node(2, name="ShipmentPrepared"), node(3, name="RefundError")], "failed"),
    ],
)
def test_a_flow_fails_on_an_error_and_completes_on_a_configured_end_event(nodes, status):
    assert summarize_flow(nodes, [], ORDERS).status == status


def retried(second_attempt_status: str) -> FlowSummary:
    """OrderCreated (1) delivered to warehouse twice: attempt 2 failed, with a failed child span
    3; attempt 4 came later with ``second_attempt_status``, and emitted ShipmentPrepared (5)."""
    nodes = [
        node(1, start=0),
        node(2, "span", "process orders", "warehouse", start=10, status="error"),
        node(3, "span", "reserve stock", "warehouse", start=11, status="error"),
        node(4, "span", "process orders", "warehouse", start=500, status=second_attempt_status),
        node(5, name="ShipmentPrepared", service="warehouse", start=510),
    ]
    return summarize_flow(nodes, [(1, 2), (2, 3), (1, 4), (4, 5)], ORDERS)


def test_an_error_a_retry_made_good_counts_but_does_not_fail_the_flow():
    recovered = retried("unset")
    assert (recovered.status, recovered.error_count) == ("completed", 2)
    still_failing = retried("error")
    assert (still_failing.status, still_failing.error_count) == ("failed", 3)


def test_a_success_of_another_operation_or_on_another_cause_is_no_retry():
    nodes = [
        node(1, start=0),
        node(2, "span", "process orders", "warehouse", start=10, status="error"),
        node(3, "span", "send mail", "warehouse", start=20),  # same cause, other operation
        node(4, start=30),
        node(5, "span", "process orders", "warehouse", start=40),  # same operation, other cause
    ]
    assert retried_successfully(nodes, [(1, 2), (1, 3), (4, 5)]) == set()
    assert summarize_flow(nodes, [(1, 2), (1, 3), (4, 5)], ORDERS).status == "failed"


def test_services_are_listed_in_causal_order_of_first_appearance():
    nodes = [node(1, service="checkout", start=10), node(2, service="email", start=0), node(3, service="checkout", start=20)]
    summary = summarize_flow(nodes, [(1, 2), (2, 3)], EMPTY)
    assert summary.services == ["checkout", "email"]
    assert [step["id"] for step in summary.steps] == [1, 2, 3]
    assert summary.started_ns == 0 and summary.last_seen_ns == 20


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("flows: [{key_paths: [a]}]", "non-empty 'type'"),
        ("flows: [{type: x, colour: red}]", "unknown keys ['colour']"),
        ("flows: [{type: x, end: 5}]", "'end' must be a list"),
        ("flows: [{type: x}, {type: x}]", "must be unique"),
        ("flows: {type: x}", "a 'flows' list"),
        ("flows: [", "not valid YAML"),
    ],
)
def test_a_bad_flows_file_stops_with_a_message_naming_the_problem(text, message):
    with pytest.raises(ImproperlyConfigured, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_flows_config(text)


# --- Which flows an observation serves (assign_flows) ------------------------------------------


def keys_of(labels: frozenset) -> set[str]:
    return {value for _, value in labels}


def test_a_nightly_job_root_serves_every_order_it_walks_and_each_step_its_own():
    # root → child(order-5) → grandchild;  root → child(order-6)
    members = [Member(1, "t:job"), Member(2, "t:job", "order-5"), Member(3, "t:job"), Member(4, "t:job", "order-6")]
    flows = assign_flows(members, [(1, 2, CHILD_OF), (2, 3, CHILD_OF), (1, 4, CHILD_OF)])
    assert keys_of(flows[1]) == {"order-5", "order-6"}
    assert keys_of(flows[2]) == keys_of(flows[3]) == {"order-5"}
    assert keys_of(flows[4]) == {"order-6"}


def test_a_batch_consumer_trace_serves_the_orders_of_the_producers_it_links_to():
    producers = [Member(10 + n, f"t:order{n}", f"order-{n}") for n in range(3)]
    batch = [Member(20, "t:batch"), Member(21, "t:batch")]
    edges = [(10 + n, 20, FOLLOWS_FROM) for n in range(3)] + [(20, 21, CHILD_OF)]
    flows = assign_flows([*producers, *batch], edges)
    assert keys_of(flows[20]) == keys_of(flows[21]) == {"order-0", "order-1", "order-2"}
    assert keys_of(flows[10]) == {"order-0"}, "a key is a boundary: the producer serves its order alone"


def test_an_own_key_differing_from_its_cause_makes_a_flow_of_its_own():
    flows = assign_flows([Member(1, "o:1", "order-1"), Member(2, "o:2", "shipment-9")], [(1, 2, CAUSED_BY)])
    assert keys_of(flows[1]) == {"order-1"} and keys_of(flows[2]) == {"shipment-9"}


def test_keyless_units_take_their_effects_keys_without_causes_and_else_form_one_keyless_flow():
    flows = assign_flows([Member(1, "t:a"), Member(2, "t:b", "order-1")], [(1, 2, DELIVERS)])
    assert keys_of(flows[1]) == {"order-1"}
    alone = assign_flows([Member(1, "t:a"), Member(2, "t:a"), Member(3, "t:b")], [(2, 3, FOLLOWS_FROM)])
    assert alone[1] == alone[2] == alone[3] == frozenset({("keyless", "t:a")})


def test_siblings_under_a_parent_that_never_arrived_are_one_unit():
    flows = assign_flows([Member(1, unit_of(1, "abc")), Member(2, unit_of(2, "abc"), "order-1")], [])
    assert keys_of(flows[1]) == {"order-1"}


def test_assign_flows_does_not_depend_on_the_order_of_its_input():
    members = [Member(n, f"t:{n % 3}", "order-1" if n == 4 else "") for n in range(9)]
    edges = [(n, n + 1, CHILD_OF) for n in range(8)]
    assert assign_flows(members, edges) == assign_flows(list(reversed(members)), list(reversed(edges)))


def test_clock_skew_is_how_far_an_effect_starts_before_its_cause():
    assert clock_skew(cause_start_ns=5_000, effect_start_ns=3_000) == 2_000
    assert clock_skew(cause_start_ns=5_000, effect_start_ns=9_000) == 0
