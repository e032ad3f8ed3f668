"""Learning a flow model from finished flows: plain data in, plain data out, no ORM.

A *step* is what a service did: a service plus an event type or a span name. A flow model is a
directly-follows graph over steps, built along causal edges rather than timestamps, so that the
three concurrent reactions to OrderCreated are three branches, not an arbitrary chain. An
observation with no known cause inside its flow (a business event carrying only a correlation
id) is taken to follow the flow's first observation: in a choreography, that is what everyone
reacts to.

For each transition the model keeps how many flows contained it, the share of flows containing
the source step that went on to the target, and the latency (p50/p95/p99) from source to target.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tracing.latency import nearest_rank


@dataclass(frozen=True, order=True)
class Step:
    service: str
    name: str

    @property
    def label(self) -> str:
        return f"{self.service} · {self.name}" if self.service else self.name


@dataclass(frozen=True)
class Occurrence:
    """One observation of a flow, as the model sees it."""

    id: int
    step: Step
    at: float  # unix seconds
    causes: tuple[int, ...] = ()  # ids of observations of the same flow that caused this one
    # An event is attributed to its CloudEvents source until the span that emitted it arrives:
    # its service may still change, so matching it by name alone is allowed.
    provisional_service: bool = False


@dataclass(frozen=True)
class Transition:
    source: Step
    target: Step
    flows: int  # flows in which target directly followed source
    share: float  # flows / flows containing source
    p50: float  # seconds
    p95: float
    p99: float


@dataclass(frozen=True)
class FlowModel:
    flow_type: str
    flow_count: int
    steps: dict[Step, int] = field(default_factory=dict)  # step → flows containing it
    start_steps: dict[Step, int] = field(default_factory=dict)  # step → flows it started
    transitions: tuple[Transition, ...] = ()

    def successors(self, step: Step) -> list[Transition]:
        return [t for t in self.transitions if t.source == step]


def flow_root(trace: Sequence[Occurrence]) -> Occurrence:
    return min(trace, key=lambda o: (o.at, o.id))


def predecessors(trace: Sequence[Occurrence]) -> dict[int, list[Occurrence]]:
    """For each occurrence id, the occurrences it directly follows (its causes in this flow, or
    the flow's root when it has none)."""
    by_id = {o.id: o for o in trace}
    root = flow_root(trace) if trace else None
    result: dict[int, list[Occurrence]] = {}
    for occurrence in trace:
        causes = [by_id[c] for c in occurrence.causes if c in by_id and c != occurrence.id]
        if not causes and root is not None and occurrence.id != root.id:
            causes = [root]
        result[occurrence.id] = causes
    return result


def flow_transitions(trace: Sequence[Occurrence]) -> dict[tuple[Step, Step], float]:
    """Each distinct (source step, target step) of one flow with its shortest latency; the
    first reaction is the one an expectation waits for."""
    found: dict[tuple[Step, Step], float] = {}
    by_id = {o.id: o for o in trace}
    for occurrence_id, causes in predecessors(trace).items():
        target = by_id[occurrence_id]
        for cause in causes:
            if cause.step == target.step:
                continue  # a step repeating itself (retries, batches) is not a transition
            latency = round(max(0.0, target.at - cause.at), 6)  # float seconds since 1970 carry ~0.1 µs noise
            pair = (cause.step, target.step)
            found[pair] = min(latency, found.get(pair, latency))
    return found


def learn_flow_model(flow_type: str, traces: Iterable[Sequence[Occurrence]]) -> FlowModel:
    """The directly-follows graph of finished flows of one type."""
    step_flows: dict[Step, int] = defaultdict(int)
    start_flows: dict[Step, int] = defaultdict(int)
    pair_latencies: dict[tuple[Step, Step], list[float]] = defaultdict(list)
    flow_count = 0
    for trace in traces:
        if not trace:
            continue
        flow_count += 1
        start_flows[flow_root(trace).step] += 1
        for step in {o.step for o in trace}:
            step_flows[step] += 1
        for pair, latency in flow_transitions(trace).items():
            pair_latencies[pair].append(latency)
    transitions = tuple(
        Transition(
            source=source,
            target=target,
            flows=len(latencies),
            share=len(latencies) / step_flows[source],
            p50=nearest_rank(latencies, 0.50),
            p95=nearest_rank(latencies, 0.95),
            p99=nearest_rank(latencies, 0.99),
        )
        for (source, target), latencies in sorted(pair_latencies.items())
    )
    return FlowModel(flow_type, flow_count, dict(step_flows), dict(start_flows), transitions)


# --- Plain-JSON form (how a model is stored and sent to the page) ----------------------------


def step_to_dict(step: Step) -> dict[str, str]:
    return {"service": step.service, "name": step.name}


def step_from_dict(data: dict[str, Any]) -> Step:
    return Step(str(data.get("service", "")), str(data["name"]))


def model_to_dict(model: FlowModel) -> dict[str, Any]:
    return {
        "flow_type": model.flow_type,
        "flow_count": model.flow_count,
        "steps": [{**step_to_dict(s), "flows": n, "starts": model.start_steps.get(s, 0)} for s, n in sorted(model.steps.items())],
        "transitions": [
            {
                "source": step_to_dict(t.source),
                "target": step_to_dict(t.target),
                "flows": t.flows,
                "share": round(t.share, 4),
                "p50": t.p50,
                "p95": t.p95,
                "p99": t.p99,
            }
            for t in model.transitions
        ],
    }


def model_from_dict(data: dict[str, Any]) -> FlowModel:
    steps = {step_from_dict(s): int(s["flows"]) for s in data.get("steps", [])}
    starts = {step_from_dict(s): int(s["starts"]) for s in data.get("steps", []) if s.get("starts")}
    transitions = tuple(
        Transition(
            source=step_from_dict(t["source"]),
            target=step_from_dict(t["target"]),
            flows=int(t["flows"]),
            share=float(t["share"]),
            p50=float(t["p50"]),
            p95=float(t["p95"]),
            p99=float(t["p99"]),
        )
        for t in data.get("transitions", [])
    )
    return FlowModel(str(data.get("flow_type", "")), int(data.get("flow_count", 0)), steps, starts, transitions)
