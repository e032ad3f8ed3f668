"""Prometheus text exposition (format 0.0.4): the registry behind ``/metrics``.

Metrics belong to the apps that own them; this module only holds and renders them, and imports
no app. An app declares its counters as module-level ``Counter`` objects (per process: Prometheus
sums them across instances) and its gauges in ``<app>/metrics.py`` as a function
``gauges() -> Iterable[Gauge]``, read at each scrape. ``render_metrics()`` renders the counters
counted so far, then the gauges of every installed app that has a ``metrics`` module, in
``INSTALLED_APPS`` order.
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import import_module

from django.apps import apps
from django.utils.module_loading import module_has_submodule

Labels = tuple[tuple[str, str], ...]

_lock = threading.Lock()
_counted: Tally[tuple[str, Labels]] = Tally()
_counter_help: dict[str, str] = {}


@dataclass(frozen=True)
class Counter:
    """A per-process counter; a label set appears on ``/metrics`` once it has been counted."""

    name: str
    help: str

    def __post_init__(self) -> None:
        _counter_help[self.name] = self.help

    def add(self, labels: Mapping[str, str], amount: int = 1) -> None:
        key = (self.name, tuple(sorted(labels.items())))
        with _lock:
            _counted[key] += amount


@dataclass(frozen=True)
class Gauge:
    """A value read at scrape time: one sample per label set (no labels: one sample)."""

    name: str
    help: str
    samples: Sequence[tuple[Mapping[str, str], float | int]]


def _escape(value: str) -> str:
    # Exposition format: backslash, double quote and line feed are escaped in label values.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    rendered = ",".join(f'{key}="{_escape(value)}"' for key, value in pairs)
    return "{" + rendered + "}" if rendered else ""


def _counter_lines() -> Iterator[str]:
    with _lock:
        snapshot = dict(_counted)
    for name in sorted({name for name, _ in snapshot}):
        yield f"# HELP {name} {_counter_help.get(name, name)}"
        yield f"# TYPE {name} counter"
        for (metric, labels), value in sorted(snapshot.items()):
            if metric == name:
                yield f"{name}{_labels(labels)} {value}"


def _gauge_lines(gauge: Gauge) -> Iterator[str]:
    yield f"# HELP {gauge.name} {gauge.help}"
    yield f"# TYPE {gauge.name} gauge"
    for labels, value in gauge.samples:
        yield f"{gauge.name}{_labels(labels.items())} {value}"


def installed_gauge_sources() -> list[Callable[[], Iterable[Gauge]]]:
    """``gauges`` of each installed app's ``metrics`` module, in ``INSTALLED_APPS`` order."""
    sources = []
    for config in apps.get_app_configs():
        if module_has_submodule(config.module, "metrics"):
            module = import_module(f"{config.name}.metrics")
            if hasattr(module, "gauges"):
                sources.append(module.gauges)
    return sources


def render_metrics() -> str:
    lines = list(_counter_lines())
    for gauges in installed_gauge_sources():
        for gauge in gauges():
            lines.extend(_gauge_lines(gauge))
    return "\n".join(lines) + "\n"
