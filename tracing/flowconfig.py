"""Flow definitions: the ``CHOREOSCOPE_FLOWS`` YAML file, parsed here and nowhere else.

Example::

    flows:
      - type: order
        key_paths: [data.order_id, order.id]   # CloudEvent data field, span attribute
        key_prefix: "order-"                   # optional: 1042 becomes order-1042
        start: [OrderCreated]
        end: [ShipmentPrepared]                # the flow completes when one of these is seen
        errors: [PaymentFailed]                # optional: these events fail the flow
        expect:                                # optional: what the flow waits for
          - after: OrderCreated
            steps: [EmailSent, rewards/PointsCreated]
            within: 2m
        deadline: 10m                          # optional: reach an end step within this of the start

A step is an event type or span name, optionally prefixed by its service
(``rewards/PointsCreated``); correlation matches ``start``, ``end`` and ``errors`` against event
types by name, and stuck detection (``alerts``) checks the service too. A duration is a number of
seconds or a number with ``ms``, ``s``, ``m``, ``h`` or ``d``.

AsyncAPI documents (``CHOREOSCOPE_ASYNCAPI``, ``tracing.contracts``) add to these definitions:
their correlation ids become key paths, their declared reactions expectations.

Tracing owns the format because correlation needs the keys and the start, end and error steps;
``alerts`` reads the expectations and the deadline from the same ``FlowType``. The file is
checked when the process starts (``tracing.checks``) and re-read when it changes
(``flows_config``).

Without a file, flows still form: keys come from the CloudEvents ``correlationid`` extension and
``messaging.message.conversation_id``, a flow's type is its root event's type, and any event
whose type ends in ``Failed``/``Error`` fails its flow.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import yaml
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

log = logging.getLogger(__name__)

FLOW_KEYS = ("type", "key_paths", "key_prefix", "start", "end", "errors", "expect", "deadline")
EXPECT_KEYS = ("after", "steps", "within")
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


# --- The definitions ------------------------------------------------------------------------


class NamedStep(Protocol):
    """Anything that is one service's step, such as ``alerts.flowmodel.Step``."""

    @property
    def name(self) -> str: ...

    @property
    def service(self) -> str: ...


@dataclass(frozen=True)
class StepRef:
    """A step as people name it: an event type or span name, optionally with its service."""

    name: str
    service: str = ""

    def matches(self, step: NamedStep) -> bool:
        return self.name == step.name and (not self.service or self.service == step.service)


@dataclass(frozen=True)
class ExpectedSteps:
    """After ``after``, each of ``steps`` is due within ``within_seconds``."""

    after: StepRef
    steps: tuple[StepRef, ...]
    within_seconds: float


@dataclass(frozen=True)
class Deadline:
    """The flow must reach one of ``end_steps`` within ``within_seconds`` of its start."""

    end_steps: tuple[StepRef, ...]
    within_seconds: float


@dataclass(frozen=True)
class FlowType:
    """One flow definition. ``start``, ``end`` and ``errors`` hold event types, which is what
    correlation compares; ``deadline.end_steps`` keeps the end steps whole and in order."""

    type: str
    key_paths: tuple[str, ...] = ()
    key_prefix: str = ""
    start: frozenset[str] = frozenset()
    end: frozenset[str] = frozenset()
    errors: frozenset[str] = frozenset()
    expectations: tuple[ExpectedSteps, ...] = ()
    deadline: Deadline | None = None

    def mentions(self, event_type: str) -> bool:
        return event_type in self.start or event_type in self.end or event_type in self.errors


@dataclass(frozen=True)
class FlowsConfig:
    types: tuple[FlowType, ...] = field(default_factory=tuple)


EMPTY = FlowsConfig()


# --- Where a value sits, for messages a person can act on -------------------------------------


class _LinedMapping(dict[Any, Any]):
    lines: dict[Any, int]


class _LinedList(list[Any]):
    lines: dict[int, int]


class _LineLoader(yaml.SafeLoader):
    """A safe loader whose mappings and lists remember the line of each key and item."""


def _mapping_with_lines(loader: _LineLoader, node: yaml.MappingNode) -> _LinedMapping:
    mapping = _LinedMapping(loader.construct_mapping(node, deep=True))
    mapping.lines = {}
    for key_node, _ in node.value:  # merge keys (<<) are already flattened by construct_mapping
        key = loader.construct_object(key_node, deep=True)
        if key in mapping.lines:
            # PyYAML keeps the last of two equal keys; a repeated 'expect' would drop the first.
            raise ImproperlyConfigured(f"line {key_node.start_mark.line + 1}, {key}: the key appears twice in one mapping")
        mapping.lines[key] = key_node.start_mark.line + 1
    return mapping


def _list_with_lines(loader: _LineLoader, node: yaml.SequenceNode) -> _LinedList:
    items = _LinedList(loader.construct_sequence(node, deep=True))
    items.lines = {index: item.start_mark.line + 1 for index, item in enumerate(node.value)}
    return items


_LineLoader.add_constructor("tag:yaml.org,2002:map", _mapping_with_lines)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _list_with_lines)


@dataclass(frozen=True)
class Where:
    """A position in the definitions: the file, the line when known, and the key path."""

    source: str
    path: str = ""
    line: int | None = None

    def at(self, key: str | int, container: Any = None) -> Where:
        """The position of ``key`` in ``container`` (a mapping or list read from the file)."""
        path = f"{self.path}[{key}]" if isinstance(key, int) else f"{self.path}.{key}" if self.path else key
        return Where(self.source, path, getattr(container, "lines", {}).get(key, self.line))

    def __str__(self) -> str:
        return ", ".join(part for part in (self.source, f"line {self.line}" if self.line else "", self.path) if part)


# --- Parsing ----------------------------------------------------------------------------------


def parse_duration(value: Any, where: Where | str) -> float:
    """Seconds from ``30``, ``30s``, ``2m``, ``500ms``, ``1.5h`` or ``1d``."""
    if isinstance(value, bool):
        raise ImproperlyConfigured(f"{where}: expected a duration such as 30s or 2m, not {value!r}.")
    if isinstance(value, int | float) and value > 0:
        return float(value)
    match = DURATION.match(value) if isinstance(value, str) else None
    if not match or float(match.group(1)) <= 0:
        raise ImproperlyConfigured(f"{where}: expected a positive duration such as 30s or 2m, not {value!r}.")
    return float(match.group(1)) * UNIT_SECONDS[match.group(2)]


def parse_step(value: Any, where: Where | str) -> StepRef:
    """``OrderCreated`` or ``rewards/PointsCreated`` (the service, then the step)."""
    service, _, name = value.strip().rpartition("/") if isinstance(value, str) else ("", "", "")
    if not name.strip():
        raise ImproperlyConfigured(f"{where}: expected a step name such as OrderCreated or rewards/PointsCreated, not {value!r}.")
    return StepRef(name.strip(), service.strip())


def parse_steps(value: Any, where: Where) -> tuple[StepRef, ...]:
    """One step or a list of them."""
    items = [value] if isinstance(value, str) else value
    key = where.path.rpartition(".")[2] or "steps"  # the key holding them, for the message
    if not isinstance(items, list):
        raise ImproperlyConfigured(
            f"{where}: '{key}' must be a list of steps such as [OrderCreated, rewards/PointsCreated], not {value!r}."
        )
    return tuple(parse_step(item, where.at(index, items)) for index, item in enumerate(items))


def _key_paths(entry: dict[str, Any], where: Where) -> tuple[str, ...]:
    value = entry.get("key_paths", [])
    paths = [value] if isinstance(value, str) else value
    if not isinstance(paths, list) or not all(isinstance(path, str) and path for path in paths):
        raise ImproperlyConfigured(f"{where}: 'key_paths' must be a list of paths such as data.order_id or order.id.")
    return tuple(paths)


def _expected_steps(item: Any, where: Where) -> ExpectedSteps:
    if not isinstance(item, dict) or not set(EXPECT_KEYS) <= set(item):
        missing = [key for key in EXPECT_KEYS if not isinstance(item, dict) or key not in item]
        raise ImproperlyConfigured(f"{where}: needs 'after', 'steps' and 'within' (missing: {', '.join(missing)}).")
    _refuse_unknown_keys(item, EXPECT_KEYS, where)
    steps = parse_steps(item["steps"], where.at("steps", item))
    if not steps:
        raise ImproperlyConfigured(f"{where.at('steps', item)}: expected at least one step.")
    return ExpectedSteps(
        parse_step(item["after"], where.at("after", item)), steps, parse_duration(item["within"], where.at("within", item))
    )


def _expectations(entry: dict[str, Any], where: Where) -> tuple[ExpectedSteps, ...]:
    items = entry.get("expect") or []
    if not isinstance(items, list):
        raise ImproperlyConfigured(f"{where}: 'expect' must be a list of {{after, steps, within}}.")
    return tuple(_expected_steps(item, where.at(index, items)) for index, item in enumerate(items))


def _deadline(entry: dict[str, Any], end_steps: tuple[StepRef, ...], where: Where) -> Deadline | None:
    if entry.get("deadline") is None:
        return None
    if not end_steps:
        raise ImproperlyConfigured(f"{where.at('deadline', entry)}: a 'deadline' needs the 'end' steps it is measured to.")
    return Deadline(end_steps, parse_duration(entry["deadline"], where.at("deadline", entry)))


def _refuse_unknown_keys(entry: dict[str, Any], allowed: tuple[str, ...], where: Where) -> None:
    unknown = [key for key in entry if key not in allowed]
    if unknown:
        at = replace(where, line=getattr(entry, "lines", {}).get(unknown[0], where.line))
        raise ImproperlyConfigured(f"{at}: unknown keys {sorted(map(str, unknown))}; use {', '.join(allowed)}.")


def parse_flow_type(entry: Any, where: Where) -> FlowType:
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str) or not entry["type"]:
        raise ImproperlyConfigured(f"{where}: each flow needs a non-empty 'type'.")
    _refuse_unknown_keys(entry, FLOW_KEYS, where)
    prefix = entry.get("key_prefix", "")
    if not isinstance(prefix, str):
        raise ImproperlyConfigured(f"{where.at('key_prefix', entry)}: 'key_prefix' must be a string.")
    start, end, errors = (parse_steps(entry.get(key, []), where.at(key, entry)) for key in ("start", "end", "errors"))
    return FlowType(
        type=entry["type"],
        key_paths=_key_paths(entry, where.at("key_paths", entry)),
        key_prefix=prefix,
        start=frozenset(step.name for step in start),
        end=frozenset(step.name for step in end),
        errors=frozenset(step.name for step in errors),
        expectations=_expectations(entry, where.at("expect", entry)),
        deadline=_deadline(entry, end, where),
    )


def _flows_config_from(document: Any, where: Where) -> FlowsConfig:
    entries = document.get("flows", []) if isinstance(document, dict) else None
    if not isinstance(entries, list):
        at = where.at("flows", document) if isinstance(document, dict) else where
        raise ImproperlyConfigured(f"{at}: expected a mapping with a 'flows' list, each item starting '- type: ...'.")
    types: list[FlowType] = []
    for index, entry in enumerate(entries):
        at = where.at("flows", document).at(index, entries)
        flow_type = parse_flow_type(entry, at)
        if any(known.type == flow_type.type for known in types):
            message = f"flow types must be unique; {flow_type.type!r} is declared twice."
            raise ImproperlyConfigured(f"{at.at('type', entry)}: {message}")
        types.append(flow_type)
    return FlowsConfig(tuple(types))


def parse_flows_config(text: str, source: str = "CHOREOSCOPE_FLOWS") -> FlowsConfig:
    """The definitions in ``text``; ``ImproperlyConfigured`` names the source, line and key."""
    try:
        document = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f", line {mark.line + 1}" if mark else ""
        raise ImproperlyConfigured(f"{source}{line}: not valid YAML: {error.problem or error.context}.") from None
    except yaml.YAMLError as error:
        raise ImproperlyConfigured(f"{source} is not valid YAML: {error}") from None
    except ImproperlyConfigured as error:  # a repeated key, found while loading
        raise ImproperlyConfigured(f"{source}, {error}.") from None
    return _flows_config_from(document or {}, Where(source))


def read_flows_file(path: str) -> FlowsConfig:
    """Read and parse the file, every time: the start-up check and the reloader call this."""
    source = f"CHOREOSCOPE_FLOWS={path}"
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ImproperlyConfigured(f"{source}: cannot read it ({error.strerror}).") from None
    return parse_flows_config(text, source)


# --- Loading, and reloading on change ---------------------------------------------------------


@dataclass(frozen=True)
class _Loaded:
    path: str
    stamp: tuple[int, int, int] | None
    config: FlowsConfig


_loaded: _Loaded | None = None


def _stamp(path: str) -> tuple[int, int, int] | None:
    """Changes when the file is edited or replaced; one ``stat``, no read."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


def _reload(path: str, stamp: tuple[int, int, int] | None, previous: _Loaded | None) -> FlowsConfig:
    global _loaded
    try:
        config = read_flows_file(path)
    except ImproperlyConfigured as error:
        if previous is None or previous.path != path:
            raise
        # A file broken while running must not stop correlation: keep what was read before.
        # Remembering the broken file's stamp logs this once per change, not once per batch.
        log.error("%s Keeping the flow definitions read before.", error)
        _loaded = replace(previous, stamp=stamp)
        return previous.config
    _loaded = _Loaded(path, stamp, config)
    return config


def flows_config() -> FlowsConfig:
    """The configured flow definitions, with what the AsyncAPI documents declare added
    (``tracing.contracts``: key paths and expected reactions), or the empty configuration."""
    from tracing.contracts import declared_applications, declared_flow_definitions, merged_definitions

    written = written_flows_config()
    applications = declared_applications()
    if not applications:
        return written
    global _merged
    if _merged is None or _merged[0] is not written or _merged[1] is not applications:
        _merged = (written, applications, merged_definitions(written, declared_flow_definitions(applications)))
    return _merged[2]


_merged: tuple[FlowsConfig, Any, FlowsConfig] | None = None


def written_flows_config() -> FlowsConfig:
    """The flow definitions file, or the empty configuration. Called for every correlation
    batch and stuck-flow scan, so an unchanged file costs one ``stat``; a changed one is re-read,
    and a change that breaks it keeps the last good definitions (and logs why)."""
    path = getattr(settings, "FLOWS_FILE", None)
    if not path:
        return EMPTY
    path = str(path)
    loaded, stamp = _loaded, _stamp(path)
    if loaded is not None and loaded.path == path and loaded.stamp == stamp:
        return loaded.config
    return _reload(path, stamp, loaded)
