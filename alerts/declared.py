"""Declared expectations, as ``Rules``: from the flow definitions (``tracing.flowconfig``, which
parses and reloads ``CHOREOSCOPE_FLOWS``) and from the admin's ``DeclaredFlow`` rows, whose steps
and durations go through the same parsers as the file's."""

from __future__ import annotations

from typing import Any

from alerts.expectations import Expectation, Rules
from tracing.flowconfig import (
    Deadline,
    ExpectedSteps,
    FlowsConfig,
    FlowType,
    Where,
    flows_config,
    parse_duration,
    parse_step,
    parse_steps,
)


def rules_from_definition(flow_type: FlowType) -> Rules:
    """Each expected step becomes one declared expectation."""
    return Rules(
        tuple(Expectation(e.after, step, e.within_seconds, "declared") for e in flow_type.expectations for step in e.steps),
        flow_type.deadline,
    )


def rules_from_config(config: FlowsConfig) -> dict[str, Rules]:
    """The rules of each flow type that declares any."""
    rules = {flow_type.type: rules_from_definition(flow_type) for flow_type in config.types}
    return {flow_type: r for flow_type, r in rules.items() if r}


def rules_from_flows_file() -> dict[str, Rules]:
    """The rules of ``CHOREOSCOPE_FLOWS``, as loaded (and reloaded on change) by tracing."""
    return rules_from_config(flows_config())


def admin_expectation(after: Any, steps: Any, within_seconds: Any, where: Where) -> ExpectedSteps:
    """A ``DeclaredExpectation`` row's values, checked like an ``expect`` item of the file."""
    return ExpectedSteps(
        parse_step(after, where.at("after")),
        parse_steps(steps, where.at("steps")),
        parse_duration(within_seconds, where.at("within_seconds")),
    )


def admin_deadline(end_steps: Any, deadline_seconds: Any, where: Where) -> Deadline | None:
    """A ``DeclaredFlow`` row's deadline: none unless both the end steps and the time are set."""
    if not (deadline_seconds and end_steps):
        return None
    return Deadline(parse_steps(end_steps, where.at("end_steps")), parse_duration(deadline_seconds, where.at("deadline_seconds")))


def admin_flow_type(flow: Any) -> FlowType:
    """The expectation parts of a flow definition, from a ``DeclaredFlow`` row (with its
    expectations prefetched)."""
    where = Where(f"declared flow {flow.flow_type!r}")
    expectations = tuple(
        admin_expectation(e.after, e.steps, e.within_seconds, Where(f"{where}, expectation after {e.after!r}"))
        for e in flow.expectations.all()
    )
    deadline = admin_deadline(flow.end_steps, flow.deadline_seconds, where)
    return FlowType(flow.flow_type, expectations=expectations, deadline=deadline)


def rules_from_admin(flows: list[Any]) -> dict[str, Rules]:
    """Rules from ``DeclaredFlow`` rows (with their expectations prefetched)."""
    return rules_from_config(FlowsConfig(tuple(admin_flow_type(flow) for flow in flows)))
