"""``GET /api/topology``: the service map, producer → event type → consumer, over a window."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from dashboard.api.auth import api_read, error_response
from dashboard.live_feed import topology_snapshot
from tracing.topology import WINDOWS, parse_window

KNOWN_PARAMETERS = frozenset({"window"})


@require_GET
@api_read
def topology(request: HttpRequest) -> JsonResponse:
    unknown = sorted(set(request.GET) - KNOWN_PARAMETERS)
    if unknown:
        return error_response(f"Unknown parameter(s) {', '.join(unknown)}; use window.", 400)
    try:
        name, seconds = parse_window(request.GET.get("window"))
    except ValueError as error:
        return error_response(str(error), 400)
    return JsonResponse({"window": name, **topology_snapshot(name, seconds)})


_NODE = {
    "type": "object",
    "required": ["id", "kind", "name"],
    "properties": {
        "id": {"type": "string", "description": "service:<name> or type:<event type>"},
        "kind": {"type": "string", "enum": ["service", "event_type"]},
        "name": {"type": "string"},
    },
}
_EDGE = {
    "type": "object",
    "required": ["source", "target", "count", "rate", "p95_ms", "error_share"],
    "properties": {
        "source": {"type": "string"},
        "target": {"type": "string"},
        "count": {"type": "integer", "description": "Events emitted (producer edges) or events reacted to (consumer edges)."},
        "rate": {"type": "number", "description": "Per second over the window."},
        "p95_ms": {"type": ["number", "null"], "description": "95th percentile reaction latency; null on producer edges."},
        "error_share": {"type": "number", "description": "Share with status error, 0..1."},
    },
}

OPENAPI_SCHEMAS: dict[str, object] = {
    "Topology": {
        "type": "object",
        "required": ["window", "nodes", "edges"],
        "properties": {
            "window": {"type": "string", "enum": list(WINDOWS)},
            "nodes": {"type": "array", "items": _NODE},
            "edges": {"type": "array", "items": _EDGE},
        },
    },
}
_TOPOLOGY_JSON = {"application/json": {"schema": {"$ref": "#/components/schemas/Topology"}}}

OPENAPI_PATHS: dict[str, object] = {
    "/api/topology": {
        "get": {
            "summary": "The service map: producer → event type → consumer over a window",
            "parameters": [
                {
                    "name": "window",
                    "in": "query",
                    "required": False,
                    "description": "5m, 15m (default), 1h or 24h",
                    "schema": {"type": "string", "enum": list(WINDOWS)},
                }
            ],
            "responses": {
                "200": {"description": "The map", "content": _TOPOLOGY_JSON},
                "400": {"$ref": "#/components/responses/BadRequest"},
                "401": {"$ref": "#/components/responses/Unauthorized"},
            },
        }
    }
}
