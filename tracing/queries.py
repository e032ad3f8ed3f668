"""The names ``dashboard.live_feed`` imported from here before the JSON shapes moved to
``dashboard.api``. Kept only until the live sockets call ``dashboard.selectors.flow_detail``
themselves; delete this module then (it is the one place ``tracing`` reaches up)."""

from __future__ import annotations

from typing import Any

from tracing.correlation import iso_from_ns
from tracing.models import Flow
from tracing.selectors import resolve_flow

__all__ = ["flow_detail", "iso_from_ns", "resolve_flow"]


def flow_detail(flow: Flow) -> Any:
    from dashboard.selectors import flow_detail as api_flow_detail

    return api_flow_detail(flow)
