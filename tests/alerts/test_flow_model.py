"""Learning a flow model: the pure core, with a controlled clock (plain timestamps)."""

from __future__ import annotations

from alerts.flowmodel import Occurrence, Step, learn_flow_model, model_from_dict, model_to_dict, predecessors

CREATED = Step("checkout", "OrderCreated")
EMAIL = Step("email", "EmailSent")
SHIPMENT = Step("warehouse", "ShipmentPrepared")
POINTS = Step("rewards", "PointsCreated")
T0 = 1_800_000_000.0


def order(
    n: int, *, email: float = 0.2, shipment: float = 1.0, points: float | None = 0.5, caused: bool = True
) -> list[Occurrence]:
    """An order flow: OrderCreated at T0 + n, then its reactions after the given delays."""
    base = n * 10
    start = T0 + n
    cause = (base,) if caused else ()
    trace = [Occurrence(base, CREATED, start), Occurrence(base + 1, EMAIL, start + email, cause)]
    trace.append(Occurrence(base + 2, SHIPMENT, start + shipment, cause))
    if points is not None:
        trace.append(Occurrence(base + 3, POINTS, start + points, cause))
    return trace


def transition(model, source: Step, target: Step):  # type: ignore[no-untyped-def]
    return next(t for t in model.transitions if (t.source, t.target) == (source, target))


def test_fan_out_reactions_are_branches_of_their_cause_not_a_chain_in_time_order():
    model = learn_flow_model("order", [order(i) for i in range(10)])
    assert {(t.source, t.target) for t in model.transitions} == {(CREATED, EMAIL), (CREATED, SHIPMENT), (CREATED, POINTS)}
    assert model.flow_count == 10
    assert model.steps[CREATED] == 10
    assert model.start_steps == {CREATED: 10}


def test_events_without_a_known_cause_follow_the_flows_first_observation():
    model = learn_flow_model("order", [order(i, caused=False) for i in range(4)])
    assert {t.target for t in model.successors(CREATED)} == {EMAIL, SHIPMENT, POINTS}


def test_share_counts_flows_in_which_the_reaction_came():
    traces = [order(i) for i in range(19)] + [order(19, points=None)]
    model = learn_flow_model("order", traces)
    assert transition(model, CREATED, POINTS).share == 0.95
    assert transition(model, CREATED, EMAIL).share == 1.0
    assert transition(model, CREATED, POINTS).flows == 19


def test_latency_percentiles_are_nearest_rank_over_flows():
    traces = [order(i, shipment=float(i + 1)) for i in range(100)]
    shipment = transition(learn_flow_model("order", traces), CREATED, SHIPMENT)
    assert (shipment.p50, shipment.p95, shipment.p99) == (50.0, 95.0, 99.0)


def test_a_reaction_timestamped_before_its_cause_counts_as_zero_latency():
    # Services' clocks disagree; causality, not the clock, says which came first.
    shipment = transition(learn_flow_model("order", [order(0, shipment=-2.0)]), CREATED, SHIPMENT)
    assert shipment.p99 == 0.0


def test_the_first_reaction_is_the_one_measured_when_a_step_repeats():
    trace = [*order(0, email=3.0), Occurrence(9, EMAIL, T0 + 1.0, (0,))]
    assert transition(learn_flow_model("order", [trace]), CREATED, EMAIL).p50 == 1.0


def test_a_causal_cycle_inside_a_flow_does_not_confuse_predecessors():
    a, b = Occurrence(1, CREATED, T0, (2,)), Occurrence(2, EMAIL, T0 + 1, (1,))
    assert predecessors([a, b]) == {1: [b], 2: [a]}


def test_a_model_survives_its_json_form_unchanged():
    model = learn_flow_model("order", [order(i, points=0.1 * i) for i in range(7)])
    assert model_from_dict(model_to_dict(model)) == model
