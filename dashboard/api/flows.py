"""``GET /api/flows`` and ``GET /api/flows/<id>``."""

from __future__ import annotations

from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from dashboard.api.auth import api_read, error_response
from tracing.queries import InvalidQuery, flow_detail, flow_list, flow_summary, parse_flow_filters, parse_limit, resolve_flow


def fast_json(data: object) -> HttpResponse:
    # orjson encodes a thousand-node flow several times faster than the json module.
    return HttpResponse(orjson.dumps(data), content_type="application/json")


MAX_ID = 2**63 - 1  # ids are 64-bit; a longer number names no flow (and would overflow SQLite)
KNOWN_PARAMETERS = frozenset({"key", "status", "type", "service", "event_type", "since", "until", "limit", "cursor"})


@require_GET
@api_read
def flows(request: HttpRequest) -> HttpResponse:
    unknown = sorted(set(request.GET) - KNOWN_PARAMETERS)
    if unknown:
        return error_response(f"Unknown parameter(s) {', '.join(unknown)}; use {', '.join(sorted(KNOWN_PARAMETERS))}.", 400)
    try:
        filters = parse_flow_filters(request.GET)
        page, next_cursor = flow_list(filters, request.GET.get("cursor") or None, parse_limit(request.GET.get("limit")))
    except InvalidQuery as error:
        return error_response(str(error), 400)
    return fast_json({"results": [flow_summary(flow) for flow in page], "next": next_cursor})


@require_GET
@api_read
def flow(request: HttpRequest, flow_id: str) -> HttpResponse:
    if not flow_id.isascii() or not flow_id.isdigit() or int(flow_id) > MAX_ID:
        return error_response(f"{flow_id[:40]!r} is not a flow id: flow ids are whole numbers, as in /api/flows/42.", 404)
    found = resolve_flow(int(flow_id))
    if found is None:
        return error_response(f"There is no flow {flow_id}; it may have been removed by retention.", 404)
    return fast_json(flow_detail(found))


def _query(name: str, description: str, **schema: object) -> dict[str, object]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": {"type": "string", **schema}}


_ERRORS: dict[str, Any] = {
    "400": {"$ref": "#/components/responses/BadRequest"},
    "401": {"$ref": "#/components/responses/Unauthorized"},
}
_INSTANT = {"type": "string", "format": "date-time"}
_NULLABLE_INSTANT = {"type": ["string", "null"], "format": "date-time"}

OPENAPI_SCHEMAS: dict[str, object] = {
    "FlowSummary": {
        "type": "object",
        "required": ["id", "key", "type", "status", "started_at", "last_seen_at", "services"],
        "properties": {
            "id": {"type": "integer"},
            "key": {"type": "string", "description": "Business key (e.g. order-1042), else the root trace id."},
            "type": {"type": "string", "description": "Configured flow type, else the root event's type."},
            "status": {"type": "string", "enum": ["running", "completed", "stuck", "failed"]},
            "started_at": _INSTANT,
            "last_seen_at": _INSTANT,
            "services": {"type": "array", "items": {"type": "string"}, "description": "In causal order of first appearance."},
            "steps": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "name": {"type": "string"},
                        "service": {"type": "string"},
                        "at": _INSTANT,
                    },
                },
            },
            "observation_count": {"type": "integer"},
            "error_count": {"type": "integer"},
            "root_trace_id": {"type": "string"},
            "stuck_after": _NULLABLE_INSTANT,
            "missing": {"type": "array", "items": {"type": "object"}},
        },
    },
    "FlowNode": {
        "type": "object",
        "required": ["id", "kind", "name", "service", "start", "end", "status", "trace_id", "span_id", "event_id"],
        "properties": {
            "id": {"type": "integer"},
            "kind": {"type": "string", "enum": ["event", "span"]},
            "name": {"type": "string", "description": "Span name, or the CloudEvent's type."},
            "service": {"type": "string"},
            "start": _INSTANT,
            "end": _NULLABLE_INSTANT,
            "start_ns": {"type": "integer"},
            "end_ns": {"type": ["integer", "null"]},
            "duration_ms": {"type": ["number", "null"]},
            "status": {"type": "string", "enum": ["unset", "ok", "error"]},
            "status_message": {"type": "string"},
            "trace_id": {"type": "string"},
            "span_id": {"type": "string", "description": "For an event, the span that emitted it (its traceparent)."},
            "event_id": {"type": "string"},
            "order": {"type": "integer", "description": "Position in causal order: causality first, timestamps second."},
            "business_key": {"type": "string"},
            "attributes": {"type": "object", "description": "Span attributes, or CloudEvents extension attributes."},
            "parent_span_id": {"type": "string"},
            "span_kind": {"type": "string"},
            "resource": {"type": "object"},
            "events": {"type": "array", "items": {"type": "object"}, "description": "Span events."},
            "links": {"type": "array", "items": {"type": "object"}, "description": "Span links."},
            "event_source": {"type": "string"},
            "data": {"description": "The CloudEvent's data."},
            "subject": {"type": ["string", "null"]},
            "datacontenttype": {"type": ["string", "null"]},
        },
    },
    "FlowEdge": {
        "type": "object",
        "required": ["source", "target", "kind"],
        "properties": {
            "source": {"type": "integer", "description": "The cause's node id."},
            "target": {"type": "integer", "description": "The effect's node id."},
            "kind": {"type": "string", "enum": ["caused_by", "emitted_by", "child_of", "follows_from", "delivers"]},
        },
    },
    "FlowDetail": {
        "allOf": [
            {"$ref": "#/components/schemas/FlowSummary"},
            {
                "type": "object",
                "required": ["nodes", "edges", "missing"],
                "properties": {
                    "nodes": {"type": "array", "items": {"$ref": "#/components/schemas/FlowNode"}},
                    "edges": {"type": "array", "items": {"$ref": "#/components/schemas/FlowEdge"}},
                },
            },
        ],
    },
}

_PAGE: dict[str, Any] = {
    "description": "One page.",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["results", "next"],
                "properties": {
                    "results": {"type": "array", "items": {"$ref": "#/components/schemas/FlowSummary"}},
                    "next": {"type": ["string", "null"], "description": "Cursor of the next page; null on the last."},
                },
            }
        }
    },
}

OPENAPI_PATHS: dict[str, object] = {
    "/api/flows": {
        "get": {
            "summary": "Flows, newest first (started_at, then id), one page at a time.",
            "parameters": [
                _query("key", "Exact business key, e.g. order-1042."),
                _query("status", "Flow status.", enum=["running", "completed", "stuck", "failed"]),
                _query("type", "Exact flow type."),
                _query("service", "Flows that touched this service."),
                _query("event_type", "Flows holding an event of this CloudEvents type."),
                _query("since", "Flows still active at or after this instant (ISO 8601).", format="date-time"),
                _query("until", "Flows started before this instant (ISO 8601).", format="date-time"),
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                },
                _query("cursor", "The 'next' value of the previous page."),
            ],
            "responses": {"200": _PAGE, "400": _ERRORS["400"], "401": _ERRORS["401"]},
        }
    },
    "/api/flows/{id}": {
        "get": {
            "summary": "One flow with its nodes (in causal order) and edges (cause to effect). "
            "The id of a flow merged into another answers with the surviving flow.",
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "responses": {
                "200": {
                    "description": "The flow.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FlowDetail"}}},
                },
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "404": {"$ref": "#/components/responses/NotFound"},
            },
        }
    },
}
