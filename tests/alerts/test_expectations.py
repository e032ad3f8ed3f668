"""Expected steps, deadlines and missing-step naming: the pure core with a controlled clock."""

from __future__ import annotations

import pytest

from alerts.expectations import (
    Due,
    Expectation,
    Rules,
    StepRef,
    deadline_of,
    learned_expectations,
    merge_rules,
    missing_steps,
    next_watch,
    pending,
    with_known_services,
)
from alerts.flowmodel import Occurrence, Step, learn_flow_model
from alerts.status import shown_status
from tracing.flowconfig import Deadline

from .test_flow_model import CREATED, EMAIL, POINTS, SHIPMENT, T0, order


def history(points_missing_in: int = 0, n: int = 20):  # type: ignore[no-untyped-def]
    return learn_flow_model("order", [order(i, points=None if i < points_missing_in else 0.5) for i in range(n)])


def rules(model, **kwargs) -> Rules:  # type: ignore[no-untyped-def]
    options = {"expect_share": 0.95, "factor": 3.0, "floor_seconds": 30.0} | kwargs
    return Rules(tuple(learned_expectations(model, **options)))


def test_a_step_that_nearly_always_followed_is_expected_with_p99_times_the_factor():
    learned = learned_expectations(history(), expect_share=0.95, factor=3.0, floor_seconds=0.0)
    by_step = {e.step.name: e.within_seconds for e in learned}
    assert by_step == {"EmailSent": 0.2 * 3, "ShipmentPrepared": 3.0, "PointsCreated": 1.5}
    assert all(e.after == StepRef("OrderCreated", "checkout") for e in learned)


def test_a_step_below_the_expected_share_is_not_expected():
    learned = learned_expectations(history(points_missing_in=2), expect_share=0.95, factor=3.0, floor_seconds=0.0)
    assert "PointsCreated" not in {e.step.name for e in learned}


def test_no_deadline_is_shorter_than_the_floor():
    learned = learned_expectations(history(), expect_share=0.95, factor=3.0, floor_seconds=30.0)
    assert {e.within_seconds for e in learned} == {30.0}


def test_the_deadline_is_the_earliest_unmet_expectation_after_its_trigger():
    trace = [Occurrence(1, CREATED, T0)]
    dues = pending(trace, rules(history(), floor_seconds=0.0), T0)
    assert deadline_of(dues) == pytest.approx(T0 + 0.6)  # EmailSent: p99 0.2 s x 3


def test_a_flow_with_everything_it_expects_has_no_deadline():
    assert deadline_of(pending(order(0), rules(history()), T0)) is None


def test_a_flow_that_has_not_reached_the_trigger_waits_for_nothing():
    assert pending([Occurrence(1, EMAIL, T0)], rules(history()), T0) == []


def test_the_missing_fan_out_reaction_is_named_with_its_service_and_cause():
    trace = order(0, points=None)
    dues = pending(trace, rules(history()), trace[0].at)
    assert missing_steps(dues, now=T0 + 29.9) == []
    [missing] = missing_steps(dues, now=T0 + 30.0)
    assert missing.as_missing() == {
        "step": "PointsCreated",
        "service": "rewards",
        "after": "OrderCreated",
        "after_service": "checkout",
        "due_at": T0 + 30.0,
        "origin": "learned",
    }


def test_a_late_reaction_clears_what_was_missing():
    late = [*order(0, points=None), Occurrence(99, POINTS, T0 + 300, (0,))]
    assert pending(late, rules(history()), T0) == []


def test_declared_expectations_replace_learned_ones_about_the_same_step():
    declared = Rules((Expectation(StepRef("OrderCreated"), StepRef("InvoiceSent"), 120.0, "declared"),))
    merged = merge_rules(declared, learned_expectations(history(), expect_share=0.95, factor=3.0, floor_seconds=1.0))
    assert [(e.step.name, e.within_seconds, e.origin) for e in merged.expectations] == [("InvoiceSent", 120.0, "declared")]


def test_learned_expectations_about_other_steps_are_kept_beside_declared_ones():
    declared = Rules((Expectation(StepRef("EmailSent"), StepRef("EmailOpened"), 60.0, "declared"),))
    merged = merge_rules(declared, learned_expectations(history(), expect_share=0.95, factor=3.0, floor_seconds=1.0))
    assert len(merged.expectations) == 4


def test_a_declared_step_named_without_service_gets_the_one_service_known_to_do_it():
    declared = [Expectation(StepRef("OrderCreated"), StepRef("PointsCreated"), 60.0, "declared")]
    [completed] = with_known_services(declared, [CREATED, EMAIL, SHIPMENT, POINTS])
    assert completed.step == StepRef("PointsCreated", "rewards")
    assert completed.after == StepRef("OrderCreated", "checkout")


def test_a_declared_step_without_history_is_missing_without_a_service_but_names_its_cause():
    declared = Rules((Expectation(StepRef("OrderCreated"), StepRef("PointsCreated"), 60.0, "declared"),))
    [due] = pending([Occurrence(1, CREATED, T0)], declared, T0)
    assert (due.step.service, due.after, due.due_at) == ("", StepRef("OrderCreated", "checkout"), T0 + 60.0)


def test_the_overall_deadline_counts_from_the_flows_start_until_an_end_step():
    overall = Rules(deadline=Deadline((StepRef("ShipmentPrepared"),), 600.0))
    [due] = pending([Occurrence(1, CREATED, T0 + 5)], overall, started_at=T0)
    assert (due.step.name, due.after, due.due_at) == ("ShipmentPrepared", None, T0 + 600.0)
    assert pending(order(0), overall, started_at=T0) == []


def test_a_service_qualified_step_matches_only_that_service():
    ref = StepRef("PointsCreated", "rewards")
    assert ref.matches(POINTS)
    assert not ref.matches(Step("loyalty", "PointsCreated"))
    assert StepRef("PointsCreated").matches(Step("loyalty", "PointsCreated"))


def test_a_step_expected_after_two_triggers_is_missing_once_by_its_earliest_due_time():
    both = Rules(
        (
            Expectation(StepRef("OrderCreated send"), StepRef("OrderCreated process", "rewards"), 30.0),
            Expectation(StepRef("OrderCreated"), StepRef("OrderCreated process", "rewards"), 30.0),
        )
    )
    trace = [Occurrence(1, Step("checkout", "OrderCreated send"), T0), Occurrence(2, CREATED, T0 + 0.001, (1,))]
    [due] = pending(trace, both, T0)
    assert (due.after, due.due_at) == (StepRef("OrderCreated send", "checkout"), T0 + 30.0)


def test_an_event_still_attributed_to_its_source_counts_by_name_but_a_span_of_another_service_does_not():
    expect_points = Rules((Expectation(StepRef("OrderCreated"), StepRef("PointsCreated", "rewards"), 30.0),))
    from_source = Occurrence(2, Step("/rewards", "PointsCreated"), T0 + 1, (1,), provisional_service=True)
    assert pending([Occurrence(1, CREATED, T0), from_source], expect_points, T0) == []
    expect_span = Rules((Expectation(StepRef("OrderCreated"), StepRef("OrderCreated process", "rewards"), 30.0),))
    other_service = Occurrence(2, Step("email", "OrderCreated process"), T0 + 1, (1,))
    assert len(pending([Occurrence(1, CREATED, T0), other_service], expect_span, T0)) == 1


POINTS_DUE = Due(StepRef("PointsCreated", "rewards"), StepRef("OrderCreated"), 100.0, "declared")
EMAIL_DUE = Due(StepRef("EmailSent", "email"), StepRef("OrderCreated"), 300.0, "declared")


def test_a_flow_that_expects_nothing_is_not_watched():
    assert next_watch([], now=50.0, was_stuck=False) is None


def test_a_watched_flow_is_due_at_its_earliest_expected_step_and_is_not_made_stuck_by_a_refresh():
    watch = next_watch([EMAIL_DUE, POINTS_DUE], now=200.0, was_stuck=False)
    assert watch is not None and (watch.deadline, watch.stuck, watch.missing) == (100.0, False, ())


def test_a_stuck_flow_stays_stuck_on_what_is_overdue_or_was_named_missing():
    later = Due(POINTS_DUE.step, POINTS_DUE.after, 900.0, "learned")  # a refreshed model moved it later
    watch = next_watch([later, EMAIL_DUE], now=200.0, was_stuck=True, named=frozenset({("PointsCreated", "rewards")}))
    assert watch is not None and (watch.stuck, watch.missing, watch.deadline) == (True, (later,), 300.0)


def test_a_stuck_flow_whose_missing_steps_arrived_runs_again_with_its_next_deadline():
    watch = next_watch([EMAIL_DUE], now=200.0, was_stuck=True, named=frozenset({("PointsCreated", "rewards")}))
    assert watch is not None and (watch.stuck, watch.deadline) == (False, 300.0)
    assert next_watch([], now=200.0, was_stuck=True) is None


@pytest.mark.parametrize(
    ("flow_status", "watched", "stuck", "shown"),
    [
        ("running", False, False, "running"),
        ("completed", False, False, "completed"),
        ("completed", True, False, "running"),  # reached its end, still owes a reaction
        ("running", True, True, "stuck"),
        ("completed", True, True, "stuck"),
        ("failed", True, True, "failed"),
    ],
)
def test_the_status_people_see_combines_correlations_word_with_the_watch(flow_status, watched, stuck, shown):  # type: ignore[no-untyped-def]
    assert shown_status(flow_status, watched, stuck) == shown
