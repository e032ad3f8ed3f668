"""Interaction styles and critical paths, on plain data."""

from __future__ import annotations

from tracing.interactions import (
    CLIENT,
    CONSUMER,
    PRODUCER,
    SERVER,
    Step,
    critical_path,
    edge_styles,
    interaction_style,
)

MS = 1_000_000


def span(id: int, service: str, start_ms: float, end_ms: float, kind: int = 1, **attributes: str) -> Step:
    return Step(id, service, "span", kind, int(start_ms * MS), int(end_ms * MS), attributes)


def event(id: int, service: str, at_ms: float) -> Step:
    return Step(id, service, "event", 0, int(at_ms * MS), None)


def times(path, service: str) -> tuple[float, float, float]:
    entry = next(entry for entry in path.services if entry.service == service)
    return entry.self_ns / MS, entry.waiting_ns / MS, entry.queued_ns / MS


# --- Styles ------------------------------------------------------------------------------------


def test_a_client_span_and_its_server_child_in_another_service_are_a_call() -> None:
    client = span(1, "checkout", 0, 10, CLIENT)
    server = span(2, "payment", 1, 9, SERVER)
    assert interaction_style(client, server, "child_of") == "call"


def test_http_or_rpc_attributes_make_a_call_when_span_kinds_say_nothing() -> None:
    caller = span(1, "a", 0, 10, 1, **{"http.request.method": "GET"})
    callee = span(2, "b", 1, 9, 1)
    assert interaction_style(caller, callee, "child_of") == "call"
    assert interaction_style(span(1, "a", 0, 1, 1, **{"rpc.system": "grpc"}), span(2, "b", 0, 1), "child_of") == "call"


def test_a_producer_and_its_consumer_child_are_an_event_even_as_parent_and_child() -> None:
    producer = span(1, "checkout", 0, 1, PRODUCER)
    consumer = span(2, "email", 5, 9, CONSUMER)
    assert interaction_style(producer, consumer, "child_of") == "event"


def test_messaging_attributes_without_call_attributes_make_an_event() -> None:
    sender = span(1, "a", 0, 1, 1, **{"messaging.system": "kafka"})
    assert interaction_style(sender, span(2, "b", 3, 4), "child_of") == "event"


def test_links_and_cloudevents_relations_across_services_are_events() -> None:
    producer = span(1, "checkout", 0, 1, PRODUCER)
    created = event(2, "checkout", 0.5)
    consumer = span(3, "email", 5, 9, CONSUMER)
    assert interaction_style(producer, consumer, "follows_from") == "event"
    assert interaction_style(created, consumer, "delivers") == "event"
    assert interaction_style(created, event(4, "email", 9), "caused_by") == "event"
    # An event whose traceparent names another service's span was emitted across the boundary.
    assert interaction_style(span(5, "gateway", 0, 1), event(6, "orders", 0.5), "emitted_by") == "event"


def test_anything_within_one_service_is_internal() -> None:
    assert interaction_style(span(1, "warehouse", 0, 9, SERVER), span(2, "warehouse", 1, 2, CLIENT), "child_of") == "internal"
    assert interaction_style(event(1, "warehouse", 0), span(2, "warehouse", 1, 2, CONSUMER), "delivers") == "internal"


def test_edge_styles_follow_the_order_of_the_edges() -> None:
    steps = [span(1, "a", 0, 10, CLIENT), span(2, "b", 1, 9, SERVER), event(3, "b", 5)]
    edges = [(1, 2, "child_of"), (2, 3, "emitted_by"), (3, 99, "caused_by")]
    assert edge_styles(steps, edges) == ["call", "internal", "internal"]


# --- Critical path: a synchronous chain ----------------------------------------------------------


def orchestrated_checkout() -> tuple[list[Step], list[tuple[int, int, str]]]:
    """checkout's request calls payment (which calls the bank), then fraud; it answers after both."""
    steps = [
        span(1, "checkout", 0, 100, SERVER),
        span(2, "checkout", 2, 10),  # create order
        span(3, "checkout", 10, 50, CLIENT),  # POST /payments
        span(4, "payment", 12, 48, SERVER),
        span(5, "payment", 14, 40, CLIENT),  # POST /bank
        span(6, "bank", 16, 38, SERVER),
        span(7, "checkout", 52, 90, CLIENT),  # POST /fraud-checks
        span(8, "fraud", 55, 85, SERVER),
    ]
    edges = [(1, 2, "child_of"), (1, 3, "child_of"), (3, 4, "child_of"), (4, 5, "child_of"), (5, 6, "child_of")]
    edges += [(1, 7, "child_of"), (7, 8, "child_of")]
    return steps, edges


def test_the_critical_path_of_a_synchronous_chain_goes_through_every_sequential_call() -> None:
    steps, edges = orchestrated_checkout()
    path = critical_path(steps, edges)
    assert path.steps == [1, 2, 3, 4, 5, 6, 7, 8]
    assert path.total_ns == 100 * MS


def test_callers_wait_while_callees_work() -> None:
    steps, edges = orchestrated_checkout()
    path = critical_path(steps, edges)
    # checkout's own: 0-2, create order 2-10, 10-12 and 48-50 in the payment call, 50-52, 52-55 and
    # 85-90 in the fraud call, 90-100; it waits on payment (36 ms) and fraud (30 ms).
    assert times(path, "checkout") == (2 + 8 + 4 + 2 + 8 + 10, 36 + 30, 0)
    assert times(path, "payment") == (2 + 4 + 8, 22, 0)
    assert times(path, "bank") == (22, 0, 0)
    assert times(path, "fraud") == (30, 0, 0)
    assert path.services[0].service == "checkout"
    assert round(path.share_of("fraud"), 2) == 0.30


def test_a_call_that_finished_early_is_not_on_the_path_of_the_call_that_finished_last() -> None:
    # Two calls in parallel: the slower one decides the caller's time.
    steps = [
        span(1, "checkout", 0, 60, SERVER),
        span(2, "checkout", 1, 20, CLIENT),
        span(3, "payment", 2, 19, SERVER),
        span(4, "checkout", 1, 55, CLIENT),
        span(5, "fraud", 3, 54, SERVER),
    ]
    edges = [(1, 2, "child_of"), (2, 3, "child_of"), (1, 4, "child_of"), (4, 5, "child_of")]
    assert critical_path(steps, edges).steps == [1, 4, 5]


# --- Critical path: an event choreography with a fan-out ------------------------------------------


def choreographed_order() -> tuple[list[Step], list[tuple[int, int, str]]]:
    """checkout emits OrderCreated; email, rewards and warehouse react; warehouse's ShipmentPrepared
    is the last thing that happens."""
    steps = [
        span(1, "checkout", 0, 20, SERVER),
        span(2, "checkout", 15, 18, PRODUCER),
        event(3, "checkout", 16),  # OrderCreated
        span(4, "email", 30, 50, CONSUMER),
        event(5, "email", 48),  # EmailSent
        span(6, "rewards", 25, 35, CONSUMER),
        event(7, "rewards", 34),  # PointsCreated
        span(8, "warehouse", 40, 200, CONSUMER),
        span(9, "warehouse", 41, 190),  # reserve stock and pack
        span(10, "warehouse", 190, 198, PRODUCER),
        event(11, "warehouse", 195),  # ShipmentPrepared
    ]
    edges = [(1, 2, "child_of"), (2, 3, "emitted_by")]
    for consumer, emitted in ((4, 5), (6, 7)):
        edges += [(3, consumer, "delivers"), (2, consumer, "follows_from"), (consumer, emitted, "emitted_by")]
        edges += [(3, emitted, "caused_by")]
    edges += [(3, 8, "delivers"), (2, 8, "follows_from"), (8, 9, "child_of"), (8, 10, "child_of"), (10, 11, "emitted_by")]
    edges += [(3, 11, "caused_by")]
    return steps, edges


def test_the_critical_path_of_a_choreography_follows_the_branch_that_ended_last() -> None:
    steps, edges = choreographed_order()
    path = critical_path(steps, edges)
    assert path.steps == [1, 2, 3, 8, 9, 10, 11]
    assert not {4, 5, 6, 7} & set(path.steps)


def test_the_time_between_an_event_and_its_reaction_is_the_reacting_service_queued() -> None:
    steps, edges = choreographed_order()
    path = critical_path(steps, edges)
    assert times(path, "warehouse") == (160, 0, 40 - 16)
    assert times(path, "checkout") == (16, 0, 0)
    assert path.total_ns == 200 * MS


def test_a_hybrid_flow_waits_on_its_calls_then_on_its_reactions() -> None:
    call_steps, call_edges = orchestrated_checkout()
    # After answering, checkout's request emits OrderCreated (at 95 ms); email reacts at 130 ms.
    reactions = [span(20, "checkout", 92, 97, PRODUCER), event(21, "checkout", 95), span(22, "email", 130, 160, CONSUMER)]
    steps = [*call_steps, *reactions]
    edges = [*call_edges, (1, 20, "child_of"), (20, 21, "emitted_by"), (21, 22, "delivers"), (20, 22, "follows_from")]
    path = critical_path(steps, edges)
    assert path.steps == [1, 2, 3, 4, 5, 6, 7, 8, 20, 21, 22]
    assert times(path, "email") == (30, 0, 35)
    assert edge_styles(steps, edges).count("call") == 3


def test_clock_skew_never_makes_time_negative() -> None:
    # email's clock runs 750 ms behind: its reaction is stamped before the event it reacts to.
    steps = [span(1, "checkout", 0, 10, PRODUCER), event(2, "checkout", 5), span(3, "email", -700, -690, CONSUMER)]
    path = critical_path(steps, [(1, 2, "emitted_by"), (2, 3, "delivers")])
    assert all(entry.self_ns >= 0 and entry.queued_ns >= 0 for entry in path.services)
    assert path.steps[0] == 1


def test_a_cycle_in_bad_data_ends_the_walk() -> None:
    steps = [event(1, "a", 0), event(2, "b", 1), event(3, "c", 2)]
    path = critical_path(steps, [(1, 2, "caused_by"), (2, 3, "caused_by"), (3, 1, "caused_by")])
    assert set(path.steps) <= {1, 2, 3} and 3 in path.steps


def test_an_empty_flow_has_an_empty_path() -> None:
    assert critical_path([], []).steps == []


def test_a_service_whose_clock_runs_behind_still_ends_the_path_it_ends() -> None:
    # email's host runs 750 ms behind: it stamps its reaction to ShipmentDispatched before the
    # event, and before warehouse's last span ends; causally it comes last, so the path ends there.
    steps = [
        span(1, "warehouse", 0, 40, CONSUMER),
        span(2, "warehouse", 0, 10, PRODUCER),
        event(3, "warehouse", 5),  # ShipmentDispatched
        span(4, "warehouse", 10, 40),
        span(5, "email", -700, -650, CONSUMER),
        event(6, "email", -660),  # DispatchNoticeSent
    ]
    edges = [(1, 2, "child_of"), (2, 3, "emitted_by"), (1, 4, "child_of"), (3, 5, "delivers"), (2, 5, "follows_from")]
    edges += [(5, 6, "emitted_by"), (3, 6, "caused_by")]
    path = critical_path(steps, edges)
    assert path.steps == [1, 2, 3, 5, 6]
    assert path.links == [(1, 2), (2, 3), (3, 5), (5, 6)]
    assert times(path, "email") == (50, 0, 0)


def test_a_span_with_thousands_of_sequential_children_has_them_all_on_its_path() -> None:
    steps = [span(0, "api", 0, 2001, SERVER)]
    steps += [span(n, "db" if n % 2 else "api", n, n + 0.5, CLIENT if n % 2 else 1) for n in range(1, 2001)]
    path = critical_path(steps, [(0, n, "child_of") for n in range(1, 2001)])
    assert path.steps == list(range(2001))
    assert times(path, "api")[0] + times(path, "db")[0] == 2001
