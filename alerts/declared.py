"""Declared expectations: from the flow definitions file (``CHOREOSCOPE_FLOWS``) and the admin.

The file is the one ``tracing.flowconfig`` reads for flow types and business keys; this module
reads only the parts about expectations, added to each flow type::

    flows:
      - type: order
        end: [ShipmentPrepared]          # end steps (a string or a list)
        deadline: 10m                    # reach an end step within this of the start
        expect:
          - after: OrderCreated
            steps: [EmailSent, ShipmentPrepared, rewards/PointsCreated]
            within: 2m

``flows`` may also be a mapping from type to definition. A step is an event type or span name,
optionally prefixed by its service (``rewards/PointsCreated``). Durations are seconds or a number
with ``ms``, ``s``, ``m``, ``h`` or ``d``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from django.core.exceptions import ImproperlyConfigured

from alerts.expectations import Expectation, FlowDeadline, Rules, StepRef

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise ImproperlyConfigured(f"{where}: expected a duration such as 30s or 2m, not {value!r}.")
    if isinstance(value, int | float) and value > 0:
        return float(value)
    match = DURATION.match(str(value)) if isinstance(value, str) else None
    if not match or float(match.group(1)) <= 0:
        raise ImproperlyConfigured(f"{where}: expected a positive duration such as 30s or 2m, not {value!r}.")
    return float(match.group(1)) * UNIT_SECONDS[match.group(2)]


def parse_step(value: Any, where: str) -> StepRef:
    if not isinstance(value, str) or not value.strip():
        raise ImproperlyConfigured(f"{where}: expected a step name such as OrderCreated or rewards/PointsCreated, not {value!r}.")
    service, _, name = value.strip().rpartition("/")
    return StepRef(name.strip(), service.strip())


def _step_list(value: Any, where: str) -> list[StepRef]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ImproperlyConfigured(f"{where}: expected a step name or a list of them, not {value!r}.")
    return [parse_step(item, f"{where}[{i}]") for i, item in enumerate(items)]


def rules_from_definition(flow_type: str, definition: Mapping[str, Any]) -> Rules:
    where = f"flow {flow_type!r}"
    expectations: list[Expectation] = []
    raw_expect = definition.get("expect") or []
    if not isinstance(raw_expect, list):
        raise ImproperlyConfigured(f"{where}: 'expect' must be a list of {{after, steps, within}}.")
    for i, item in enumerate(raw_expect):
        at = f"{where} expect[{i}]"
        if not isinstance(item, Mapping) or not {"after", "steps", "within"} <= set(item):
            raise ImproperlyConfigured(f"{at}: needs 'after', 'steps' and 'within'.")
        after = parse_step(item["after"], f"{at}.after")
        within = parse_duration(item["within"], f"{at}.within")
        expectations += [Expectation(after, step, within, "declared") for step in _step_list(item["steps"], f"{at}.steps")]
    deadline = None
    if definition.get("deadline") is not None:
        if not definition.get("end"):
            raise ImproperlyConfigured(f"{where}: a 'deadline' needs the 'end' steps it is measured to.")
        deadline = FlowDeadline(
            tuple(_step_list(definition["end"], f"{where}.end")), parse_duration(definition["deadline"], f"{where}.deadline")
        )
    return Rules(tuple(expectations), deadline)


def _definitions(document: Any) -> list[tuple[str, Mapping[str, Any]]]:
    flows = document.get("flows", []) if isinstance(document, Mapping) else document
    if isinstance(flows, Mapping):
        return [(str(name), spec or {}) for name, spec in flows.items() if isinstance(spec, Mapping | type(None))]
    if isinstance(flows, list):
        return [
            (str(spec.get("type") or spec.get("name")), spec)
            for spec in flows
            if isinstance(spec, Mapping) and (spec.get("type") or spec.get("name"))
        ]
    raise ImproperlyConfigured("The flow definitions file must hold 'flows:' as a list or a mapping of flow types.")


def rules_from_document(document: Any) -> dict[str, Rules]:
    rules = {flow_type: rules_from_definition(flow_type, spec) for flow_type, spec in _definitions(document or {})}
    return {flow_type: r for flow_type, r in rules.items() if r}


_file_cache: dict[str, tuple[float, dict[str, Rules]]] = {}


def rules_from_file(path: str | None) -> dict[str, Rules]:
    """The file's declared rules by flow type, re-read when the file changes."""
    if not path:
        return {}
    try:
        mtime = Path(path).stat().st_mtime
    except OSError as error:
        raise ImproperlyConfigured(f"CHOREOSCOPE_FLOWS={path}: cannot read it ({error.strerror}).") from None
    cached = _file_cache.get(path)
    if cached and cached[0] == mtime:
        return cached[1]
    try:
        document = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as error:
        raise ImproperlyConfigured(f"CHOREOSCOPE_FLOWS={path} is not valid YAML: {error}") from None
    rules = rules_from_document(document)
    _file_cache[path] = (mtime, rules)
    return rules


def rules_from_admin(flows: list[Any]) -> dict[str, Rules]:
    """Rules from ``DeclaredFlow`` rows (with their expectations prefetched)."""
    result: dict[str, Rules] = {}
    for flow in flows:
        definition: dict[str, Any] = {
            "expect": [{"after": e.after, "steps": e.steps, "within": e.within_seconds} for e in flow.expectations.all()],
        }
        if flow.deadline_seconds and flow.end_steps:
            definition |= {"end": flow.end_steps, "deadline": flow.deadline_seconds}
        rules = rules_from_definition(flow.flow_type, definition)
        if rules:
            result[flow.flow_type] = rules
    return result
