"""Reading declared expectations from the flow definitions file."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from alerts.declared import parse_duration, rules_from_document
from alerts.expectations import StepRef

DOCUMENT = {
    "flows": [
        {
            "type": "order",
            "key_paths": ["data.order_id"],
            "end": ["ShipmentPrepared"],
            "deadline": "10m",
            "expect": [{"after": "OrderCreated", "steps": ["EmailSent", "rewards/PointsCreated"], "within": "2m"}],
        },
        {"type": "refund", "key_paths": ["data.refund_id"]},
    ]
}


def test_each_expected_step_becomes_one_declared_expectation():
    rules = rules_from_document(DOCUMENT)
    order = rules["order"]
    assert [(e.after, e.step, e.within_seconds, e.origin) for e in order.expectations] == [
        (StepRef("OrderCreated"), StepRef("EmailSent"), 120.0, "declared"),
        (StepRef("OrderCreated"), StepRef("PointsCreated", "rewards"), 120.0, "declared"),
    ]
    assert order.deadline is not None
    assert (order.deadline.end_steps, order.deadline.within_seconds) == ((StepRef("ShipmentPrepared"),), 600.0)


def test_a_flow_type_without_expectations_declares_nothing():
    assert "refund" not in rules_from_document(DOCUMENT)


@pytest.mark.parametrize(("raw", "seconds"), [(30, 30.0), ("45s", 45.0), ("2m", 120.0), ("1.5h", 5400.0), ("250ms", 0.25)])
def test_durations_read_as_people_write_them(raw, seconds):
    assert parse_duration(raw, "here") == seconds


@pytest.mark.parametrize("raw", ["soon", "-3s", 0, True, "5 weeks"])
def test_a_bad_duration_is_refused_with_where_it_is(raw):
    with pytest.raises(ImproperlyConfigured, match=r"flow .order. expect\[0\]\.within"):
        rules_from_document({"flows": [{"type": "order", "expect": [{"after": "A", "steps": ["B"], "within": raw}]}]})


def test_an_expectation_missing_its_steps_is_refused():
    with pytest.raises(ImproperlyConfigured, match="needs 'after', 'steps' and 'within'"):
        rules_from_document({"flows": [{"type": "order", "expect": [{"after": "A", "within": "1m"}]}]})


def test_a_deadline_without_end_steps_is_refused():
    with pytest.raises(ImproperlyConfigured, match="needs the 'end' steps"):
        rules_from_document({"flows": [{"type": "order", "deadline": "1m"}]})
