"""Latency statistics shared by the service map, learned flow models and the benchmarks."""

from __future__ import annotations

import math
from collections.abc import Sequence


def nearest_rank(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (``share`` in 0..1) of a non-empty sequence: always one of the
    values, never an interpolation, so a p99 is a latency that really happened."""
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def percentile(values: Sequence[float], share: float) -> float | None:
    """``nearest_rank``, or None when there are no values."""
    return nearest_rank(values, share) if values else None
