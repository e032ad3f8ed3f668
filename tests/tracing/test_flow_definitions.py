"""The flow definitions file: one parser, its messages, the start-up check and the reloading."""

from __future__ import annotations

import logging

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from tracing import flowconfig
from tracing.flowconfig import Deadline, ExpectedSteps, StepRef, flows_config, parse_flows_config, read_flows_file

GOOD = """\
flows:
  - type: order
    key_paths: [data.order_id]
    start: OrderCreated
    end: [warehouse/ShipmentPrepared]
    deadline: 10m
    expect:
      - after: OrderCreated
        steps: [EmailSent, rewards/PointsCreated]
        within: 2m
"""
LATE_WITHIN = GOOD + "      - after: EmailSent\n        steps: [EmailOpened]\n        within: soon\n"


@pytest.fixture
def flows_file(tmp_path, settings):  # type: ignore[no-untyped-def]
    path = tmp_path / "flows.yaml"
    path.write_text(GOOD)
    settings.FLOWS_FILE = str(path)
    return path


def test_one_definition_holds_the_keys_the_steps_and_the_expectations():
    (order,) = parse_flows_config(GOOD).types
    assert (order.type, order.key_paths) == ("order", ("data.order_id",))
    assert (order.start, order.end) == ({"OrderCreated"}, {"ShipmentPrepared"})  # correlation compares event types
    expected = (StepRef("EmailSent"), StepRef("PointsCreated", "rewards"))
    assert order.expectations == (ExpectedSteps(StepRef("OrderCreated"), expected, 120.0),)
    assert order.deadline == Deadline((StepRef("ShipmentPrepared", "warehouse"),), 600.0)


def test_a_message_names_the_file_the_line_and_the_key(flows_file):
    flows_file.write_text(LATE_WITHIN)
    with pytest.raises(ImproperlyConfigured) as refused:
        read_flows_file(str(flows_file))
    assert str(refused.value) == (
        f"CHOREOSCOPE_FLOWS={flows_file}, line 13, flows[0].expect[1].within: "
        "expected a positive duration such as 30s or 2m, not 'soon'."
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("flows:\n  - type: order\n  - key_paths: [a]\n", "line 3, flows[1]: each flow needs a non-empty 'type'."),
        ("flows:\n  - type: order\n    colour: red\n", "line 3, flows[0]: unknown keys ['colour']"),
        ("flows:\n  - type: order\n    start: [a, rewards/]\n", "line 3, flows[0].start[1]: expected a step name"),
        ("flows:\n  - type: order\n    end: [a]\n    end: [b]\n", "line 4, end: the key appears twice"),
        ("flows:\n  - type: order\n  - type: order\n", "line 3, flows[1].type: flow types must be unique"),
        ("flows:\n  order:\n    end: [a]\n", "line 1, flows: expected a mapping with a 'flows' list"),
        ("flows:\n  - type: order\n    start: [a\n", "line 4: not valid YAML"),
    ],
)
def test_each_mistake_is_reported_where_it_is(text, message):
    with pytest.raises(ImproperlyConfigured) as refused:
        parse_flows_config(text, "CHOREOSCOPE_FLOWS=f.yaml")
    assert str(refused.value).startswith(f"CHOREOSCOPE_FLOWS=f.yaml, {message}")


@pytest.mark.django_db  # the definitions include AsyncAPI documents uploaded in the admin
def test_a_changed_file_is_read_again_and_an_unchanged_one_is_not(flows_file, monkeypatch):
    reads: list[str] = []

    def counted_read(path: str) -> flowconfig.FlowsConfig:
        reads.append(path)
        return read_flows_file(path)

    monkeypatch.setattr(flowconfig, "read_flows_file", counted_read)
    assert [t.type for t in flows_config().types] == ["order"]
    assert flows_config() is flows_config()
    flows_file.write_text(GOOD + "  - type: refund\n")
    assert [t.type for t in flows_config().types] == ["order", "refund"]
    assert len(reads) == 2


@pytest.mark.django_db
def test_a_file_broken_while_running_keeps_the_last_good_definitions_and_says_why(flows_file, caplog):
    good = flows_config()
    flows_file.write_text(LATE_WITHIN)
    with caplog.at_level(logging.ERROR, logger="tracing.flowconfig"):
        assert flows_config() is good
        assert flows_config() is good
    assert [r.getMessage() for r in caplog.records] == [
        f"CHOREOSCOPE_FLOWS={flows_file}, line 13, flows[0].expect[1].within: expected a positive duration such as 30s "
        "or 2m, not 'soon'. Keeping the flow definitions read before."
    ]


def test_a_file_broken_before_it_was_ever_read_is_refused(flows_file):
    flows_file.write_text(LATE_WITHIN)
    with pytest.raises(ImproperlyConfigured, match="line 13"):
        flows_config()


def test_manage_py_check_fails_naming_the_file_the_line_and_the_key(flows_file):
    call_command("check")
    flows_file.write_text(LATE_WITHIN)
    with pytest.raises(SystemCheckError, match=rf"CHOREOSCOPE_FLOWS={flows_file}, line 13, flows\[0\]\.expect\[1\]\.within"):
        call_command("check")


def test_serve_refuses_to_start_with_a_broken_file(flows_file):
    flows_file.write_text(LATE_WITHIN)
    with pytest.raises(SystemCheckError, match=r"line 13, flows\[0\]\.expect\[1\]\.within"):
        call_command("serve", skip_checks=False)  # the checks run before anything listens
