"""Faults a demo service can be told to suffer, as plain data.

A service's faults combine: it can drop a share of its deliveries, react slowly, fail a share of
its attempts and be offline, all at once. ``parse_fault`` reads the command line's
``SERVICE=KIND[:VALUE]`` form; the panel on the overview page and the ``demo`` command both store
faults in ``demo.models.ServiceFault``, which the running shop re-reads every second.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

KINDS = ("drop", "slow", "fail", "offline")
MAX_SLOW_SECONDS = 600.0


class FaultError(ValueError):
    """A fault that cannot be understood; the message says how to write it."""


@dataclass(frozen=True, slots=True)
class Faults:
    drop: float = 0.0  # share of deliveries the service loses without reacting (orders get stuck)
    slow_seconds: float = 0.0  # added to every reaction's latency
    fail: float = 0.0  # share of processing attempts that fail with an error span
    offline: bool = False  # stops consuming; its backlog drains when it comes back

    @property
    def healthy(self) -> bool:
        return self == Faults()

    def describe(self) -> str:
        parts = []
        if self.offline:
            parts.append("offline")
        if self.drop:
            parts.append(f"drops {self.drop:.0%}")
        if self.slow_seconds:
            parts.append(f"+{self.slow_seconds:g} s")
        if self.fail:
            parts.append(f"fails {self.fail:.0%}")
        return ", ".join(parts) or "healthy"


@dataclass(frozen=True, slots=True)
class FaultChange:
    """One ``--fault`` argument: which service, which kind, what value."""

    service: str
    kind: str
    value: float

    def apply(self, faults: Faults) -> Faults:
        if self.kind == "drop":
            return replace(faults, drop=self.value)
        if self.kind == "slow":
            return replace(faults, slow_seconds=self.value)
        if self.kind == "fail":
            return replace(faults, fail=self.value)
        return replace(faults, offline=bool(self.value))


def parse_fault(text: str, services: tuple[str, ...]) -> FaultChange:
    """``rewards=drop:0.3`` (share 0..1), ``warehouse=slow:5`` (seconds), ``email=fail:0.2``,
    ``fraud-check=offline`` or ``offline:0`` (back online)."""
    service, sep, spec = text.strip().partition("=")
    if not sep or not service or not spec:
        raise FaultError(f"{text!r}: write a fault as SERVICE=KIND[:VALUE], e.g. rewards=drop:0.3 or warehouse=slow:5.")
    if service not in services:
        raise FaultError(f"{text!r}: unknown service {service!r}; the shop's services are {', '.join(services)}.")
    kind, _, raw_value = spec.partition(":")
    if kind not in KINDS:
        raise FaultError(f"{text!r}: unknown fault {kind!r}; use one of {', '.join(KINDS)}.")
    if kind == "offline" and not raw_value:
        return FaultChange(service, kind, 1.0)
    try:
        value = float(raw_value)
    except ValueError:
        raise FaultError(f"{text!r}: {kind} needs a number after the colon, e.g. {service}={kind}:{_example(kind)}.") from None
    check_fault_value(kind, value)
    return FaultChange(service, kind, value)


def check_fault_value(kind: str, value: float) -> None:
    if value != value:  # NaN
        raise FaultError(f"{kind}: not a number.")
    if kind in ("drop", "fail") and not 0.0 <= value <= 1.0:
        raise FaultError(f"{kind}:{value:g} is not a share; use a value from 0 to 1 (0.3 is 30%).")
    if kind == "slow" and not 0.0 <= value <= MAX_SLOW_SECONDS:
        raise FaultError(f"slow:{value:g} is out of range; use seconds from 0 to {MAX_SLOW_SECONDS:g}.")
    if kind == "offline" and value not in (0.0, 1.0):
        raise FaultError("offline takes no value, or 1 (offline) / 0 (online).")


def _example(kind: str) -> str:
    return {"drop": "0.3", "fail": "0.2", "slow": "5"}.get(kind, "1")


def chance(rng: random.Random, share: float) -> bool:
    """True with probability ``share`` (exactly never at 0, always at 1)."""
    return share >= 1.0 or (share > 0.0 and rng.random() < share)
