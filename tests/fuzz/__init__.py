"""Fuzzing in the suite: property-based tests of the decoders, the HTTP endpoints, the API (by
its OpenAPI document), the sockets and every form.

In the suite they are derandomized (the same examples every run) and few, so that together they
stay within about a minute and a half; ``make fuzz`` runs them with random seeds and
``CHOREOSCOPE_FUZZ_SCALE`` times as many examples (20 unless set). Every defect found becomes a
regression test with its smallest input beside the code it concerns."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SCALE = max(1, int(os.environ.get("CHOREOSCOPE_FUZZ_SCALE") or 1))


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples * SCALE,
        derandomize=SCALE == 1,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
