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
from alerts.bulk_writes import claim_stuck, insert_alerts, write_flow_states
from alerts.delivery import queue_deliveries
from alerts.expectations import (
    Due,
    Expectation,
    Rules,
    deadline_of,
    merge_rules,
    missing_steps,
    pending,
    with_known_services,
)
from alerts.flowmodel import FlowModel, Occurrence, Step, learn_flow_model, model_from_dict, model_to_dict
from alerts.models import Alert, Delivery, LearnedModel
from alerts.selectors import declared_rules, learned_rules
from tracing.models import Edge, Flow, Observation

log = logging.getLogger(__name__)

ACTIVE = (Flow.Status.RUNNING, Flow.Status.STUCK)
# A flow that reached an end step still owes what it was expected to do: in a fan-out, nobody
# reacts last, and the reaction still missing when another branch ends the flow is the one to name.
WATCHED = (*ACTIVE, Flow.Status.COMPLETED)
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
    ids = list(flow_ids)
    causes: dict[int, list[int]] = defaultdict(list)
    if with_causes:
        for source, target in Edge.objects.filter(flow_id__any=ids).values_list("source_id", "target_id"):
            causes[target].append(source)
    traces: dict[int, list[Occurrence]] = defaultdict(list)
    rows = Observation.objects.filter(flow_id__any=ids).values_list(
        "id", "flow_id", "service", "name", "start_ns", "kind", "event_source"
    )
    for obs_id, flow_id, service, name, start_ns, kind, event_source in rows:
        provisional = kind == Observation.Kind.EVENT and service == event_source
        traces[flow_id].append(
            Occurrence(obs_id, Step(service, name), start_ns / 1e9, tuple(causes.get(obs_id, ())), provisional)
        )
    return traces


def first_occurrences(flow_ids: Iterable[int]) -> dict[int, list[Occurrence]]:
    """Each step of these flows once, at its first occurrence: all that deadlines depend on,
    read grouped so that a long flow repeating a few steps costs a few rows."""
    rows = (
        Observation.objects.filter(flow_id__any=list(flow_ids))
        .values_list("flow_id", "service", "name", "kind", "event_source")
        .annotate(first_ns=Min("start_ns"), first_id=Min("id"))
    )
    traces: dict[int, list[Occurrence]] = defaultdict(list)
    for flow_id, service, name, kind, event_source, first_ns, first_id in rows:
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
    """Recompute ``stuck_after`` (and, for a stuck flow, ``missing``) of these flows; resolve
    the alert of a flow that no longer misses anything. Runs inside the caller's transaction."""
    now = now or timezone.now()
    flows = list(
        Flow.objects.filter(id__in=list(flow_ids), merged_into__isnull=True).only(
            "id", "type", "status", "started_at", "stuck_after", "missing"
        )
    )
    if not flows:
        return
    rules = rules_by_type(f.type for f in flows)
    needs_trace = [f.id for f in flows if f.status in WATCHED and f.type in rules]
    traces = first_occurrences(needs_trace) if needs_trace else {}
    alerted = set(
        Alert.objects.filter(flow_id__in=[f.id for f in flows], state__in=Alert.UNRESOLVED).values_list("flow_id", flat=True)
    )
    changed, recovered = [], []
    for flow in flows:
        before = (flow.status, flow.stuck_after, flow.missing)
        dues = pending(traces.get(flow.id, []), rules[flow.type], flow.started_at.timestamp()) if flow.id in traces else []
        apply_dues(flow, dues, now, alerted=flow.id in alerted)
        if (flow.status, flow.stuck_after, flow.missing) != before:
            changed.append(flow)
        if flow.id in alerted and flow.status != Flow.Status.STUCK:
            recovered.append(flow.id)
    if changed:
        write_flow_states(changed)
    if recovered:
        resolve_alerts(recovered, now)


def apply_dues(flow: Flow, dues: Sequence[Due], now: datetime, alerted: bool) -> None:
    """Set a flow's deadline and, when it has an alert, whether it is still stuck. A completed
    flow that still waits for an expected step runs until it arrives (or is stuck without it)."""
    deadline = deadline_of(dues)
    overdue = missing_steps(dues, now.timestamp())
    if flow.status in WATCHED and (flow.status == Flow.Status.STUCK or alerted):
        # A stuck flow stays stuck until what it was missing arrives (or is no longer expected
        # at all): a refreshed model that moves a deadline later must not resolve the alert
        # only to open it again a few seconds on.
        named = {(m.get("step"), m.get("service")) for m in flow.missing}
        overdue = [d for d in dues if d.due_at <= now.timestamp() or (d.step.name, d.step.service) in named]
    if flow.status not in WATCHED:
        flow.stuck_after, flow.missing = None, []
    elif (flow.status == Flow.Status.STUCK or alerted) and overdue:
        # Correlation recomputes a changed flow's status from its observations (running or
        # completed); the stuck state is ours to keep while something stays missing.
        flow.status, flow.missing = Flow.Status.STUCK, missing_json(overdue)
    elif flow.status == Flow.Status.COMPLETED and deadline is None:
        flow.stuck_after, flow.missing = None, []
    else:
        flow.status = Flow.Status.RUNNING
        flow.stuck_after = as_time(deadline) if deadline is not None else None
        flow.missing = []


def on_flows_changed(flow_ids: Iterable[int], merged: dict[int, int] | None = None) -> None:
    if merged:
        resolve_alerts(list(merged), timezone.now())
    refresh_deadlines(flow_ids)


def refresh_deadlines_of_type(flow_type: str) -> int:
    """A new or changed model: recompute the deadlines of the active flows it governs."""
    ids = list(Flow.objects.filter(type=flow_type, status__in=ACTIVE, merged_into__isnull=True).values_list("id", flat=True))
    for start in range(0, len(ids), DEADLINE_CHUNK):
        with transaction.atomic():
            refresh_deadlines(ids[start : start + DEADLINE_CHUNK])
    return len(ids)


# --- Learning flow models ---------------------------------------------------------------------


def finished_flows(now: datetime) -> Q:
    """Flows of the last day that completed, or went quiet without waiting for anything (the
    window keeps the periodic count an index range on ``last_seen_at``, not a table scan)."""
    quiet = Q(
        status=Flow.Status.RUNNING, last_seen_at__lt=now - timedelta(seconds=settings.QUIET_SECONDS), stuck_after__isnull=True
    )
    recent = Q(merged_into__isnull=True, last_seen_at__gte=now - LEARN_WINDOW)
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
    """One query on the partial index (status = running, by stuck_after)."""
    return list(
        Flow.objects.filter(status=Flow.Status.RUNNING, stuck_after__lt=now)
        .order_by("stuck_after")
        .values_list("id", flat=True)[:limit]
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
                deadline = deadline_of(dues)
                Flow.objects.filter(id=flow.id, status=Flow.Status.RUNNING).update(
                    stuck_after=as_time(deadline) if deadline is not None else None
                )
        claimed = claim_stuck({i: missing_json(dues) for i, dues in overdue.items()}, now)
        return open_alerts([flows[i] for i in claimed], overdue, now)


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
