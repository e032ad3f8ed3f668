"""How long a demo service takes to react: log-normal around a median, with a long tail.

Real service latencies are not bell curves: most reactions are close to the median, and a few
(a cold cache, a GC pause, a slow disk) take many times longer. A log-normal body plus an
occasional Pareto-distributed tail gives that shape with three numbers a person can read.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LatencyProfile:
    median_ms: float
    spread: float = 0.35  # sigma of the log-normal body; 0.35 puts p90 near 1.6 x median
    tail_share: float = 0.02  # share of reactions that hit the long tail
    tail_factor: float = 8.0  # a tail reaction takes at least this many medians
    max_ms: float = 8_000.0


def sample_latency_ms(profile: LatencyProfile, rng: random.Random) -> float:
    body = profile.median_ms * math.exp(rng.gauss(0.0, profile.spread))
    if rng.random() < profile.tail_share:
        # Pareto with alpha 2: heavy, but with a finite mean, as slow paths tend to be.
        body = profile.median_ms * profile.tail_factor * rng.paretovariate(2.0)
    return min(body, profile.max_ms)


def retry_backoff_ms(attempt: int, base_ms: float = 200.0, cap_ms: float = 5_000.0) -> float:
    """Exponential backoff before delivery attempt ``attempt`` + 1 (attempts count from 1)."""
    return min(cap_ms, base_ms * 2 ** (attempt - 1))
