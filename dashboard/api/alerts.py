"""``GET /api/alerts``, ``GET /api/alerts/groups``, ``POST /api/alerts/<id>/ack`` and
``GET /api/flow-models``."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from alerts.selectors import alert_groups, learned_models
from alerts.services import AlertAlreadyResolved, AlertNotFound, acknowledge_alert
from dashboard.api.auth import api_read, error_response
from dashboard.api.openapi import BAD_REQUEST, NOT_FOUND, UNAUTHORIZED, Operation, Response
from dashboard.api.params import ALERT_PARAMETERS, InvalidQuery, parse_alert_state, parse_limit, reject_unknown
from dashboard.api.serializers import (
    Alert,
    AlertGroups,
    AlertPage,
    Error,
    LearnedFlowModels,
    serialize_alert,
    serialize_alert_groups,
    serialize_alert_page,
    serialize_learned_models,
)
from dashboard.selectors import alert_list


def _no_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse()


def api_write(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A session (with its CSRF token, as any form post) or a bearer token of scope ``read``:
    a token is not an ambient credential, so it needs no CSRF token."""

    @csrf_exempt
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated and "Authorization" not in request.headers:
            refused = CsrfViewMiddleware(_no_view).process_view(request, _no_view, (), {})
            if refused is not None:
                return error_response("Missing or wrong CSRF token: send the X-CSRFToken header of your session.", 403)
        return api_read(view)(request, *args, **kwargs)

    return wrapped


@require_GET
@api_read
def alerts(request: HttpRequest) -> JsonResponse:
    try:
        reject_unknown(request.GET, ALERT_PARAMETERS)
        state = parse_alert_state(request.GET.get("state"))
        page = alert_list(state, request.GET.get("cursor") or None, parse_limit(request.GET.get("limit")))
    except InvalidQuery as error:
        return error_response(str(error), 400)
    return JsonResponse(serialize_alert_page(page))


@require_GET
@api_read
def groups(request: HttpRequest) -> JsonResponse:
    return JsonResponse(serialize_alert_groups(alert_groups()))


@require_POST
@api_write
def acknowledge(request: HttpRequest, alert_id: int) -> JsonResponse:
    try:
        alert = acknowledge_alert(alert_id, request.user)
    except AlertNotFound as error:
        return error_response(str(error), 404)
    except AlertAlreadyResolved as error:
        return error_response(str(error), 409)
    return JsonResponse(serialize_alert(alert))


@require_GET
@api_read
def flow_models(request: HttpRequest) -> JsonResponse:
    return JsonResponse(serialize_learned_models(learned_models()))


OPERATIONS = (
    Operation(
        "get",
        "/api/alerts",
        "Alerts about stuck flows, newest first, one page at a time.",
        {200: Response("One page.", AlertPage), 400: BAD_REQUEST, 401: UNAUTHORIZED},
        ALERT_PARAMETERS,
    ),
    Operation(
        "get",
        "/api/alerts/groups",
        "Unresolved alerts grouped by flow type and missing step, with counts (incidents).",
        {200: Response("The groups, largest first.", AlertGroups), 401: UNAUTHORIZED},
    ),
    Operation(
        "post",
        "/api/alerts/{id}/ack",
        "Acknowledge an open alert (acknowledging twice is harmless). A session must send X-CSRFToken.",
        {
            200: Response("The alert.", Alert),
            401: UNAUTHORIZED,
            403: Response("A session without its CSRF token.", Error),
            404: NOT_FOUND,
            409: Response("The alert is already resolved.", Error),
        },
    ),
    Operation(
        "get",
        "/api/flow-models",
        "Learned flow models: steps, transitions with flows, share, p50/p95/p99 seconds, and whether each is "
        "expected (with its deadline), beside the declared expectations of the same flow type.",
        {200: Response("One entry per flow type.", LearnedFlowModels), 401: UNAUTHORIZED},
    ),
)
