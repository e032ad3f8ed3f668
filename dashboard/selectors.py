"""Reads for the pages and the JSON API: the lists they share (parsed query in, one page out) and
the data of the overview and of one flow."""

from __future__ import annotations

from dataclasses import dataclass

from alerts.models import Alert
from alerts.selectors import alert_page, alert_position
from alerts.status import filter_by_status, flow_states, status_counts
from dashboard.api.paging import Page, Position, paginate
from dashboard.api.params import DEFAULT_LIMIT, FlowQuery
from dashboard.api.serializers import FlowDetail, serialize_flow_detail
from tracing.models import Flow, Observation
from tracing.selectors import Narrowing, flow_graph, flow_page, flow_position


def flow_list(query: FlowQuery, cursor: str | None = None, limit: int = DEFAULT_LIMIT) -> Page[Flow]:
    """One page of flows, newest first (``started_at``, then ``id``)."""
    status = query.status
    narrow: Narrowing | None = (lambda flows: filter_by_status(flows, status)) if status is not None else None

    def fetch(after: Position | None, count: int) -> list[Flow]:
        return flow_page(query.filters, after, count, narrow)

    return paginate(fetch, flow_position, cursor, limit)


def alert_list(state: str | None = None, cursor: str | None = None, limit: int = DEFAULT_LIMIT) -> Page[Alert]:
    """One page of alerts, newest first (``opened_at``, then ``id``)."""

    def fetch(after: Position | None, count: int) -> list[Alert]:
        return alert_page(state, after, count)

    return paginate(fetch, alert_position, cursor, limit)


def flow_detail(flow: Flow) -> FlowDetail:
    """The ``GET /api/flows/<id>`` shape of a flow: what the flow page and its socket draw."""
    return serialize_flow_detail(flow, flow_states([flow])[flow.id], flow_graph(flow.id))


@dataclass(frozen=True)
class OverviewSummary:
    has_data: bool
    flows_by_status: dict[str, int]
    recent_flows: list[Flow]


def overview_summary() -> OverviewSummary:
    has_data = Observation.objects.exists()
    surviving = Flow.objects.filter(merged_into__isnull=True)
    recent = list(surviving.order_by("-started_at", "-id")[:8]) if has_data else []
    return OverviewSummary(has_data=has_data, flows_by_status=status_counts(surviving), recent_flows=recent)
