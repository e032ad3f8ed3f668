"""Back-pressure: ingestion refuses work (429) while too much stored work awaits correlation.

The figure is read at most once a second per process, is usually an upper bound from two index
lookups, and is counted (only up to the bound) when there is a real backlog, so a busy collector
never COUNTs a large table on every request.
"""

from __future__ import annotations

import threading
import time

from django.conf import settings

from tracing.models import Observation

REFRESH_SECONDS = 1.0

_lock = threading.Lock()
_cache: dict[str, float] = {"pending": 0, "read_at": float("-inf")}


def pending_observations(bound: int) -> int:
    """Uncorrelated observations, counted up to ``bound + 1``.

    Ids only grow, so the uncorrelated rows lie between the oldest uncorrelated id and the newest
    id: when that span is within the bound (correlation keeps up, the usual case) two index
    lookups answer, and only a real backlog pays for a (bounded) count over the partial index."""
    pending = Observation.objects.filter(flow__isnull=True)
    oldest = pending.order_by("id").values_list("id", flat=True).first()
    if oldest is None:
        return 0
    newest = Observation.objects.order_by("-id").values_list("id", flat=True).first() or oldest
    if newest - oldest + 1 <= bound:
        return newest - oldest + 1
    return pending.values("id")[: bound + 1].count()


def overloaded(now: float | None = None) -> bool:
    now = time.monotonic() if now is None else now
    with _lock:
        fresh = now - _cache["read_at"] < REFRESH_SECONDS
        pending = _cache["pending"]
    if not fresh:
        pending = pending_observations(settings.MAX_PENDING)
        with _lock:
            _cache.update(pending=pending, read_at=now)
    return pending > settings.MAX_PENDING


def forget() -> None:
    """Drop the cached figure (tests, and after settings change)."""
    with _lock:
        _cache.update(pending=0, read_at=float("-inf"))
