"""What a flow is waiting for, and since when it is late: plain data in, plain data out, no ORM.

Expectations come from a learned model (a step that followed its predecessor in at least
``expect_share`` of past flows, due within p99 * ``factor`` but never sooner than ``floor``) or
are declared ("after OrderCreated expect EmailSent, PointsCreated within 2 minutes; the flow ends
at ShipmentPrepared within 10 minutes"). A declared expectation about a step replaces whatever
was learned about reactions to that step.

A flow's deadline is the earliest due time of an expectation it has not met yet; past it, the
overdue expectations name the missing steps: what should have happened, which service should
have done it, what it should have reacted to, and when it was due.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from alerts.flowmodel import FlowModel, Occurrence, Step
from tracing.flowconfig import Deadline, StepRef  # steps are named, and parsed, with the flow definitions


@dataclass(frozen=True)
class Expectation:
    after: StepRef
    step: StepRef
    within_seconds: float
    origin: str = "learned"  # or "declared"


@dataclass(frozen=True)
class Rules:
    expectations: tuple[Expectation, ...] = ()
    deadline: Deadline | None = None  # declared: reach an end step within this of the start

    def __bool__(self) -> bool:
        return bool(self.expectations) or self.deadline is not None


@dataclass(frozen=True)
class Due:
    """An expectation a flow has not met: ``step`` was due at ``due_at`` after ``after``."""

    step: StepRef
    after: StepRef | None  # None for the overall deadline (measured from the flow's start)
    due_at: float
    origin: str

    def as_missing(self) -> dict[str, object]:
        return {
            "step": self.step.name,
            "service": self.step.service,
            "after": self.after.name if self.after else "",
            "after_service": self.after.service if self.after else "",
            "due_at": self.due_at,
            "origin": self.origin,
        }


def step_ref(step: Step) -> StepRef:
    return StepRef(step.name, step.service)


def learned_expectations(model: FlowModel, *, expect_share: float, factor: float, floor_seconds: float) -> list[Expectation]:
    return [
        Expectation(step_ref(t.source), step_ref(t.target), max(t.p99 * factor, floor_seconds))
        for t in model.transitions
        if t.share >= expect_share
    ]


def with_known_services(expectations: Iterable[Expectation], known_steps: Iterable[Step]) -> list[Expectation]:
    """Fill the service of a declared step named without one, when the model knows exactly one
    service doing it: an alert should say whose move it is."""
    services: dict[str, set[str]] = {}
    for step in known_steps:
        services.setdefault(step.name, set()).add(step.service)

    def complete(ref: StepRef) -> StepRef:
        known = services.get(ref.name, set())
        return replace(ref, service=next(iter(known))) if not ref.service and len(known) == 1 else ref

    return [replace(e, after=complete(e.after), step=complete(e.step)) for e in expectations]


def merge_rules(declared: Rules, learned: Sequence[Expectation]) -> Rules:
    """Declared expectations win: a step with declared reactions keeps no learned ones."""
    declared_afters = [e.after for e in declared.expectations]
    kept = [e for e in learned if not any(d.name == e.after.name and d.service in ("", e.after.service) for d in declared_afters)]
    return Rules(tuple(declared.expectations) + tuple(kept), declared.deadline)


def _first(trace: Sequence[Occurrence], ref: StepRef) -> Occurrence | None:
    """The first occurrence of a step; an event whose service is still provisional (its
    CloudEvents source) counts by name, rather than leaving a flow stuck on a naming detail."""
    found = [o for o in trace if ref.matches(o.step) or (o.provisional_service and o.step.name == ref.name)]
    return min(found, key=lambda o: (o.at, o.id)) if found else None


def pending(trace: Sequence[Occurrence], rules: Rules, started_at: float) -> list[Due]:
    """Every expectation the flow has triggered but not met, earliest due first."""
    dues: list[Due] = []
    for expectation in rules.expectations:
        trigger = _first(trace, expectation.after)
        if trigger is None or _first(trace, expectation.step) is not None:
            continue
        due = Due(
            expectation.step,
            replace(expectation.after, service=expectation.after.service or trigger.step.service),
            trigger.at + expectation.within_seconds,
            expectation.origin,
        )
        dues.append(due)
    deadline = rules.deadline
    if deadline and deadline.end_steps and not any(_first(trace, end) for end in deadline.end_steps):
        dues.append(Due(deadline.end_steps[0], None, started_at + deadline.within_seconds, "declared"))
    return earliest_per_step(dues)


def earliest_per_step(dues: Sequence[Due]) -> list[Due]:
    """A step expected after two triggers (a consumer span follows the producer span and is
    delivered the event) is missing once, by its earliest due time."""
    earliest: dict[StepRef, Due] = {}
    for due in sorted(dues, key=lambda d: (d.due_at, d.step.name, d.step.service)):
        earliest.setdefault(due.step, due)
    return list(earliest.values())


def deadline_of(dues: Sequence[Due]) -> float | None:
    """When the flow becomes stuck if nothing more happens (None: it waits for nothing)."""
    return min((d.due_at for d in dues), default=None)


def missing_steps(dues: Sequence[Due], now: float) -> list[Due]:
    """The expectations overdue at ``now``: what a stuck flow is missing."""
    return [d for d in dues if d.due_at <= now]


@dataclass(frozen=True)
class Watch:
    """What alerts keeps about a flow that still expects a step; a flow expecting nothing has none."""

    deadline: float | None
    stuck: bool = False
    missing: tuple[Due, ...] = ()


def next_watch(dues: Sequence[Due], now: float, was_stuck: bool, named: frozenset[tuple[str, str]] = frozenset()) -> Watch | None:
    """A watched flow's watch after a change (its observations, or the rules, changed): its new
    deadline, and whether it stays stuck. Becoming stuck is the periodic scan's decision (at
    ``deadline``), never this one's. A stuck flow stays stuck while anything overdue, or
    anything it was named as missing (``(step, service)`` pairs), is still outstanding: a
    refreshed model that moves a deadline later must not resolve the alert only to open it
    again a few seconds on."""
    deadline = deadline_of(dues)
    if was_stuck:
        overdue = tuple(d for d in dues if d.due_at <= now or (d.step.name, d.step.service) in named)
        if overdue:
            return Watch(deadline, stuck=True, missing=overdue)
    return Watch(deadline) if deadline is not None else None
