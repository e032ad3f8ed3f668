"""The pure core of correlation: plain functions over plain data, no database.

Each observation is reduced to a ``Linkage``: the *anchors* it can be referred to by (its span,
its event id, the message it produced) and the *references* it makes to anchors of others (its
parent span, its links, the span that emitted it, the event that caused it, the message it
consumed), plus its own business key. ``tracing.services`` stores anchors and resolves
references into cause → effect edges (or keeps them pending until their target arrives);
``assign_flows`` then decides which flows each observation serves, business keys being the
boundaries between flows, and the summary functions here describe each flow.
"""

from __future__ import annotations

import hashlib
import heapq
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from tracing.flowconfig import FlowsConfig, FlowType
from tracing.records import SPAN_KIND_PRODUCER

CAUSED_BY, EMITTED_BY, CHILD_OF, FOLLOWS_FROM, DELIVERS = "caused_by", "emitted_by", "child_of", "follows_from", "delivers"

# Messaging semantic conventions: ``messaging.operation.type`` (current) and the older
# ``messaging.operation``. ``publish``/``deliver`` are the pre-1.26 names of ``send``/``process``.
PRODUCER_OPERATIONS = frozenset({"create", "send", "publish"})
CONSUMER_OPERATIONS = frozenset({"receive", "process", "deliver", "settle"})
KEY_ATTRIBUTES = ("correlationid", "messaging.message.conversation_id")
ERROR_EVENT = re.compile(r"(error|fail|failed|failure)$", re.IGNORECASE)
MAX_ANCHOR_VALUE = 200
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ObservationLike(Protocol):
    @property
    def kind(self) -> str: ...  # read-only: records narrow it to "span" | "event"

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    span_kind: int
    event_source: str
    event_id: str
    attributes: dict[str, Any]
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Reference:
    anchor: str
    kind: str  # an edge kind
    anchor_is_cause: bool = True  # False: this observation is the cause, the anchored one the effect


@dataclass(frozen=True, slots=True)
class Linkage:
    anchors: tuple[str, ...]
    references: tuple[Reference, ...]
    business_key: str = ""


def _bounded(value: str) -> str:
    # Anchor names sit in a unique index; a digest keeps long identifiers narrow and exact.
    if len(value) <= MAX_ANCHOR_VALUE:
        return value
    return "#" + hashlib.sha256(value.encode()).hexdigest()


def span_anchor(trace_id: str, span_id: str) -> str:
    return f"span:{trace_id}:{span_id}"


def event_id_anchor(event_id: str) -> str:
    return f"evid:{_bounded(event_id)}"


def event_anchor(source: str, event_id: str) -> str:
    return "ev:" + hashlib.sha256(f"{source}\n{event_id}".encode()).hexdigest()[:40]


def message_anchor(message_id: str) -> str:
    return f"msg:{_bounded(message_id)}"


def attribute_text(value: Any) -> str:
    """An attribute or data value as the text anchors compare: structures have none, booleans
    are spelled as JSON spells them, surrounding blanks do not count."""
    if value is None or isinstance(value, dict | list):
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value).strip()


def value_at(path: str, attributes: Mapping[str, Any], detail: Mapping[str, Any]) -> str:
    """A key path's value: ``data.a.b`` walks an event's data; anything else is an attribute
    (span attribute or CloudEvents extension), whose names contain dots themselves."""
    if path.startswith("data."):
        node: Any = detail.get("data")
        for part in path[5:].split("."):
            if not isinstance(node, dict):
                return ""
            node = node.get(part)
        return attribute_text(node)
    name = path.removeprefix("attributes.")
    return attribute_text(attributes.get(name))


def business_key(obs: ObservationLike, config: FlowsConfig) -> str:
    attributes, detail = obs.attributes or {}, obs.detail or {}
    for name in KEY_ATTRIBUTES:
        value = attribute_text(attributes.get(name))
        if value:
            return value[:255]
    for flow_type in config.types:
        for path in flow_type.key_paths:
            value = value_at(path, attributes, detail)
            if value:
                return (flow_type.key_prefix + value)[:255]
    return ""


def messaging_side(span_kind: int, attributes: Mapping[str, Any]) -> str:
    """``producer`` or ``consumer``: which end of a message a span stands at."""
    operation = attribute_text(attributes.get("messaging.operation.type") or attributes.get("messaging.operation")).lower()
    if operation in PRODUCER_OPERATIONS:
        return "producer"
    if operation in CONSUMER_OPERATIONS:
        return "consumer"
    return "producer" if span_kind == SPAN_KIND_PRODUCER else "consumer"


def link_contexts(detail: Mapping[str, Any]) -> list[tuple[str, str]]:
    contexts = []
    for link in detail.get("links") or []:
        if isinstance(link, dict):
            trace_id = attribute_text(link.get("trace_id") or link.get("traceId")).lower()
            span_id = attribute_text(link.get("span_id") or link.get("spanId")).lower()
            if trace_id and span_id:
                contexts.append((trace_id, span_id))
    return contexts


def span_linkage(obs: ObservationLike) -> tuple[list[str], list[Reference]]:
    anchors = [span_anchor(obs.trace_id, obs.span_id)]
    references = []
    if obs.parent_span_id:
        references.append(Reference(span_anchor(obs.trace_id, obs.parent_span_id), CHILD_OF))
    references += [Reference(span_anchor(trace, span), FOLLOWS_FROM) for trace, span in link_contexts(obs.detail or {})]
    attributes = obs.attributes or {}
    side = messaging_side(obs.span_kind, attributes)
    event_id = attribute_text(attributes.get("cloudevents.event_id"))
    if event_id:
        source = attribute_text(attributes.get("cloudevents.event_source"))
        anchor = event_anchor(source, event_id) if source else event_id_anchor(event_id)
        # A producer span emits the event it names; a consumer span is delivered it.
        if side == "producer":
            references.append(Reference(anchor, EMITTED_BY, anchor_is_cause=False))
        else:
            references.append(Reference(anchor, DELIVERS))
    message_id = attribute_text(attributes.get("messaging.message.id"))
    if message_id:
        if side == "producer":
            anchors.append(message_anchor(message_id))
        else:
            references.append(Reference(message_anchor(message_id), DELIVERS))
    return anchors, references


def event_linkage(obs: ObservationLike) -> tuple[list[str], list[Reference]]:
    anchors = [event_id_anchor(obs.event_id), event_anchor(obs.event_source, obs.event_id)]
    references = []
    causation = attribute_text((obs.attributes or {}).get("causationid"))
    if causation and causation != obs.event_id:
        references.append(Reference(event_id_anchor(causation), CAUSED_BY))
    if obs.trace_id and obs.span_id:
        references.append(Reference(span_anchor(obs.trace_id, obs.span_id), EMITTED_BY))
    return anchors, references


def linkage(obs: ObservationLike, config: FlowsConfig) -> Linkage:
    """Everything correlation needs to know about one observation."""
    anchors, references = span_linkage(obs) if obs.kind == "span" else event_linkage(obs)
    # A business key joins nothing by itself: flows are made of keys (``assign_flows``).
    return Linkage(tuple(dict.fromkeys(anchors)), tuple(dict.fromkeys(references)), business_key(obs, config))


def edge_between(owner: int, observation: int, reference: Reference) -> tuple[int, int, str] | None:
    """The cause → effect edge a resolved reference makes, or None (a self-reference)."""
    if owner == observation:
        return None
    if reference.anchor_is_cause:
        return owner, observation, reference.kind
    return observation, owner, reference.kind


# --- Which flows an observation serves -----------------------------------------------------------

# A flow is named by a label: ("key", business key) for the flow of a key, or ("keyless", the
# smallest unit of a group of keyless units) for a transaction nobody gave a key.
FlowLabel = tuple[str, str]
CausalEdge = tuple[int, int, str]  # cause, effect, kind


@dataclass(frozen=True, slots=True)
class Member:
    """What ``assign_flows`` needs of an observation: its id, its unit and its own key."""

    id: int
    unit: str
    key: str = ""


def unit_of(observation_id: int, trace_id: str) -> str:
    """A trace is one transaction: its spans and the events emitted within it (their
    ``traceparent``) are one unit, even when the span that ties them never arrives. An event
    outside any trace is a unit of its own."""
    return f"t:{trace_id}" if trace_id else f"o:{observation_id}"


def _nearest_keys(start: int, step: Mapping[int, list[int]], key_of: Mapping[int, str], nearest_only: bool) -> set[str]:
    """Own keys met walking from ``start`` along ``step``, never past a keyed observation:
    those of the nearest level that has any (``nearest_only``), else all of them."""
    seen, level, found = {start}, [start], set[str]()
    while level and not (nearest_only and found):
        following = []
        for node in level:
            for other in step.get(node, ()):
                if other in seen:
                    continue
                seen.add(other)
                if key_of.get(other):
                    found.add(key_of[other])
                else:
                    following.append(other)
        level = following
    return found


def _keys_in_keyed_unit(
    obs: int, causes: Mapping[int, list[int]], effects: Mapping[int, list[int]], key_of: Mapping[int, str]
) -> set[str]:
    if key_of.get(obs):
        return {key_of[obs]}
    return _nearest_keys(obs, causes, key_of, nearest_only=True) or _nearest_keys(obs, effects, key_of, nearest_only=False)


def _reached_keys(
    unit: str, neighbours: Mapping[str, list[tuple[int, str]]], keyed_units: set[str], keys: Mapping[int, frozenset[str]]
) -> set[str]:
    """Keys of the keyed-unit observations reached from ``unit`` along ``neighbours`` (causes or
    effects across units), passing through keyless units only."""
    seen, stack, found = {unit}, [unit], set[str]()
    while stack:
        for obs, other in neighbours.get(stack.pop(), ()):
            if other in keyed_units:
                found |= keys.get(obs, frozenset())
            elif other not in seen:
                seen.add(other)
                stack.append(other)
    return found


def assign_flows(members: Iterable[Member], edges: Iterable[CausalEdge]) -> dict[int, frozenset[FlowLabel]]:
    """The flows every observation serves, from the observations and the edges between them.

    1. An observation with its own business key K serves K's flow alone.
    2. A keyless observation in a unit that holds keys serves the key of its nearest keyed cause
       inside the unit; else the keys of its keyed effects inside the unit (not past a keyed
       one); else every key of the unit (a nightly job walking many orders: its root serves all
       of them, a step under the span of order 5 serves order 5).
    3. A keyless unit serves the keys of the keyed-unit observations that cause it across units
       (links, causation, delivered messages), reached through keyless units only; without
       causes, those of its effects reached the same way (a batch consumer linking the producers
       of three orders serves the three).
    4. Keyless units still without a key, joined to each other by any relation, are one
       keyless flow.

    Keys are boundaries: two keys never make one flow, an observation serving several flows is
    a shared step of each. The result is a function of the set of members and edges alone (no
    order, no earlier state), which is what makes correlation independent of arrival order."""
    member_list = list(members)
    unit_by_obs = {m.id: m.unit for m in member_list}
    key_of = {m.id: m.key for m in member_list if m.key}
    by_unit: dict[str, list[int]] = defaultdict(list)
    for m in member_list:
        by_unit[m.unit].append(m.id)
    causes: dict[int, list[int]] = defaultdict(list)
    effects: dict[int, list[int]] = defaultdict(list)
    units_upstream: dict[str, list[tuple[int, str]]] = defaultdict(list)
    units_downstream: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for source, target, _ in sorted(set(edges)):
        source_unit, target_unit = unit_by_obs.get(source), unit_by_obs.get(target)
        if source_unit is None or target_unit is None or source == target:
            continue
        if source_unit == target_unit:
            causes[target].append(source)
            effects[source].append(target)
        else:
            units_upstream[target_unit].append((source, source_unit))
            units_downstream[source_unit].append((target, target_unit))
    keyed_units = {unit for unit, ids in by_unit.items() if any(obs in key_of for obs in ids)}
    keys: dict[int, frozenset[str]] = {}
    for unit in keyed_units:
        everything = frozenset(key_of[obs] for obs in by_unit[unit] if obs in key_of)
        if len(everything) == 1:  # the common case, a trace of one order: everything serves its key
            keys.update(dict.fromkeys(by_unit[unit], everything))
            continue
        for obs in by_unit[unit]:
            keys[obs] = frozenset(_keys_in_keyed_unit(obs, causes, effects, key_of)) or everything
    keyless = sorted(set(by_unit) - keyed_units)
    result: dict[int, frozenset[FlowLabel]] = {obs: frozenset(("key", key) for key in found) for obs, found in keys.items()}
    unkeyed: list[str] = []
    for unit in keyless:
        found = _reached_keys(unit, units_upstream, keyed_units, keys) or _reached_keys(unit, units_downstream, keyed_units, keys)
        if not found:
            unkeyed.append(unit)
        for obs in by_unit[unit]:
            result[obs] = frozenset(("key", key) for key in found)
    for group in _joined_units(unkeyed, units_downstream):
        label = frozenset({("keyless", min(group))})
        for unit in group:
            for obs in by_unit[unit]:
                result[obs] = label
    return result


def _joined_units(units: list[str], downstream: Mapping[str, list[tuple[int, str]]]) -> list[list[str]]:
    parent = {unit: unit for unit in units}

    def find(unit: str) -> str:
        while parent[unit] != unit:
            parent[unit] = parent[parent[unit]]
            unit = parent[unit]
        return unit

    for unit in units:
        for _, other in downstream.get(unit, ()):
            if other in parent:
                low, high = sorted((find(unit), find(other)))
                parent[high] = low
    groups: dict[str, list[str]] = defaultdict(list)
    for unit in units:
        groups[find(unit)].append(unit)
    return list(groups.values())


def clock_skew(cause_start_ns: int, effect_start_ns: int) -> int:
    """How far (ns) an effect's clock appears behind its cause's: an effect cannot start before
    its cause, so a negative gap is the clocks disagreeing. 0 when the order is plausible."""
    return max(0, cause_start_ns - effect_start_ns)


# --- Flow summaries ------------------------------------------------------------------------------


def iso_from_ns(ns: int | None) -> str | None:
    """An ISO 8601 UTC instant with microseconds (JSON cannot carry a datetime)."""
    if ns is None:
        return None
    return (EPOCH + timedelta(microseconds=ns // 1000)).isoformat()


def causal_order(sort_keys: Mapping[int, tuple[Any, ...]], edges: Iterable[tuple[int, int]]) -> list[int]:
    """Node ids ordered by causality first, timestamps second: a topological order that, among
    the nodes whose causes are all placed, takes the earliest. Services' clocks disagree, so an
    effect stamped before its cause still comes after it. A cycle (bad data) is broken at its
    earliest node instead of dropping nodes."""
    indegree = dict.fromkeys(sort_keys, 0)
    effects: dict[int, list[int]] = {node: [] for node in sort_keys}
    for source, target in edges:
        if source in sort_keys and target in sort_keys and source != target:
            effects[source].append(target)
            indegree[target] += 1
    ready = [(sort_keys[node], node) for node, degree in indegree.items() if degree == 0]
    heapq.heapify(ready)
    placed: set[int] = set()
    order: list[int] = []
    while len(order) < len(sort_keys):
        if not ready:
            remaining = min((sort_keys[node], node) for node in sort_keys if node not in placed)
            indegree[remaining[1]] = 0
            ready.append(remaining)
        _, node = heapq.heappop(ready)
        if node in placed:
            continue
        placed.add(node)
        order.append(node)
        for effect in effects[node]:
            indegree[effect] -= 1
            if indegree[effect] == 0 and effect not in placed:
                heapq.heappush(ready, (sort_keys[effect], effect))
    return order


@dataclass(frozen=True, slots=True)
class FlowNode:
    id: int
    kind: str
    name: str
    service: str
    start_ns: int
    end_ns: int | None
    status: str
    trace_id: str
    business_key: str = ""
    event_id: str = ""


@dataclass(frozen=True)
class FlowSummary:
    key: str
    type: str
    status: str
    started_ns: int
    last_seen_ns: int
    services: list[str]
    steps: list[dict[str, Any]]
    observation_count: int
    error_count: int
    root_trace_id: str
    event_types: list[str] = field(default_factory=list)


MAX_STEPS = 100


def flow_type_of(events: Sequence[FlowNode], config: FlowsConfig) -> tuple[str, FlowType | None]:
    """The configured type that names the earliest event it can, else the root event's type."""
    for event in events:
        for flow_type in config.types:
            if event.name in flow_type.start:
                return flow_type.type, flow_type
    for event in events:
        for flow_type in config.types:
            if flow_type.mentions(event.name):
                return flow_type.type, flow_type
    return (events[0].name if events else ""), None


def is_error(node: FlowNode, flow_type: FlowType | None) -> bool:
    if node.status == "error":
        return True
    if node.kind != "event":
        return False
    if flow_type is not None and node.name in flow_type.errors:
        return True
    return bool(ERROR_EVENT.search(node.name.rsplit(".", 1)[-1]))


def retried_successfully(nodes: Sequence[FlowNode], edges: Iterable[tuple[int, int]]) -> set[int]:
    """Failed spans that a later attempt made good: the same service ran the same operation on
    the same cause (a redelivered message, say) again, and that attempt did not fail. The spans
    under a recovered attempt are recovered with it."""
    causes: dict[int, set[int]] = defaultdict(set)
    effects: dict[int, list[int]] = defaultdict(list)
    for source, target in edges:
        causes[target].add(source)
        effects[source].append(target)
    spans = {node.id: node for node in nodes if node.kind == "span"}
    attempts: dict[tuple[int, str, str], list[FlowNode]] = defaultdict(list)
    for node in spans.values():
        for cause in causes.get(node.id, ()):
            attempts[(cause, node.service, node.name)].append(node)
    recovered: set[int] = set()
    for group in attempts.values():
        succeeded = [node.start_ns for node in group if node.status != "error"]
        if succeeded:
            last = max(succeeded)
            recovered.update(node.id for node in group if node.status == "error" and node.start_ns <= last)
    stack = list(recovered)
    while stack:
        for effect in effects.get(stack.pop(), ()):
            if effect in spans and effect not in recovered:
                recovered.add(effect)
                stack.append(effect)
    return recovered


def flow_status(nodes: Sequence[FlowNode], flow_type: FlowType | None, unrecovered_errors: int) -> str:
    """``failed`` on an error a retry did not make good; ``completed`` on a configured end event."""
    if unrecovered_errors:
        return "failed"
    if flow_type is not None and any(node.kind == "event" and node.name in flow_type.end for node in nodes):
        return "completed"
    return "running"


def summarize_flow(nodes: Sequence[FlowNode], edges: Sequence[tuple[int, int]], config: FlowsConfig) -> FlowSummary:
    """Key, type, status, timings, services and steps of one flow, from its nodes and edges."""
    by_id = {node.id: node for node in nodes}
    ordered = [by_id[node_id] for node_id in causal_order({n.id: (n.start_ns, n.id) for n in nodes}, edges)]
    events = [node for node in ordered if node.kind == "event"]
    type_name, flow_type = flow_type_of(events, config)
    errors = [node.id for node in ordered if is_error(node, flow_type)]
    recovered = retried_successfully(ordered, edges) if errors else set()
    root_trace = next((node.trace_id for node in ordered if node.trace_id), "")
    key = next((node.business_key for node in ordered if node.business_key), "") or root_trace
    if not key and ordered:
        key = ordered[0].event_id or str(ordered[0].id)
    return FlowSummary(
        key=key,
        type=type_name,
        status=flow_status(ordered, flow_type, sum(1 for node_id in errors if node_id not in recovered)),
        started_ns=min(node.start_ns for node in nodes),
        last_seen_ns=max(max(node.start_ns, node.end_ns or 0) for node in nodes),
        services=list(dict.fromkeys(node.service for node in ordered if node.service)),
        steps=[{"id": e.id, "name": e.name, "service": e.service, "at": iso_from_ns(e.start_ns)} for e in events[:MAX_STEPS]],
        observation_count=len(nodes),
        error_count=len(errors),
        root_trace_id=root_trace,
        event_types=sorted({event.name for event in events}),
    )
