"""The demo shop's faults panel on the overview: read the current faults (JSON) and change them (POST)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from demo.fault_settings import clear_all_faults, panel_state, store_faults
from demo.forms import FaultForm


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _done(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(panel_state())
    return redirect(reverse("dashboard:overview") + "#demo-faults")


@login_required
@require_http_methods(["GET", "POST"])
def faults(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return JsonResponse(panel_state())
    form = FaultForm(request.POST)
    if not form.is_valid():
        if _wants_json(request):
            return JsonResponse({"error": form.error_text(), "fields": form.errors.get_json_data()}, status=400)
        return HttpResponseBadRequest(f"The faults were not changed: {form.error_text()}", content_type="text/plain")
    store_faults(form.cleaned_data["service"], form.faults())
    return _done(request)


@login_required
@require_POST
def heal(request: HttpRequest) -> HttpResponse:
    clear_all_faults()
    return _done(request)
