"""``GET /api/schema``: the OpenAPI document of the JSON API.

Each API module describes its own routes in ``OPENAPI_PATHS`` (and shared shapes in
``OPENAPI_SCHEMAS``); this module collects them, so a new module only adds its name to
``API_MODULES``.
"""

from __future__ import annotations

import importlib
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

API_MODULES = ("dashboard.api.flows", "dashboard.api.topology", "dashboard.api.alerts")

BASE: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Choreoscope API",
        "version": "1",
        "description": "Flows rebuilt from CloudEvents and OpenTelemetry spans, the service map, and alerts. "
        "Authenticate with a logged-in session or 'Authorization: Bearer <token>' (scope read).",
    },
    "security": [{"session": []}, {"bearer": []}],
    "components": {
        "securitySchemes": {
            "session": {"type": "apiKey", "in": "cookie", "name": "sessionid"},
            "bearer": {"type": "http", "scheme": "bearer"},
        },
        "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
        },
        "responses": {
            "BadRequest": {
                "description": "A parameter is invalid; the message says which and why.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
            "Unauthorized": {
                "description": "No session and no valid read token.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
            "NotFound": {
                "description": "No such resource.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        },
    },
    "paths": {},
}


def openapi_document() -> dict[str, Any]:
    components = {**BASE["components"], "schemas": dict(BASE["components"]["schemas"])}
    document: dict[str, Any] = {**BASE, "paths": {}, "components": components}
    for name in API_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise
            continue
        document["paths"].update(getattr(module, "OPENAPI_PATHS", {}))
        document["components"]["schemas"].update(getattr(module, "OPENAPI_SCHEMAS", {}))
    return document


@require_GET
def schema(request: HttpRequest) -> JsonResponse:
    # The schema describes the API, it holds no data: it is readable without logging in.
    return JsonResponse(openapi_document())
