"""Declared expectations: from the flow definitions file (parsed by ``tracing.flowconfig``) and
from the admin's rows, checked by the same step and duration parsers."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError

from alerts.declared import rules_from_admin, rules_from_config
from alerts.expectations import StepRef
from alerts.models import DeclaredExpectation, DeclaredFlow
from tracing.flowconfig import parse_duration, parse_flows_config

DOCUMENT = """
flows:
  - type: order
    key_paths: [data.order_id]
    end: [ShipmentPrepared]
    deadline: 10m
    expect:
      - after: OrderCreated
        steps: [EmailSent, rewards/PointsCreated]
        within: 2m
  - type: refund
    key_paths: [data.refund_id]
"""


def rules_from_text(text: str):  # type: ignore[no-untyped-def]
    return rules_from_config(parse_flows_config(text))


def one_expectation(within: object) -> str:
    return f"flows:\n  - type: order\n    expect:\n      - after: A\n        steps: [B]\n        within: {within}\n"


def test_each_expected_step_becomes_one_declared_expectation():
    rules = rules_from_text(DOCUMENT)
    order = rules["order"]
    assert [(e.after, e.step, e.within_seconds, e.origin) for e in order.expectations] == [
        (StepRef("OrderCreated"), StepRef("EmailSent"), 120.0, "declared"),
        (StepRef("OrderCreated"), StepRef("PointsCreated", "rewards"), 120.0, "declared"),
    ]
    assert order.deadline is not None
    assert (order.deadline.end_steps, order.deadline.within_seconds) == ((StepRef("ShipmentPrepared"),), 600.0)


def test_a_flow_type_without_expectations_declares_nothing():
    assert "refund" not in rules_from_text(DOCUMENT)


@pytest.mark.parametrize(("raw", "seconds"), [(30, 30.0), ("45s", 45.0), ("2m", 120.0), ("1.5h", 5400.0), ("250ms", 0.25)])
def test_durations_read_as_people_write_them(raw, seconds):
    assert parse_duration(raw, "here") == seconds


@pytest.mark.parametrize("raw", ["soon", "-3s", 0, "true", "5 weeks"])
def test_a_bad_duration_is_refused_with_where_it_is(raw):
    with pytest.raises(ImproperlyConfigured, match=r"line 6, flows\[0\]\.expect\[0\]\.within: expected a"):
        rules_from_text(one_expectation(raw))


def test_an_expectation_missing_its_steps_is_refused():
    with pytest.raises(ImproperlyConfigured, match="needs 'after', 'steps' and 'within'"):
        rules_from_text("flows:\n  - type: order\n    expect:\n      - {after: A, within: 1m}\n")


def test_a_deadline_without_end_steps_is_refused():
    with pytest.raises(ImproperlyConfigured, match="needs the 'end' steps"):
        rules_from_text("flows:\n  - type: order\n    deadline: 1m\n")


@pytest.mark.django_db
def test_admin_rows_become_the_same_rules_as_the_file():
    flow = DeclaredFlow.objects.create(flow_type="order", end_steps=["ShipmentPrepared"], deadline_seconds=600)
    flow.expectations.create(after="OrderCreated", steps=["EmailSent", "rewards/PointsCreated"], within_seconds=120)
    from_admin = rules_from_admin(list(DeclaredFlow.objects.prefetch_related("expectations")))
    assert from_admin == {"order": rules_from_text(DOCUMENT)["order"]}


@pytest.mark.django_db
def test_an_admin_row_with_a_bad_step_is_refused_naming_the_row():
    flow = DeclaredFlow.objects.create(flow_type="order")
    flow.expectations.create(after="OrderCreated", steps=["rewards/"], within_seconds=60)
    with pytest.raises(ImproperlyConfigured, match=r"declared flow 'order', expectation after 'OrderCreated', steps\[0\]"):
        rules_from_admin(list(DeclaredFlow.objects.prefetch_related("expectations")))


@pytest.mark.django_db
def test_the_admin_form_refuses_what_the_file_would_refuse():
    flow = DeclaredFlow(flow_type="order", end_steps=["warehouse/"], deadline_seconds=600)
    with pytest.raises(ValidationError, match=r"end_steps\[0\]: expected a step name"):
        flow.full_clean()
    flow.end_steps = ["warehouse/ShipmentPrepared"]
    flow.full_clean()
    flow.save()
    with pytest.raises(ValidationError, match=r"steps\[1\]: expected a step name"):
        DeclaredExpectation(flow=flow, after="OrderCreated", steps=["EmailSent", ""], within_seconds=60).full_clean()
    with pytest.raises(ValidationError, match=r"within_seconds: expected a positive duration"):
        DeclaredExpectation(flow=flow, after="OrderCreated", steps=["EmailSent"], within_seconds=0).full_clean()
