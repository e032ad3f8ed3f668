"""``/services/health/``: correlation health, the page of ``GET /api/correlation-health``."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from dashboard.api.params import HealthQuery, InvalidQuery, parse_health_query
from dashboard.selectors import correlation_health_answer
from tracing.health import DEFAULT_WINDOW, FIX, INFO
from tracing.topology import WINDOWS


def milliseconds_text(ms: float) -> str:
    """``1950.0`` → ``"1.95 s"``, ``12.5`` → ``"12.5 ms"``."""
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    return f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"


def seconds_text(seconds: float) -> str:
    if seconds < 1:
        return milliseconds_text(seconds * 1000)
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def page_context(report: dict[str, Any]) -> dict[str, Any]:
    """What the template shows beyond the API's answer: counts and readable durations."""
    findings = report["findings"]
    skews = [
        {**row, "median": milliseconds_text(row["median_ms"]), "max": milliseconds_text(row["max_ms"])}
        for row in report["clock_skew"]
    ]
    reused = [
        {**row, "span": seconds_text(row["span_seconds"]), "usual_span": seconds_text(row["usual_span_seconds"])}
        for row in report["reused_keys"]
    ]
    return {
        "to_fix": sum(1 for row in findings if row["severity"] == FIX),
        "to_check": sum(1 for row in findings if row["severity"] not in (FIX, INFO)),
        "shared_steps": sum(row["shared_steps"] for row in report["batching"]),
        "cross_flow_edges": sum(row["cross_flow_edges"] for row in report["batching"]),
        "skews": skews,
        "reused": reused,
    }


@login_required
@require_GET
def correlation_health(request: HttpRequest) -> HttpResponse:
    try:
        query, error = parse_health_query(request.GET), None
    except InvalidQuery as problem:
        query, error = HealthQuery(DEFAULT_WINDOW, WINDOWS[DEFAULT_WINDOW]), str(problem)
    report = correlation_health_answer(query)
    context = {"report": report, "windows": list(WINDOWS), "query": query, "error": error, **page_context(dict(report))}
    return render(request, "dashboard/correlation_health.html", context, status=400 if error else 200)
