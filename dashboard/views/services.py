"""``/services/``: the service map (the page; updates come over ``/ws/topology/``)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from dashboard.live_feed import topology_snapshot
from tracing.topology import DEFAULT_WINDOW, parse_window


@login_required
@require_GET
def services(request: HttpRequest) -> HttpResponse:
    try:
        window, seconds = parse_window(request.GET.get("window"))
        error = None
    except ValueError as problem:
        (window, seconds), error = parse_window(DEFAULT_WINDOW), str(problem)
    topology = {"window": window, **topology_snapshot(window, seconds)}
    context = {"window": window, "topology": topology, "error": error}
    return render(request, "dashboard/services.html", context, status=400 if error else 200)
