"""The registry behind ``/metrics`` (Prometheus text format 0.0.4, rendered by ``prometheus_client``).

Metrics belong to the apps that own them; this module only declares, holds and renders them, and
imports no app. An app's ``<app>/metrics.py`` declares two kinds of series:

- **in-memory series** (counters, histograms, per-process gauges), made with ``counter``,
  ``histogram`` and ``process_gauge`` below and moved on the hot path: an increment, no I/O;
- **scrape-time gauges**, for what the database (or a broker) already knows: a function
  ``gauges() -> Iterable[Metric]`` in the module, called at each scrape with bounded queries.

Several processes (``manage.py serve --workers N``, Celery workers, taps) each count in their own
memory. With ``PROMETHEUS_MULTIPROC_DIR`` set (``settings.METRICS_MULTIPROC_DIR``),
``prometheus_client`` keeps every process's in-memory series in files there instead, and a scrape
of any web process adds them up; without it, a scrape shows the counts of the process that
answers. Scrape-time gauges come from the database, so every process reports the same values.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from importlib import import_module

from django.apps import apps
from django.conf import settings
from django.utils.module_loading import module_has_submodule
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

# The text format shows a ``_created`` timestamp beside every counter and histogram as a gauge of
# its own; Prometheus does not read it from this format, so it would be clutter.
disable_created_metrics()
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Every in-memory series of every app, in this process.
REGISTRY = CollectorRegistry(auto_describe=True)
GaugeSource = Callable[[], Iterable[Metric]]


def counter(name: str, help: str, labels: Sequence[str] = ()) -> Counter:
    """A counter; prometheus_client exposes ``name`` with ``_total`` (given or not)."""
    return Counter(name, help, labelnames=labels, registry=REGISTRY)


def histogram(name: str, help: str, labels: Sequence[str], buckets: Sequence[float]) -> Histogram:
    return Histogram(name, help, labelnames=labels, buckets=buckets, registry=REGISTRY)


def process_gauge(name: str, help: str, labels: Sequence[str] = ()) -> Gauge:
    """A gauge each process moves (e.g. its open sockets); across processes the live ones are summed."""
    return Gauge(name, help, labelnames=labels, registry=REGISTRY, multiprocess_mode="livesum")


def gauge_family(name: str, help: str, labels: Sequence[str], samples: Iterable[tuple[Sequence[str], float]]) -> Metric:
    """A scrape-time gauge: one sample per label-value tuple (``()`` when it has no labels)."""
    family = GaugeMetricFamily(name, help, labels=list(labels))
    for values, value in samples:
        family.add_metric(list(values), value)
    return family


def installed_gauge_sources() -> list[tuple[str, GaugeSource]]:
    """``(app label, gauges)`` of each installed app's ``metrics`` module, in ``INSTALLED_APPS`` order.
    Importing the modules also declares every app's in-memory series before the first scrape."""
    sources = []
    for config in apps.get_app_configs():
        if module_has_submodule(config.module, "metrics"):
            module = import_module(f"{config.name}.metrics")
            if hasattr(module, "gauges"):
                sources.append((config.label, module.gauges))
    return sources


class ScrapeTimeGauges(Collector):
    """Calls every app's ``gauges()``; a source that fails (the database is down) is logged and
    reported as failed instead of failing the whole scrape, so the counters still arrive."""

    def __init__(self, sources: list[tuple[str, GaugeSource]]) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        seconds, failed = [], []
        for label, source in self.sources:
            started = time.perf_counter()
            try:
                yield from list(source())
                failed.append(((label,), 0.0))
            except Exception:  # one broken source must not hide the others
                log.exception("metrics of %s could not be read", label)
                failed.append(((label,), 1.0))
            seconds.append(((label,), time.perf_counter() - started))
        yield gauge_family(
            "choreoscope_metrics_source_seconds", "Time the last scrape spent reading each app's gauges.", ["app"], seconds
        )
        yield gauge_family(
            "choreoscope_metrics_source_failed", "1 when an app's gauges could not be read at the last scrape.", ["app"], failed
        )


class InMemorySeries(Collector):
    """This process's in-memory series (one process, no shared directory)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


LIVE_GAUGE_FILE = re.compile(r"gauge_live\w+_(\d+)\.db$")


def forget_dead_processes(directory: str) -> None:
    """Drop the per-process gauges (open sockets) of processes that ended without saying so
    (``kill -9``), so that their last values stop counting; their counters stay (totals never
    go down)."""
    for path in glob.glob(os.path.join(directory, "gauge_live*_*.db")):
        match = LIVE_GAUGE_FILE.search(path)
        if match and not process_alive(int(match.group(1))):
            multiprocess.mark_process_dead(int(match.group(1)), directory)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, under another user
    return True


def scrape_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    sources = installed_gauge_sources()
    directory = settings.METRICS_MULTIPROC_DIR
    if directory:
        forget_dead_processes(directory)
        multiprocess.MultiProcessCollector(registry, path=directory)
    else:
        registry.register(InMemorySeries())
    registry.register(ScrapeTimeGauges(sources))
    return registry


def render_metrics() -> bytes:
    return generate_latest(scrape_registry())
