"""The flows pages: ``/flows/`` (search and filter, newest first) and ``/flows/<id>/`` (one
flow's causal graph, timeline and inspector). The filters, paging and flow data are the JSON
API's (``dashboard.api``, ``dashboard.selectors``); these views only shape what the templates show."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from alerts.status import FlowState, ShownStatus, flips_of, flow_states
from dashboard.api.params import FLOW_FILTER_NAMES as FILTER_NAMES
from dashboard.api.params import InvalidQuery, parse_flow_query
from dashboard.selectors import flow_list, flow_page_detail
from tracing.models import Flow
from tracing.selectors import resolve_flow

PAGE_SIZE = 50
MAX_STEPS_SHOWN = 12
# "Last …" presets of the time range filter; a preset sets ``since`` relative to now.
RANGES = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
}
RANGE_LABELS = {"15m": "Last 15 minutes", "1h": "Last hour", "6h": "Last 6 hours", "24h": "Last 24 hours", "7d": "Last 7 days"}


def human_duration(seconds: float) -> str:
    """``850 ms``, ``4.2 s``, ``3 m 12 s``, ``2 h 05 m``, ``3 d 4 h`` (matches flow-format.js)."""
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} m {whole % 60} s"
    if whole < 86_400:
        return f"{whole // 3600} h {whole // 60 % 60:02d} m"
    return f"{whole // 86_400} d {whole // 3600 % 24} h"


@dataclass(frozen=True)
class FlowRow:
    """What one row of the list shows, computed once here: fifty rows of template filters and
    ``{% url %}`` tags cost more than the query that found them."""

    flow: Flow
    url: str
    timing: str  # "took 3 m 13 s" for finished flows, "open for 5 m 2 s" for the others
    timing_title: str
    started_iso: str
    started_ago: str
    steps: list[dict[str, Any]]
    more_steps: int
    status: str  # as people see it (alerts.status)
    waiting_for: str  # what a stuck flow waits for, "" otherwise


def waiting_text(missing: list[dict[str, Any]]) -> str:
    if not missing:
        return ""
    first = missing[0]
    who = f" from {first['service']}" if first.get("service") else ""
    more = f" (+{len(missing) - 1} more)" if len(missing) > 1 else ""
    return f"waiting for {first.get('step', 'a step')}{who}{more}"


def flow_row(flow: Flow, state: FlowState, now: datetime, flow_url: str) -> FlowRow:
    if state.status in (ShownStatus.COMPLETED, ShownStatus.FAILED):
        elapsed = (flow.last_seen_at - flow.started_at).total_seconds()
        timing, title = f"took {human_duration(elapsed)}", "from the first to the last observation"
    else:
        elapsed = (now - flow.started_at).total_seconds()
        quiet = (now - flow.last_seen_at).total_seconds()
        timing, title = f"open for {human_duration(max(elapsed, 0))}", f"last observation {human_duration(max(quiet, 0))} ago"
    steps = [step for step in flow.steps if isinstance(step, dict)]
    return FlowRow(
        flow=flow,
        url=f"{flow_url.rpartition('/0/')[0]}/{flow.pk}/",
        timing=timing,
        timing_title=title,
        started_iso=flow.started_at.isoformat(),
        started_ago=f"started {human_duration(max((now - flow.started_at).total_seconds(), 0))} ago",
        steps=steps[:MAX_STEPS_SHOWN],
        more_steps=max(len(steps) - MAX_STEPS_SHOWN, 0),
        status=state.status,
        waiting_for=waiting_text(state.missing) if state.status == ShownStatus.STUCK else "",
    )


def filter_params(query: QueryDict, now: datetime) -> dict[str, str]:
    """The request's filters as ``parse_flow_query`` reads them; a ``range`` preset fills ``since``."""
    params = {name: query.get(name, "").strip() for name in FILTER_NAMES}
    preset = query.get("range", "")
    if preset:
        if preset not in RANGES:
            raise InvalidQuery(f"'range' must be one of {', '.join(RANGES)}, not {preset!r}.")
        if not params["since"]:
            params["since"] = (now - RANGES[preset]).isoformat()
    return params


def page_url(query: QueryDict, **changes: str | None) -> str:
    params = {key: value for key, value in query.items() if value and key != "cursor"}
    for key, value in changes.items():
        if value:
            params[key] = value
    return f"{reverse('dashboard:flows')}?{urlencode(params)}" if params else reverse("dashboard:flows")


@login_required
@require_GET
def flows(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    query = request.GET
    context: dict[str, Any] = {
        "query": {name: query.get(name, "") for name in (*FILTER_NAMES, "range")},
        "statuses": ShownStatus.values,
        "ranges": RANGE_LABELS,
        "filtered": any(query.get(name) for name in (*FILTER_NAMES, "range")),
        "paged": bool(query.get("cursor")),
        "rows": [],
        "next_url": None,
    }
    try:
        page = flow_list(parse_flow_query(filter_params(query, now)), query.get("cursor") or None, PAGE_SIZE)
    except InvalidQuery as error:
        context["error"] = str(error)
        return render(request, "dashboard/flows.html", context, status=400)
    flow_url = reverse("dashboard:flow", args=[0])  # reversed once; each row fills in its id
    states = flow_states(page.rows)
    context["rows"] = [flow_row(flow, states[flow.id], now, flow_url) for flow in page.rows]
    context["next_url"] = page_url(query, cursor=page.next_cursor) if page.next_cursor else None
    context["first_url"] = page_url(query)
    context["anything"] = bool(page.rows) or Flow.objects.exists()
    return render(request, "dashboard/flows.html", context)


@login_required
@require_GET
def flow(request: HttpRequest, flow_id: int) -> HttpResponse:
    found = resolve_flow(flow_id)
    if found is None:
        raise Http404(f"There is no flow {flow_id}; it may have expired.")
    if found.id != flow_id:
        # Absorbed by another flow when a late observation joined them: old links keep working.
        return redirect("dashboard:flow", flow_id=found.id)
    detail = flow_page_detail(found)
    config = {"trace_url": settings.TRACE_URL, "flows_url": reverse("dashboard:flows")}
    context = {
        "flow": found,
        "status": detail["status"],
        "flips": flips_of(found.id),
        "detail": detail,
        "config": config,
        "api_url": f"/api/flows/{found.id}",
    }
    return render(request, "dashboard/flow.html", context)
