"""``/live/``: the newest events and spans as they arrive (the page; the data comes over
``/ws/stream/``)."""

from __future__ import annotations

from dataclasses import asdict

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from dashboard.live_feed import FLOW_STATUSES, OBSERVATION_STATUSES, parse_stream_filters, recent_names

BUFFER_SIZE = 500  # rows one open tab keeps; older rows fall off the bottom


@login_required
@require_GET
def live(request: HttpRequest) -> HttpResponse:
    try:
        filters = parse_stream_filters({name: request.GET.get(name, "") for name in ("service", "type", "key", "status")})
        error = None
    except ValueError as problem:
        filters, error = parse_stream_filters({}), str(problem)
    services, types = recent_names()
    config = {"filters": asdict(filters), "buffer": BUFFER_SIZE, "flows_url": "/flows/"}
    context = {
        "filters": filters,
        "error": error,
        "services": services,
        "types": types,
        "observation_statuses": OBSERVATION_STATUSES,
        "flow_statuses": FLOW_STATUSES,
        "config": config,
    }
    return render(request, "dashboard/live.html", context, status=400 if error else 200)
