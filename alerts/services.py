"""Writes of the alerts app: deadlines on write, learning flow models, the stuck scan and the alert
lifecycle (notification delivery is ``alerts.delivery``).

The pure decisions live in ``alerts.flowmodel`` and ``alerts.expectations``; this module loads
plain data for them, applies their answers, and claims work with conditional updates so that
several workers (or two detector processes) never open one alert twice.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Min, Q
from django.utils import timezone

from alerts import signals
from alerts.bulk_writes import claim_stuck, insert_alerts, upsert_watches
from alerts.delivery import queue_deliveries
from alerts.expectations import (
    Due,
    Expectation,
    Rules,
    Watch,
    merge_rules,
    missing_steps,
    next_watch,
    pending,
    with_known_services,
)
from alerts.flowmodel import FlowModel, Occurrence, Step, learn_flow_model, model_from_dict, model_to_dict
from alerts.models import Alert, Delivery, FlowFlip, FlowWatch, LearnedModel
from alerts.selectors import declared_rules, learned_rules
from alerts.status import ShownStatus, shown_status
from tracing.models import Flow, Observation, SharedStep
from tracing.selectors import edges_among, flow_members

log = logging.getLogger(__name__)

# A flow that reached an end step still owes what it was expected to do: in a fan-out, nobody
# reacts last, and the reaction still missing when another branch ends the flow is the one to name.
WATCHED = (Flow.Status.RUNNING, Flow.Status.COMPLETED)
LEARN_FROM_FLOWS = 500  # the newest finished flows of a type a model is learned from
LEARN_WINDOW = timedelta(days=1)
SCAN_BATCH = 2000
DEADLINE_CHUNK = 1000


def as_time(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def missing_json(dues: Sequence[Due]) -> list[dict[str, Any]]:
    return [{**due.as_missing(), "due_at": as_time(due.due_at).isoformat()} for due in dues]


# --- Reading what the pure core needs ---------------------------------------------------------


def traces_of(flow_ids: Iterable[int], with_causes: bool = False) -> dict[int, list[Occurrence]]:
    """Each flow's observations, shared steps included: a batch consumer that reacted to several
    orders at once reacted to each of them."""
    ids = list(flow_ids)
    rows = flow_members(ids, "id", "service", "name", "start_ns", "kind", "event_source")
    causes: dict[tuple[int, int], list[int]] = defaultdict(list)
    if with_causes:
        members: dict[int, set[int]] = defaultdict(set)
        for flow_id, obs_id, *_ in rows:
            members[flow_id].add(obs_id)
        for flow_id, edges in edges_among(members).items():
            for source, target, _, _ in edges:
                causes[(flow_id, target)].append(source)
    traces: dict[int, list[Occurrence]] = defaultdict(list)
    for flow_id, obs_id, service, name, start_ns, kind, event_source in rows:
        provisional = kind == Observation.Kind.EVENT and service == event_source
        traces[flow_id].append(
            Occurrence(obs_id, Step(service, name), start_ns / 1e9, tuple(causes.get((flow_id, obs_id), ())), provisional)
        )
    return traces


def first_occurrences(flow_ids: Iterable[int]) -> dict[int, list[Occurrence]]:
    """Each step of these flows once, at its first occurrence: all that deadlines depend on,
    read grouped so that a long flow repeating a few steps costs a few rows. Shared steps
    count as each of their flows' (a batch reacts to every order it holds)."""
    ids = list(flow_ids)
    first: dict[tuple[int, str, str, str, str], tuple[int, int]] = {}
    primary = (
        Observation.objects.filter(flow_id__any=ids)
        .values_list("flow_id", "service", "name", "kind", "event_source")
        .annotate(first_ns=Min("start_ns"), first_id=Min("id"))
    )
    shared = (
        SharedStep.objects.filter(flow_id__any=ids)
        .values_list("flow_id", "observation__service", "observation__name", "observation__kind", "observation__event_source")
        .annotate(first_ns=Min("observation__start_ns"), first_id=Min("observation_id"))
    )
    for flow_id, service, name, kind, event_source, first_ns, first_id in [*primary, *shared]:
        step = (flow_id, service, name, kind, event_source)
        earlier = first.get(step)
        first[step] = (first_ns, first_id) if earlier is None else (min(earlier[0], first_ns), min(earlier[1], first_id))
    traces: dict[int, list[Occurrence]] = defaultdict(list)
    for (flow_id, service, name, kind, event_source), (first_ns, first_id) in first.items():
        provisional = kind == Observation.Kind.EVENT and service == event_source
        traces[flow_id].append(Occurrence(first_id, Step(service, name), first_ns / 1e9, (), provisional))
    return traces


def rules_by_type(flow_types: Iterable[str]) -> dict[str, Rules]:
    types = set(flow_types)
    found = declared_rules()
    models = {m.flow_type: model_from_dict(m.graph) for m in LearnedModel.objects.filter(flow_type__in=types)}
    result: dict[str, Rules] = {}
    for flow_type in types:
        model = models.get(flow_type)
        learned = learned_rules(model) if model else []
        merged = merge_rules(found.get(flow_type, Rules()), learned)
        if model:
            merged = Rules(tuple(with_known_services(merged.expectations, model.steps)), merged.deadline)
        if merged:
            result[flow_type] = merged
    return result


# --- Deadlines on write -----------------------------------------------------------------------


def refresh_deadlines(flow_ids: Iterable[int], now: datetime | None = None) -> None:
    """Recompute the watch over these flows (their deadline and, for a stuck flow, what it still
    misses) and resolve the alert of a flow that no longer misses anything. Runs inside the
    caller's transaction (correlation's, when the flows changed)."""
    now = now or timezone.now()
    live = Flow.objects.filter(id__in=list(flow_ids), merged_into__isnull=True)
    flows = list(live.values_list("id", "type", "status", "started_at"))
    if not flows:
        return
    ids = [flow_id for flow_id, *_ in flows]
    watches = {w.flow_id: w for w in FlowWatch.objects.filter(flow_id__in=ids)}
    rules = rules_by_type(flow_type for _, flow_type, _, _ in flows)
    needs_trace = [flow_id for flow_id, flow_type, status, _ in flows if status in WATCHED and flow_type in rules]
    traces = first_occurrences(needs_trace) if needs_trace else {}
    alerted = set(Alert.objects.filter(flow_id__in=ids, state__in=Alert.UNRESOLVED).values_list("flow_id", flat=True))
    changes: dict[int, Watch | None] = {}
    recovered: dict[int, str] = {}
    for flow_id, flow_type, status, started_at in flows:
        old = watches.get(flow_id)
        was_stuck = (old is not None and old.stuck) or flow_id in alerted
        named = frozenset((m.get("step"), m.get("service")) for m in old.missing) if old else frozenset()
        dues = pending(traces[flow_id], rules[flow_type], started_at.timestamp()) if flow_id in traces else []
        new = next_watch(dues, now.timestamp(), was_stuck, named)
        if watch_row(new) != watch_row_of(old):
            changes[flow_id] = new
        if was_stuck and not (new and new.stuck):
            recovered[flow_id] = shown_status(status, new is not None, False)
    write_watches(changes, now)
    if recovered:
        record_flips({flow_id: (ShownStatus.STUCK, status, []) for flow_id, status in recovered.items()}, now)
        resolve_alerts(sorted(recovered), now)


def watch_row(watch: Watch | None) -> tuple[Any, ...] | None:
    """A watch as its row stores it (to compare with ``watch_row_of`` and write)."""
    if watch is None:
        return None
    deadline = as_time(watch.deadline) if watch.deadline is not None else None
    return (deadline, watch.stuck, missing_json(watch.missing))


def watch_row_of(watch: FlowWatch | None) -> tuple[Any, ...] | None:
    return (watch.deadline, watch.stuck, watch.missing) if watch is not None else None


def write_watches(changes: dict[int, Watch | None], now: datetime) -> None:
    """Store the changed watches; a flow that expects nothing any more loses its row."""
    gone = sorted(flow_id for flow_id, watch in changes.items() if watch is None)
    if gone:
        FlowWatch.objects.filter(flow_id__in=gone).delete()
    rows = [(flow_id, *row, now) for flow_id, watch in changes.items() if (row := watch_row(watch)) is not None]
    if rows:
        upsert_watches(rows)


def on_flows_changed(flow_ids: Iterable[int], merged: dict[int, int] | None = None) -> None:
    if merged:
        FlowWatch.objects.filter(flow_id__in=list(merged)).delete()
        resolve_alerts(list(merged), timezone.now())
    refresh_deadlines(flow_ids)


def refresh_deadlines_of_type(flow_type: str) -> int:
    """A new or changed model: recompute the deadlines of the flows it governs that are running
    or still watched."""
    flows = Flow.objects.filter(type=flow_type, merged_into__isnull=True)
    ids = list(flows.filter(Q(status=Flow.Status.RUNNING) | Q(watch__isnull=False)).values_list("id", flat=True))
    for start in range(0, len(ids), DEADLINE_CHUNK):
        with transaction.atomic():
            refresh_deadlines(ids[start : start + DEADLINE_CHUNK])
    return len(ids)


# --- Learning flow models ---------------------------------------------------------------------


def finished_flows(now: datetime) -> Q:
    """Flows of the last day that completed, or went quiet without waiting for anything (the
    window keeps the periodic count an index range on ``last_seen_at``, not a table scan)."""
    quiet = Q(status=Flow.Status.RUNNING, last_seen_at__lt=now - timedelta(seconds=settings.QUIET_SECONDS))
    recent = Q(merged_into__isnull=True, last_seen_at__gte=now - LEARN_WINDOW, watch__isnull=True)
    return recent & (Q(status=Flow.Status.COMPLETED) | quiet)


def expectation_signature(expectations: Sequence[Expectation]) -> dict[tuple[Any, ...], float]:
    return {(e.after.service, e.after.name, e.step.service, e.step.name): e.within_seconds for e in expectations}


def expectations_changed(old: FlowModel | None, new: FlowModel) -> bool:
    """Whether running flows need new deadlines: a different set of expected steps, or a
    deadline that moved by more than a fifth (latency jitter alone changes nothing)."""
    before = expectation_signature(learned_rules(old)) if old else {}
    after = expectation_signature(learned_rules(new))
    if before.keys() != after.keys():
        return True
    return any(abs(after[k] - before[k]) > 0.2 * before[k] for k in after)


def refresh_flow_models(now: datetime | None = None) -> list[str]:
    """Learn a model for every flow type with enough finished flows; returns the types whose
    expectations changed (their active flows got new deadlines)."""
    now = now or timezone.now()
    counts = Flow.objects.filter(finished_flows(now)).exclude(type="").values("type").annotate(n=Count("id"))
    changed = []
    for row in counts:
        if row["n"] < settings.MODEL_MIN_FLOWS:
            continue
        if learn_model_of_type(row["type"], now):
            changed.append(row["type"])
    for flow_type in changed:
        refresh_deadlines_of_type(flow_type)
    return changed


def learn_model_of_type(flow_type: str, now: datetime) -> bool:
    ids = list(
        Flow.objects.filter(finished_flows(now), type=flow_type)
        .order_by("-last_seen_at")
        .values_list("id", flat=True)[:LEARN_FROM_FLOWS]
    )
    model = learn_flow_model(flow_type, traces_of(ids, with_causes=True).values())
    stored = LearnedModel.objects.filter(flow_type=flow_type).first()
    old = model_from_dict(stored.graph) if stored else None
    changed = expectations_changed(old, model)
    values: dict[str, Any] = {"flow_count": model.flow_count, "graph": model_to_dict(model), "learned_at": now}
    if changed:
        values["changed_at"] = now
    LearnedModel.objects.update_or_create(flow_type=flow_type, defaults=values)
    return changed


# --- The stuck scan ---------------------------------------------------------------------------


def stuck_candidates(now: datetime, limit: int = SCAN_BATCH) -> list[int]:
    """One query on the partial index of watches not yet stuck, by deadline."""
    return list(
        FlowWatch.objects.filter(stuck=False, deadline__lt=now).order_by("deadline").values_list("flow_id", flat=True)[:limit]
    )


def scan_stuck_flows(now: datetime | None = None) -> list[int]:
    """Open one alert per flow past its deadline; returns the new alerts' ids."""
    now = now or timezone.now()
    candidates = stuck_candidates(now)
    if not candidates:
        return []
    with transaction.atomic():
        flows = {
            row[0]: Candidate(*row)
            for row in Flow.objects.filter(id__in=candidates).values_list("id", "key", "type", "started_at")
        }
        rules = rules_by_type({f.type for f in flows.values()})
        traces = first_occurrences(candidates)
        overdue: dict[int, list[Due]] = {}
        for flow in flows.values():
            dues = pending(traces.get(flow.id, []), rules.get(flow.type, Rules()), flow.started_at.timestamp())
            late = missing_steps(dues, now.timestamp())
            if late:
                overdue[flow.id] = late
            else:  # rare: the rules changed since the deadline was written
                write_watches({flow.id: next_watch(dues, now.timestamp(), was_stuck=False)}, now)
        missing = {i: missing_json(dues) for i, dues in overdue.items()}
        claimed = claim_stuck(missing, now)
        record_flips({i: (ShownStatus.RUNNING, ShownStatus.STUCK, missing[i]) for i in claimed}, now)
        return open_alerts([flows[i] for i in claimed], overdue, now)


def record_flips(flips: dict[int, tuple[str, str, list[dict[str, Any]]]], now: datetime) -> None:
    """``{flow id: (old status, new status, what it misses)}`` as history rows."""
    FlowFlip.objects.bulk_create(
        [FlowFlip(flow_id=i, at=now, old_status=old, new_status=new, missing=m) for i, (old, new, m) in sorted(flips.items())]
    )


@dataclass(frozen=True)
class Candidate:
    """What opening an alert needs of a flow (model instances cost more than the scan itself)."""

    id: int
    key: str
    type: str
    started_at: datetime


def open_alerts(flows: Sequence[Candidate], overdue: dict[int, list[Due]], now: datetime) -> list[int]:
    existing = set(
        Alert.objects.filter(flow_id__in=[f.id for f in flows], state__in=Alert.UNRESOLVED).values_list("flow_id", flat=True)
    )
    alerts = insert_alerts([new_alert(f, overdue[f.id], now) for f in flows if f.id not in existing])
    queue_deliveries(alerts, Delivery.Event.OPENED)
    ids = [a.id for a in alerts]
    signals.announce(opened=ids)
    return ids


def new_alert(flow: Candidate, overdue: Sequence[Due], now: datetime) -> Alert:
    first = overdue[0]
    return Alert(
        flow_id=flow.id,
        flow_key=flow.key,
        flow_type=flow.type,
        step=first.step.name,
        service=first.step.service,
        after=first.after.name if first.after else "",
        due_at=as_time(first.due_at),
        missing=missing_json(overdue),
        opened_at=now,
    )


# --- Alert lifecycle --------------------------------------------------------------------------


def resolve_alerts(flow_ids: Sequence[int], now: datetime) -> list[int]:
    ids = list(Alert.objects.filter(flow_id__in=flow_ids, state__in=Alert.UNRESOLVED).values_list("id", flat=True))
    if not ids:
        return []
    Alert.objects.filter(id__in=ids, state__in=Alert.UNRESOLVED).update(state=Alert.State.RESOLVED, resolved_at=now)
    queue_deliveries(list(Alert.objects.filter(id__in=ids)), Delivery.Event.RESOLVED)
    signals.announce(resolved=ids)
    return ids


class AlertNotFound(LookupError):
    pass


class AlertAlreadyResolved(ValueError):
    pass


def acknowledge_alert(alert_id: int, user: Any) -> Alert:
    """Open → acknowledged; acknowledging twice is harmless, a resolved alert stays resolved."""
    with transaction.atomic():
        claimed = Alert.objects.filter(id=alert_id, state=Alert.State.OPEN).update(
            state=Alert.State.ACKNOWLEDGED,
            acknowledged_at=timezone.now(),
            acknowledged_by=user if getattr(user, "pk", None) else None,
        )
        alert = Alert.objects.filter(id=alert_id).first()
        if alert is None:
            raise AlertNotFound(f"There is no alert {alert_id}.")
        if alert.state == Alert.State.RESOLVED:
            raise AlertAlreadyResolved(f"Alert {alert_id} is already resolved; there is nothing to acknowledge.")
        if claimed:
            signals.announce(acknowledged=[alert.id])
        return alert
