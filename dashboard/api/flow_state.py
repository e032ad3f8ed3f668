"""What a flow shows as its status, and what it still misses: the one reader of both, for the JSON
API, the pages and (once they switch) the live sockets.

Today both are columns of tracing's ``Flow`` (``status``, ``stuck_after``, ``missing``). Whether a
flow is stuck, and what it waits for, is alerts' to decide; when that moves out of ``Flow``,
only this module changes: ``flow_states`` composes the displayed state from both apps, and
``with_status`` filters on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple

from django.db.models import Count, QuerySet

from tracing.models import Flow

# The statuses a flow can show, as the API filters and documents them.
FLOW_STATUSES = Flow.Status


class FlowState(NamedTuple):
    status: str
    missing: list[dict[str, Any]]  # expected steps not seen yet: MissingStep in the API's schema
    stuck_after: datetime | None  # when the flow turns stuck if nothing more arrives


def flow_states(flows: Iterable[Flow]) -> dict[int, FlowState]:
    """Each flow's displayed state, by flow id; one call per list, so a composed state costs one
    query per page, not one per flow."""
    return {flow.id: FlowState(flow.status, flow.missing, flow.stuck_after) for flow in flows}


def with_status(flows: QuerySet[Flow], status: str) -> QuerySet[Flow]:
    """Only the flows showing ``status``."""
    return flows.filter(status=status)


def count_by_status(flows: QuerySet[Flow]) -> dict[str, int]:
    """How many of these flows show each status (every status, zeros included)."""
    by_status = dict(flows.values_list("status").annotate(n=Count("id")))
    return {status: by_status.get(status, 0) for status in FLOW_STATUSES.values}
