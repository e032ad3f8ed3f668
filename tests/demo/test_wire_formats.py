import json
from pathlib import Path

from demo.events import batch_body, build_event, reaction_event_id, read_event
from demo.telemetry import ServiceClock, format_traceparent, parse_traceparent, producer_link, traces_endpoint

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_a_traceparent_round_trips_and_bad_ones_are_refused():
    context = parse_traceparent(TRACEPARENT)
    assert context is not None and context.is_remote
    assert format_traceparent(context) == TRACEPARENT
    for bad in ("", "00-abc-def-01", "00-" + "0" * 32 + "-b7ad6b7169203331-01", "00-" + "z" * 32 + "-b7ad6b7169203331-01"):
        assert parse_traceparent(bad) is None


def test_a_consumer_links_to_the_producer_context_it_received():
    (link,) = producer_link(TRACEPARENT, "evt-1")
    assert (link.context.trace_id, link.context.span_id) == (0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331)
    assert link.attributes == {"messaging.message.id": "evt-1"}
    assert producer_link("garbage", "evt-1") == []


def test_an_event_carries_traceparent_correlation_and_causation():
    payload = build_event(
        event_type="PointsCreated",
        service="rewards",
        event_id="e-2",
        order_id="order-1",
        data={"points": 5},
        traceparent=TRACEPARENT,
        causation_id="e-1",
        time_ns=1_700_000_000_000_000_000,
    )
    event = json.loads(payload)
    assert event["specversion"] == "1.0" and event["source"] == "rewards" and event["type"] == "PointsCreated"
    assert (event["traceparent"], event["correlationid"], event["causationid"]) == (TRACEPARENT, "order-1", "e-1")
    assert event["data"] == {"order_id": "order-1", "points": 5}
    assert event["time"].startswith("2023-11-14T22:13:20")
    assert read_event(payload).order_id == "order-1"
    assert json.loads(batch_body([payload, payload])) == [event, event]


def test_a_reaction_has_the_same_id_however_often_its_cause_is_delivered():
    assert reaction_event_id("e-1", "rewards", "PointsCreated") == reaction_event_id("e-1", "rewards", "PointsCreated")
    assert reaction_event_id("e-1", "rewards", "PointsCreated") != reaction_event_id("e-2", "rewards", "PointsCreated")


def test_a_skewed_clock_runs_behind_true_time():
    assert -800e6 < ServiceClock(-750).now_ns() - ServiceClock().now_ns() < -700e6


def test_spans_go_where_the_standard_otlp_variables_say_else_to_the_target():
    assert traces_endpoint("http://cs:8000", {}) == "http://cs:8000/v1/traces"
    assert traces_endpoint("http://cs:8000", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://cs:4318/"}) == "http://cs:4318/v1/traces"
    assert traces_endpoint("http://cs:8000", {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://x/t"}) == "http://x/t"


def test_the_shops_flow_definition_is_one_choreoscope_understands():
    from alerts.declared import rules_from_config
    from tracing.flowconfig import parse_flows_config, read_flows_file

    path = Path(__file__).resolve().parents[2] / "demo" / "flows.yaml"
    (order,) = parse_flows_config(path.read_text()).types
    assert order.type == "order" and order.start == {"OrderCreated"} and order.end == {"DispatchNoticeSent"}
    rules = rules_from_config(read_flows_file(str(path)))
    expected = {(rule.step.service, rule.step.name) for rule in rules["order"].expectations}
    assert ("rewards", "PointsCreated") in expected and ("warehouse", "ShipmentPrepared") in expected
