from __future__ import annotations

from django.apps import apps
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.http.request import split_domain_port
from django.shortcuts import render

from dashboard.selectors import overview_summary


def ingest_endpoints(request: HttpRequest) -> dict[str, str]:
    """Where a newcomer should point their services, as seen from this request's host."""
    domain, _port = split_domain_port(request.get_host())
    host = f"[{domain}]" if ":" in domain else domain
    scheme = "https" if request.is_secure() else "http"
    events_url = request.build_absolute_uri("/v1/events")
    otlp_base = f"{scheme}://{host}:{settings.OTLP_PORT}" if settings.OTLP_PORT else request.build_absolute_uri("/").rstrip("/")
    return {"otlp_base": otlp_base, "otlp_traces": f"{otlp_base}/v1/traces", "events": events_url}


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "dashboard/overview.html",
        {
            "summary": overview_summary(),
            "endpoints": ingest_endpoints(request),
            "ingest_auth": settings.INGEST_AUTH,
            # The demo shop plugs its faults panel in where it is installed (never in production).
            "demo_panel": apps.is_installed("demo"),
        },
    )
