"""The alerts pages: ``/alerts/`` (incidents grouped by flow type and missing step, the alerts
themselves, notification channels with a test button) and ``/alerts/models/`` (each learned
flow model as a graph)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_POST

from alerts.delivery import send_test_notification
from alerts.models import Alert, NotificationChannel
from alerts.selectors import alert_counts, alert_groups, channel_rows, learned_models
from dashboard.api.serializers import serialize_alert, serialize_alert_group, serialize_learned_model
from dashboard.selectors import alert_list

RECENT = 100


@require_GET
@login_required
def alerts(request: HttpRequest) -> HttpResponse:
    state = request.GET.get("state") or ""
    if state not in Alert.State.values:
        state = ""
    page = alert_list(state or None, limit=RECENT).rows
    groups = [serialize_alert_group(group) for group in alert_groups()]
    context = {
        "state": state,
        "states": Alert.State.values,
        "counts": alert_counts(),
        "groups": [{**g, "since": parse_datetime(g["first_opened"])} for g in groups],
        "alerts": page,
        "channels": channel_rows(),
        "initial": {"state": state, "alerts": [serialize_alert(a) for a in page], "groups": groups},
    }
    return render(request, "dashboard/alerts.html", context)


@require_POST
@login_required
def test_channel(request: HttpRequest, channel_id: int) -> HttpResponse:
    channel = get_object_or_404(NotificationChannel, id=channel_id)
    delivery = send_test_notification(channel)
    detail = delivery.log[-1]["detail"] if delivery.log else ""
    if delivery.state == delivery.State.DELIVERED:
        messages.success(request, f"Test notification to {channel.name} delivered ({detail}).")
    else:
        messages.error(request, f"Test notification to {channel.name} failed: {detail}.")
    return redirect("dashboard:alerts")


@require_GET
@login_required
def flow_models(request: HttpRequest) -> HttpResponse:
    models = [serialize_learned_model(reading) for reading in learned_models()]
    settings_shown = {
        "min_flows": settings.MODEL_MIN_FLOWS,
        "expect_share": settings.EXPECT_SHARE,
        "factor": settings.STUCK_FACTOR,
        "floor": settings.STUCK_FLOOR_SECONDS,
        "refresh": settings.MODEL_REFRESH_SECONDS,
        "quiet": settings.QUIET_SECONDS,
    }
    return render(request, "dashboard/flow_models.html", {"models": models, "learning": settings_shown})
