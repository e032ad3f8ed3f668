"""Flow configuration: the ``CHOREOSCOPE_FLOWS`` YAML file naming flow types.

Example::

    flows:
      - type: order
        key_paths: [data.order_id, order.id]   # CloudEvent data field, span attribute
        key_prefix: "order-"                   # optional: 1042 becomes order-1042
        start: [OrderCreated]
        end: [ShipmentPrepared]                # the flow completes when one of these is seen
        errors: [PaymentFailed]                # optional: these events fail the flow

Without a file, flows still form: keys come from the CloudEvents ``correlationid`` extension and
``messaging.message.conversation_id``, a flow's type is its root event's type, and any event
whose type ends in ``Failed``/``Error`` fails its flow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class FlowType:
    type: str
    key_paths: tuple[str, ...] = ()
    key_prefix: str = ""
    start: frozenset[str] = frozenset()
    end: frozenset[str] = frozenset()
    errors: frozenset[str] = frozenset()

    def mentions(self, event_type: str) -> bool:
        return event_type in self.start or event_type in self.end or event_type in self.errors


@dataclass(frozen=True)
class FlowsConfig:
    types: tuple[FlowType, ...] = field(default_factory=tuple)

    def type_named(self, name: str) -> FlowType | None:
        return next((flow_type for flow_type in self.types if flow_type.type == name), None)


EMPTY = FlowsConfig()


def _names(entry: dict[str, Any], key: str, where: str) -> frozenset[str]:
    value = entry.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ImproperlyConfigured(f"{where}: '{key}' must be a list of event types.")
    return frozenset(value)


def parse_flow_type(entry: Any, where: str) -> FlowType:
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str) or not entry["type"]:
        raise ImproperlyConfigured(f"{where}: each flow needs a non-empty 'type'.")
    # ``expect`` and ``deadline`` declare what a flow waits for; stuck detection reads them.
    unknown = set(entry) - {"type", "key_paths", "key_prefix", "start", "end", "errors", "expect", "deadline"}
    if unknown:
        allowed = "type, key_paths, key_prefix, start, end, errors, expect, deadline"
        raise ImproperlyConfigured(f"{where}: unknown keys {sorted(unknown)}; use {allowed}.")
    key_paths = entry.get("key_paths", [])
    if isinstance(key_paths, str):
        key_paths = [key_paths]
    if not isinstance(key_paths, list) or not all(isinstance(path, str) and path for path in key_paths):
        raise ImproperlyConfigured(f"{where}: 'key_paths' must be a list of paths such as data.order_id or order.id.")
    prefix = entry.get("key_prefix", "")
    if not isinstance(prefix, str):
        raise ImproperlyConfigured(f"{where}: 'key_prefix' must be a string.")
    return FlowType(
        type=entry["type"],
        key_paths=tuple(key_paths),
        key_prefix=prefix,
        start=_names(entry, "start", where),
        end=_names(entry, "end", where),
        errors=_names(entry, "errors", where),
    )


def parse_flows_config(text: str, where: str = "CHOREOSCOPE_FLOWS") -> FlowsConfig:
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise ImproperlyConfigured(f"{where} is not valid YAML: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("flows", []), list):
        raise ImproperlyConfigured(f"{where}: expected a mapping with a 'flows' list.")
    types = tuple(parse_flow_type(entry, f"{where} flows[{index}]") for index, entry in enumerate(document.get("flows", [])))
    names = [flow_type.type for flow_type in types]
    if len(names) != len(set(names)):
        raise ImproperlyConfigured(f"{where}: flow types must be unique, got {names}.")
    return FlowsConfig(types)


@cache
def _load(path: str) -> FlowsConfig:
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ImproperlyConfigured(f"CHOREOSCOPE_FLOWS={path!r} cannot be read: {error}") from None
    return parse_flows_config(text, f"CHOREOSCOPE_FLOWS={path}")


def flows_config() -> FlowsConfig:
    """The configured flow types (read once per process), or the empty configuration."""
    path = getattr(settings, "FLOWS_FILE", None)
    return _load(str(path)) if path else EMPTY
