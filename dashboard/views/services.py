"""``/services/``: the service map (the page; updates come over ``/ws/topology/``), and
``/services/coupling/``: how coupled each flow type is (``tracing.coupling``)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from dashboard.live_feed import topology_snapshot
from tracing.coupling import SAMPLE_FLOWS, SETTLE_SECONDS, coupling_by_type, recent_flow_samples
from tracing.topology import DEFAULT_WINDOW, WINDOWS, parse_window

COUPLING_WINDOW = "1h"


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


@login_required
@require_GET
def coupling(request: HttpRequest) -> HttpResponse:
    try:
        window, seconds = parse_window(request.GET.get("window") or COUPLING_WINDOW)
        error = None
    except ValueError as problem:
        (window, seconds), error = parse_window(COUPLING_WINDOW), str(problem)
    samples = recent_flow_samples(seconds)
    context = {
        "window": window,
        "windows": list(WINDOWS),
        "error": error,
        "types": coupling_by_type(samples),
        "sampled": len(samples),
        "sample_limit": SAMPLE_FLOWS,
        "settle_seconds": SETTLE_SECONDS,
    }
    return render(request, "dashboard/coupling.html", context, status=400 if error else 200)
