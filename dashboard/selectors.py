"""Reads for the pages and the JSON API: the lists they share (parsed query in, one page out) and
the data of the overview and of one flow."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.utils import timezone

from alerts.models import Alert
from alerts.selectors import alert_page, alert_position
from alerts.status import filter_by_status, flow_states, status_counts
from dashboard.api.paging import Page, Position, paginate
from dashboard.api.params import DEFAULT_LIMIT, ContractQuery, FlowQuery, HealthQuery
from dashboard.api.serializers import CorrelationHealth, FlowDetail, serialize_correlation_health, serialize_flow_detail
from tracing.contracts import DriftRow, contract_report
from tracing.health import correlation_health, only_service
from tracing.models import Flow, Observation
from tracing.records import span_identity
from tracing.selectors import Narrowing, flow_graph, flow_page, flow_position
from tracing.topology import WINDOWS


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
    """The ``GET /api/flows/<id>`` shape of a flow."""
    return serialize_flow_detail(flow, flow_states([flow])[flow.id], flow_graph(flow.id))


def flow_page_detail(flow: Flow) -> FlowDetail:
    """The same, as the flow page and its socket draw it (``with_linked_flows``)."""
    return with_linked_flows(flow_detail(flow))


def with_linked_flows(detail: FlowDetail) -> FlowDetail:
    """Mark span links that point into another flow with that flow's id and key, so the
    inspector can make them clickable (OTel messaging consumers link to producers across traces)."""
    # A link usually points inside this flow; a batch consumer's links point at other orders' flows.
    inside = {(node.get("trace_id"), node.get("span_id")) for node in detail["nodes"] if node.get("kind") == "span"}
    wanted: dict[str, list[dict[str, Any]]] = {}
    for node in detail["nodes"]:
        for link in node.get("links") or []:
            if not isinstance(link, dict) or not link.get("trace_id") or not link.get("span_id"):
                continue
            if (link["trace_id"], link["span_id"]) not in inside:
                wanted.setdefault(span_identity(str(link["trace_id"]), str(link["span_id"])), []).append(link)
    if wanted:
        found = Observation.objects.filter(identity__in=list(wanted), flow__isnull=False)
        for identity, flow_id, key in found.values_list("identity", "flow_id", "flow__key"):
            for link in wanted[identity]:
                if flow_id != detail["id"]:
                    link["flow_id"], link["flow_key"] = flow_id, key
    return detail


@dataclass(frozen=True)
class RecentFlow:
    flow: Flow
    status: str  # as people see it (alerts.status)


@dataclass(frozen=True)
class OverviewSummary:
    has_data: bool
    flows_by_status: dict[str, int]
    recent_flows: list[RecentFlow]


def overview_summary() -> OverviewSummary:
    has_data = Observation.objects.exists()
    surviving = Flow.objects.filter(merged_into__isnull=True)
    newest = list(surviving.order_by("-started_at", "-id")[:8]) if has_data else []
    states = flow_states(newest)
    recent = [RecentFlow(flow, states[flow.id].status) for flow in newest]
    return OverviewSummary(has_data=has_data, flows_by_status=status_counts(surviving), recent_flows=recent)


# --- Declared contracts vs what runs ------------------------------------------------------------

CONTRACTS_CACHE_SECONDS = 5  # the page, the API and the map overlay share one comparison this long
ROW_ORDER_ORIGIN = datetime(1970, 1, 1, tzinfo=UTC)  # drift rows page by their place in the list


def forget_contract_rows() -> None:
    """Drop the cached comparisons, so the next read compares again (documents changed)."""
    cache.delete_many([f"contracts:{window}" for window in WINDOWS])


def contract_rows(window: str, seconds: int) -> list[DriftRow]:
    """The drift over a window, computed at most every few seconds."""
    key = f"contracts:{window}"
    rows = cache.get(key)
    if rows is None:
        rows = contract_report(seconds)
        cache.set(key, rows, timeout=CONTRACTS_CACHE_SECONDS)
    return rows


def contract_list(query: ContractQuery, cursor: str | None = None, limit: int = DEFAULT_LIMIT) -> Page[tuple[int, DriftRow]]:
    """One page of drift rows, in the report's order (kind, message, producer, consumer)."""
    rows = [
        (place, row)
        for place, row in enumerate(contract_rows(query.window, query.seconds), start=1)
        if (query.kind is None or row.kind == query.kind)
        and (query.service is None or query.service in (row.producer, row.consumer, row.party))
    ]

    def fetch(after: Position | None, count: int) -> list[tuple[int, DriftRow]]:
        return [item for item in rows if after is None or item[0] > after[1]][:count]

    return paginate(fetch, lambda item: (ROW_ORDER_ORIGIN, item[0]), cursor, limit)


def correlation_health_answer(query: HealthQuery, now: datetime | None = None) -> CorrelationHealth:
    """The ``GET /api/correlation-health`` shape (and the page's data) for ``query``."""
    now = now or timezone.now()
    report = correlation_health(query.seconds, now)
    if query.service is not None:
        report = only_service(report, query.service)
    return serialize_correlation_health(query.window, query.service, now - timedelta(seconds=query.seconds), report)
