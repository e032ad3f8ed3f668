"""The choreography as observed: producer → event type → consumer, with each edge's count,
rate, send → process latency (p50, p95) and error share over a window, and how far each
consumer's queue is behind.

``build_topology`` is a pure function over plain rows; ``observed_topology`` reads those rows
for a window. A producer is the service of an event; a consumer is any other service with an
observation directly caused by that event (a causal edge from the event). A consumer that
reacts to one event several times (a span and the event it emits) counts once, at its earliest
reaction.

Send → process, on a consumer edge: from the event's time (when its producer sent it) to the
start of the consumer's earliest reaction (its processing span, or the event it emitted): time in
the queue plus the wait for a worker. The two times come from two services' clocks; a reaction
stamped before its event counts as immediate.

Services also call each other (``tracing.interactions``): a call edge goes straight from the
calling service to the called one, with the calls' count, rate, p95 duration (as the caller saw
it) and error share. Every edge says its ``style``: ``event`` (producer → type → consumer) or
``call`` (caller → callee).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import F
from django.utils import timezone

from tracing.interactions import Step, interaction_style
from tracing.latency import percentile
from tracing.queue_lag import LagReadings

# A window is read from at most this many events and as many reactions, newest first, so that
# a 24 h window on a busy installation answers in bounded time (rates then cover the rows read).
ROW_LIMIT = 50_000

WINDOWS: dict[str, int] = {"5m": 300, "15m": 900, "1h": 3600, "24h": 86_400}
DEFAULT_WINDOW = "15m"


@dataclass(frozen=True, slots=True)
class EmittedEvent:
    service: str
    type: str
    failed: bool = False


@dataclass(frozen=True, slots=True)
class Reaction:
    event_id: int
    producer: str
    type: str
    consumer: str
    latency_ns: int
    failed: bool = False


@dataclass(frozen=True, slots=True)
class Call:
    caller: str
    callee: str
    duration_ns: int
    failed: bool = False


def service_node(name: str) -> str:
    return f"service:{name}"


def event_type_node(name: str) -> str:
    return f"type:{name}"


def parse_window(raw: str | None) -> tuple[str, int]:
    """``"15m"`` → ``("15m", 900)``; ``ValueError`` with the accepted values otherwise."""
    name = raw or DEFAULT_WINDOW
    if name not in WINDOWS:
        raise ValueError(f"window must be one of {', '.join(WINDOWS)}; got {name!r}.")
    return name, WINDOWS[name]


def earliest_reactions(reactions: Iterable[Reaction]) -> list[Reaction]:
    """One reaction per (event, consuming service): the earliest; failed if any of them failed."""
    chosen: dict[tuple[int, str], Reaction] = {}
    failed: set[tuple[int, str]] = set()
    for reaction in reactions:
        key = (reaction.event_id, reaction.consumer)
        if reaction.failed:
            failed.add(key)
        if key not in chosen or reaction.latency_ns < chosen[key].latency_ns:
            chosen[key] = reaction
    return [Reaction(r.event_id, r.producer, r.type, r.consumer, r.latency_ns, (key in failed)) for key, r in chosen.items()]


def _rounded_ms(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


def _edge(
    source: str, target: str, count: int, errors: int, window_seconds: float, latencies_ms: list[float], style: str = "event"
) -> dict[str, Any]:
    return {
        "source": source,
        "target": target,
        "style": style,
        "count": count,
        "rate": round(count / window_seconds, 4) if window_seconds > 0 else 0.0,
        "p50_ms": _rounded_ms(percentile(latencies_ms, 0.5)),
        "p95_ms": _rounded_ms(percentile(latencies_ms, 0.95)),
        "error_share": round(errors / count, 4) if count else 0.0,
    }


def build_topology(
    events: Iterable[EmittedEvent], reactions: Iterable[Reaction], window_seconds: float, calls: Iterable[Call] = ()
) -> dict[str, Any]:
    """The graph in the ``GET /api/topology`` shape, nodes and edges sorted for stable output."""
    produced: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for event in events:
        tally = produced[(event.service, event.type)]
        tally[0] += 1
        tally[1] += event.failed
    consumed: dict[tuple[str, str], list[Reaction]] = defaultdict(list)
    for reaction in earliest_reactions(reactions):
        consumed[(reaction.type, reaction.consumer)].append(reaction)
        # A reaction whose event fell outside the row limit still names its producer.
        produced.setdefault((reaction.producer, reaction.type), [0, 0])

    called: dict[tuple[str, str], list[Call]] = defaultdict(list)
    for call in calls:
        called[(call.caller, call.callee)].append(call)

    services = {service for service, _ in produced} | {consumer for _, consumer in consumed}
    services |= {name for pair in called for name in pair}
    types = {event_type for _, event_type in produced} | {event_type for event_type, _ in consumed}
    nodes = [{"id": service_node(name), "kind": "service", "name": name} for name in sorted(services)]
    nodes += [{"id": event_type_node(name), "kind": "event_type", "name": name} for name in sorted(types)]

    edges = [
        _edge(service_node(service), event_type_node(event_type), count, errors, window_seconds, [])
        for (service, event_type), (count, errors) in sorted(produced.items())
    ]
    for (event_type, consumer), group in sorted(consumed.items()):
        # Clocks disagree between services; a reaction "before" its event counts as immediate.
        latencies = [max(0, r.latency_ns) / 1e6 for r in group]
        errors = sum(r.failed for r in group)
        edges.append(_edge(event_type_node(event_type), service_node(consumer), len(group), errors, window_seconds, latencies))
    for (caller, callee), made in sorted(called.items()):
        durations = [max(0, call.duration_ns) / 1e6 for call in made]
        errors = sum(call.failed for call in made)
        edges.append(_edge(service_node(caller), service_node(callee), len(made), errors, window_seconds, durations, "call"))
    return {"nodes": nodes, "edges": edges}


def lag_on_map(nodes: Iterable[dict[str, Any]], lag: LagReadings) -> dict[str, Any]:
    """The queue lag readings beside the map: each names the service node it belongs to, or
    ``None`` when no service of that name is on the map (a tap, a consumer quiet in the window)."""
    services = {node["id"] for node in nodes if node["kind"] == "service"}
    rows = [
        {
            "bus": reading.bus,
            "destination": reading.destination,
            "consumer": reading.consumer,
            "node": service_node(reading.service) if service_node(reading.service) in services else None,
            "waiting": reading.waiting,
            "unacknowledged": reading.unacknowledged,
        }
        for reading in lag.readings
    ]
    return {"lag": rows, "lag_unavailable": list(lag.unavailable)}


def pulses(events: Iterable[EmittedEvent], reactions: Iterable[Reaction], calls: Iterable[Call] = ()) -> list[dict[str, Any]]:
    """What just happened, as counts along graph edges: what the service map animates."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for event in events:
        counts[(service_node(event.service), event_type_node(event.type))] += 1
    for reaction in earliest_reactions(reactions):
        counts[(event_type_node(reaction.type), service_node(reaction.consumer))] += 1
    for call in calls:
        counts[(service_node(call.caller), service_node(call.callee))] += 1
    return [{"source": source, "target": target, "count": n} for (source, target), n in sorted(counts.items())]


# --- Reading the rows ----------------------------------------------------------------------------


def _reaction_rows(queryset: Any) -> list[Reaction]:
    rows = queryset.values_list(
        "source_id",
        "source__service",
        "source__name",
        "target__service",
        "target__start_ns",
        "source__start_ns",
        "target__status",
    )
    return [
        Reaction(event_id, producer, event_type, consumer, target_start - source_start, status == "error")
        for event_id, producer, event_type, consumer, target_start, source_start, status in rows
        if consumer != producer
    ]


def _call_rows(queryset: Any) -> list[Call]:
    """Calls among parent/child span edges between two services. Span kinds decide most of them;
    the attributes are read only for the pairs whose kinds say nothing."""
    rows = queryset.values_list(
        "source_id", "target_id", "source__service", "target__service", "source__span_kind", "target__span_kind",
        "source__start_ns", "source__end_ns", "target__start_ns", "target__end_ns", "source__status", "target__status",
    )  # fmt: skip
    rows = list(rows)
    undecided = {source for source, _, _, _, kind, other, *_ in rows if kind in (0, 1) and other in (0, 1)}
    undecided |= {target for _, target, _, _, kind, other, *_ in rows if kind in (0, 1) and other in (0, 1)}
    attributes = _attributes_of(undecided)
    calls = []
    for source, target, caller, callee, kind, other, start, end, t_start, t_end, status, t_status in rows:
        cause = Step(source, caller, "span", kind, start, end, attributes.get(source, {}))
        effect = Step(target, callee, "span", other, t_start, t_end, attributes.get(target, {}))
        if interaction_style(cause, effect, "child_of") != "call":
            continue
        # The caller's span is the call as the caller saw it; a server span alone is all we have otherwise.
        duration = (end or start) - start if kind == 3 else (t_end or t_start) - t_start
        calls.append(Call(caller, callee, duration, "error" in (status, t_status)))
    return calls


def _attributes_of(observation_ids: set[int]) -> dict[int, dict[str, Any]]:
    from tracing.models import Observation

    ids = sorted(observation_ids)
    found: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ids), 5_000):  # SQLite bounds the parameters of one statement
        rows = Observation.objects.filter(id__any=ids[start : start + 5_000]).values_list("id", "attributes")
        found.update((obs_id, attributes if isinstance(attributes, dict) else {}) for obs_id, attributes in rows)
    return found


def observed_calls(since: datetime) -> list[Call]:
    from tracing.models import Edge, Observation

    spans = Observation.Kind.SPAN
    edges = Edge.objects.filter(kind=Edge.Kind.CHILD_OF, source__kind=spans, target__kind=spans, source__received_at__gte=since)
    edges = edges.exclude(source__service=F("target__service"))
    return _call_rows(edges.order_by("-id")[:ROW_LIMIT])


def observed_topology(window_seconds: int, now: datetime | None = None) -> dict[str, Any]:
    """The topology of events received in the last ``window_seconds``."""
    events, reactions = window_observations(window_seconds, now)
    since = (now or timezone.now()) - timedelta(seconds=window_seconds)
    return build_topology(events, reactions, window_seconds, observed_calls(since))


def window_observations(window_seconds: int, now: datetime | None = None) -> tuple[list[EmittedEvent], list[Reaction]]:
    """The events received in the last ``window_seconds`` and the reactions to them (the rows
    the map is built from, and what ``tracing.contracts`` compares with the declared map)."""
    from tracing.models import Edge, Observation

    since = (now or timezone.now()) - timedelta(seconds=window_seconds)
    event_rows = (
        Observation.objects.filter(kind=Observation.Kind.EVENT, received_at__gte=since)
        .order_by("-received_at")
        .values_list("service", "name", "status")[:ROW_LIMIT]
    )
    events = [EmittedEvent(service, name, status == "error") for service, name, status in event_rows]
    reactions = _reaction_rows(
        Edge.objects.filter(source__kind=Observation.Kind.EVENT, source__received_at__gte=since).order_by("-id")[:ROW_LIMIT]
    )
    return events, reactions


def batch_pulses(observation_ids: list[int]) -> list[dict[str, Any]]:
    """Pulses for one correlated batch: its events, and reactions that touch its observations."""
    from tracing.models import Edge, Observation

    event_rows = Observation.objects.filter(id__any=observation_ids, kind=Observation.Kind.EVENT).values_list("service", "name")
    events = [EmittedEvent(service, name) for service, name in event_rows]
    # Two index lookups, not one OR over both columns (which both SQLite and PostgreSQL scan).
    reactions = _reaction_rows(Edge.objects.filter(target_id__any=observation_ids, source__kind=Observation.Kind.EVENT))
    later = Edge.objects.filter(source_id__any=observation_ids, source__kind=Observation.Kind.EVENT)
    reactions += _reaction_rows(later.exclude(target_id__any=observation_ids))
    # A call pulses once both its spans are in (whichever of the two came in this batch).
    spans = Observation.Kind.SPAN
    child_of = Edge.objects.filter(kind=Edge.Kind.CHILD_OF, source__kind=spans, target__kind=spans)
    child_of = child_of.exclude(source__service=F("target__service"))
    calls = _call_rows(child_of.filter(target_id__any=observation_ids))
    calls += _call_rows(child_of.filter(source_id__any=observation_ids).exclude(target_id__any=observation_ids))
    return pulses(events, reactions, calls)
