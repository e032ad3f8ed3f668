"""The service map's pure core: producer → event type → consumer, and caller → callee, with
rate, p95, error share."""

import pytest

from tracing.queue_lag import LagReadings, QueueLag
from tracing.topology import Call, EmittedEvent, Reaction, build_topology, lag_on_map, parse_window, pulses


def reaction(event_id: int, consumer: str, latency_ms: float, failed: bool = False, event_type: str = "OrderCreated") -> Reaction:
    return Reaction(event_id, "checkout", event_type, consumer, int(latency_ms * 1e6), failed)


def test_it_draws_producer_to_event_type_to_each_consumer_with_rate_p95_and_error_share():
    events = [EmittedEvent("checkout", "OrderCreated") for _ in range(20)]
    reactions = [reaction(n, "email", 10 + n) for n in range(20)]
    reactions += [reaction(n, "warehouse", 100, failed=n < 5) for n in range(20)]
    topology = build_topology(events, reactions, window_seconds=10)
    assert topology["nodes"] == [
        {"id": "service:checkout", "kind": "service", "name": "checkout"},
        {"id": "service:email", "kind": "service", "name": "email"},
        {"id": "service:warehouse", "kind": "service", "name": "warehouse"},
        {"id": "type:OrderCreated", "kind": "event_type", "name": "OrderCreated"},
    ]
    edges = {(e["source"], e["target"]): e for e in topology["edges"]}
    assert edges[("service:checkout", "type:OrderCreated")] == {
        "source": "service:checkout",
        "target": "type:OrderCreated",
        "style": "event",
        "count": 20,
        "rate": 2.0,
        "p50_ms": None,
        "p95_ms": None,
        "error_share": 0.0,
    }
    assert edges[("type:OrderCreated", "service:email")]["p95_ms"] == 28.0, "the 19th of 20 latencies, nearest rank"
    assert edges[("type:OrderCreated", "service:email")]["p50_ms"] == 19.0, "the 10th of 20, nearest rank"
    assert edges[("type:OrderCreated", "service:warehouse")]["error_share"] == 0.25


def test_a_consumer_that_reacts_twice_to_one_event_counts_once_at_its_earliest_reaction():
    reactions = [reaction(1, "email", 50), reaction(1, "email", 5, failed=True), reaction(2, "email", 7)]
    edge = next(e for e in build_topology([], reactions, 60)["edges"] if e["target"] == "service:email")
    assert edge["count"] == 2
    assert edge["p95_ms"] == 7.0
    assert edge["error_share"] == 0.5


def test_a_reaction_that_a_skewed_clock_puts_before_its_event_counts_as_immediate():
    edge = next(e for e in build_topology([], [reaction(1, "email", -40)], 60)["edges"] if e["target"] == "service:email")
    assert edge["p95_ms"] == edge["p50_ms"] == 0.0


def test_send_to_process_is_measured_from_the_event_to_each_consumers_own_earliest_reaction():
    # email answers quickly; warehouse's queue holds messages for seconds.
    reactions = [reaction(n, "email", 5 + n) for n in range(10)] + [reaction(n, "warehouse", 2000 + 100 * n) for n in range(10)]
    reactions += [reaction(n, "warehouse", 9000 + n) for n in range(10)]  # its later work on the same events does not count
    edges = {e["target"]: e for e in build_topology([], reactions, 60)["edges"] if e["source"] == "type:OrderCreated"}
    assert (edges["service:email"]["p50_ms"], edges["service:email"]["p95_ms"]) == (9.0, 14.0)
    assert (edges["service:warehouse"]["p50_ms"], edges["service:warehouse"]["p95_ms"]) == (2400.0, 2900.0)


def test_lag_readings_name_the_service_node_they_belong_to_when_it_is_on_the_map():
    topology = build_topology([EmittedEvent("checkout", "OrderCreated")], [reaction(1, "email", 3)], 60)
    readings = LagReadings(
        [
            QueueLag("rabbitmq", "shop.email", "email", 7, None, "email"),
            QueueLag("rabbitmq", "shop.tap", "choreoscope", 0, None, "choreoscope"),
        ],
        sources=["rabbitmq", "nats"],
        unavailable=["nats"],
    )
    assert lag_on_map(topology["nodes"], readings) == {
        "lag": [
            {
                "bus": "rabbitmq",
                "destination": "shop.email",
                "consumer": "email",
                "node": "service:email",
                "waiting": 7,
                "unacknowledged": None,
            },
            {
                "bus": "rabbitmq",
                "destination": "shop.tap",
                "consumer": "choreoscope",
                "node": None,
                "waiting": 0,
                "unacknowledged": None,
            },
        ],
        "lag_unavailable": ["nats"],
    }


def test_a_reaction_names_its_producer_even_when_the_event_fell_outside_the_rows_read():
    topology = build_topology([], [reaction(1, "email", 3)], 60)
    assert {"source": "service:checkout", "target": "type:OrderCreated"}.items() <= topology["edges"][0].items()
    assert topology["edges"][0]["count"] == 0


def test_calls_go_straight_from_caller_to_callee_with_their_own_style_rate_and_p95():
    calls = [Call("checkout", "payment", (20 + n) * 1_000_000, failed=n == 0) for n in range(20)]
    calls += [Call("checkout", "fraud-screening", 5_000_000)]
    topology = build_topology([EmittedEvent("checkout", "OrderCreated")], [], 10, calls)
    edges = {(e["source"], e["target"]): e for e in topology["edges"]}
    assert edges[("service:checkout", "service:payment")] == {
        "source": "service:checkout",
        "target": "service:payment",
        "style": "call",
        "count": 20,
        "rate": 2.0,
        "p50_ms": 29.0,
        "p95_ms": 38.0,
        "error_share": 0.05,
    }
    assert edges[("service:checkout", "service:fraud-screening")]["count"] == 1
    assert edges[("service:checkout", "type:OrderCreated")]["style"] == "event"
    names = [node["name"] for node in topology["nodes"] if node["kind"] == "service"]
    assert names == ["checkout", "fraud-screening", "payment"]


def test_pulses_count_what_a_batch_moved_along_each_edge():
    assert pulses([EmittedEvent("checkout", "OrderCreated")] * 3, [reaction(1, "email", 1)]) == [
        {"source": "service:checkout", "target": "type:OrderCreated", "count": 3},
        {"source": "type:OrderCreated", "target": "service:email", "count": 1},
    ]


def test_windows_are_named_and_anything_else_is_refused_with_the_choices():
    assert parse_window(None) == ("15m", 900)
    assert parse_window("24h") == ("24h", 86_400)
    with pytest.raises(ValueError, match="5m, 15m, 1h, 24h"):
        parse_window("7d")
