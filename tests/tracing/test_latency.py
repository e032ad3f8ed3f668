"""Nearest-rank percentiles: the one definition the service map, flow models and benchmarks use."""

from __future__ import annotations

from tracing.latency import nearest_rank, percentile


def test_nearest_rank_percentile():
    assert percentile([], 0.95) is None
    assert percentile([5.0], 0.95) == 5.0
    assert percentile([float(n) for n in range(1, 101)], 0.95) == 95.0


def test_percentile_of_one_value_is_that_value():
    assert nearest_rank([4.2], 0.99) == 4.2
    assert nearest_rank([3, 1, 2], 0.50) == 2
