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

from alerts.selectors import InvalidAlertQuery, alert_groups, alert_json, alert_list, learned_models, parse_limit, parse_state
from alerts.services import AlertAlreadyResolved, AlertNotFound, acknowledge_alert
from dashboard.api.auth import api_read, error_response

KNOWN_PARAMETERS = frozenset({"state", "limit", "cursor"})


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
    unknown = sorted(set(request.GET) - KNOWN_PARAMETERS)
    if unknown:
        return error_response(f"Unknown parameter(s) {', '.join(unknown)}; use {', '.join(sorted(KNOWN_PARAMETERS))}.", 400)
    try:
        state = parse_state(request.GET.get("state"))
        page, next_cursor = alert_list(state, request.GET.get("cursor") or None, parse_limit(request.GET.get("limit")))
    except InvalidAlertQuery as error:
        return error_response(str(error), 400)
    return JsonResponse({"results": [alert_json(alert) for alert in page], "next": next_cursor})


@require_GET
@api_read
def groups(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"results": alert_groups()})


@require_POST
@api_write
def acknowledge(request: HttpRequest, alert_id: int) -> JsonResponse:
    try:
        alert = acknowledge_alert(alert_id, request.user)
    except AlertNotFound as error:
        return error_response(str(error), 404)
    except AlertAlreadyResolved as error:
        return error_response(str(error), 409)
    return JsonResponse(alert_json(alert))


@require_GET
@api_read
def flow_models(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"results": learned_models()})


_ERRORS: dict[str, Any] = {
    "400": {"$ref": "#/components/responses/BadRequest"},
    "401": {"$ref": "#/components/responses/Unauthorized"},
}
_JSON_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_INSTANT = {"type": "string", "format": "date-time"}
_NULLABLE_INSTANT = {"type": ["string", "null"], "format": "date-time"}

OPENAPI_SCHEMAS: dict[str, object] = {
    "MissingStep": {
        "type": "object",
        "required": ["step", "service", "after", "due_at"],
        "properties": {
            "step": {"type": "string", "description": "The expected event type or span name."},
            "service": {"type": "string", "description": "The service expected to act ('' when unknown)."},
            "after": {"type": "string", "description": "What it should have reacted to ('' for the overall deadline)."},
            "after_service": {"type": "string"},
            "due_at": _INSTANT,
            "origin": {"type": "string", "enum": ["learned", "declared"]},
        },
    },
    "Alert": {
        "type": "object",
        "required": [
            "id",
            "state",
            "flow_id",
            "flow_key",
            "flow_type",
            "step",
            "service",
            "after",
            "due_at",
            "missing",
            "opened_at",
        ],
        "properties": {
            "id": {"type": "integer"},
            "state": {"type": "string", "enum": ["open", "acknowledged", "resolved"]},
            "flow_id": {"type": "integer"},
            "flow_key": {"type": "string"},
            "flow_type": {"type": "string"},
            "step": {"type": "string", "description": "The first missing step (alerts are grouped by it)."},
            "service": {"type": "string"},
            "after": {"type": "string"},
            "due_at": _INSTANT,
            "missing": {"type": "array", "items": {"$ref": "#/components/schemas/MissingStep"}},
            "opened_at": _INSTANT,
            "acknowledged_at": _NULLABLE_INSTANT,
            "resolved_at": _NULLABLE_INSTANT,
        },
    },
}

_ALERT_PAGE: dict[str, Any] = {
    "description": "One page.",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["results", "next"],
                "properties": {
                    "results": {"type": "array", "items": {"$ref": "#/components/schemas/Alert"}},
                    "next": {"type": ["string", "null"], "description": "Cursor of the next page; null on the last."},
                },
            }
        }
    },
}

OPENAPI_PATHS: dict[str, object] = {
    "/api/alerts": {
        "get": {
            "summary": "Alerts about stuck flows, newest first, one page at a time.",
            "parameters": [
                {
                    "name": "state",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": ["open", "acknowledged", "resolved"]},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                },
                {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}},
            ],
            "responses": {"200": _ALERT_PAGE} | _ERRORS,
        }
    },
    "/api/alerts/groups": {
        "get": {
            "summary": "Unresolved alerts grouped by flow type and missing step, with counts (incidents).",
            "responses": {"200": {"description": "The groups, largest first."}, "401": _ERRORS["401"]},
        }
    },
    "/api/alerts/{id}/ack": {
        "post": {
            "summary": "Acknowledge an open alert (acknowledging twice is harmless). A session must send X-CSRFToken.",
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "responses": {
                "200": {
                    "description": "The alert.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Alert"}}},
                },
                "401": _ERRORS["401"],
                "403": {"description": "A session without its CSRF token.", "content": _JSON_ERROR},
                "404": {"$ref": "#/components/responses/NotFound"},
                "409": {"description": "The alert is already resolved.", "content": _JSON_ERROR},
            },
        }
    },
    "/api/flow-models": {
        "get": {
            "summary": "Learned flow models: steps, transitions with flows, share, p50/p95/p99 seconds, and whether each is "
            "expected (with its deadline), beside the declared expectations of the same flow type.",
            "responses": {"200": {"description": "One entry per flow type."}, "401": _ERRORS["401"]},
        }
    },
}
