"""``GET /api/flows`` and ``GET /api/flows/<id>``."""

from __future__ import annotations

import json

import orjson
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from dashboard.api.auth import api_read, error_response
from dashboard.api.openapi import BAD_REQUEST, NOT_FOUND, UNAUTHORIZED, Operation, Response
from dashboard.api.params import FLOW_PARAMETERS, InvalidQuery, parse_flow_query, parse_limit, reject_unknown
from dashboard.api.serializers import FlowDetail, FlowPage, serialize_flow_page
from dashboard.selectors import flow_detail, flow_list
from tracing.selectors import resolve_flow


def fast_json(data: object) -> HttpResponse:
    # orjson encodes a thousand-node flow several times faster than the json module, but stops at
    # what it cannot encode (integers beyond 64 bits, 255 levels of nesting) that rows stored
    # before the ingestion limits may hold: those take the json module's slower, wider path.
    try:
        body = orjson.dumps(data)
    except orjson.JSONEncodeError:
        body = json.dumps(data, cls=DjangoJSONEncoder).encode()
    return HttpResponse(body, content_type="application/json")


MAX_ID = 2**63 - 1  # ids are 64-bit; a longer number names no flow (and would overflow SQLite)
MAX_ID_DIGITS = len(str(MAX_ID))


@require_GET
@api_read
def flows(request: HttpRequest) -> HttpResponse:
    try:
        reject_unknown(request.GET, FLOW_PARAMETERS)
        page = flow_list(parse_flow_query(request.GET), request.GET.get("cursor") or None, parse_limit(request.GET.get("limit")))
    except InvalidQuery as error:
        return error_response(str(error), 400)
    return fast_json(serialize_flow_page(page))


@require_GET
@api_read
def flow(request: HttpRequest, flow_id: str) -> HttpResponse:
    # The length first: int() refuses numbers of more than 4,300 digits with an error of its own.
    if not flow_id.isascii() or not flow_id.isdigit() or len(flow_id) > MAX_ID_DIGITS or int(flow_id) > MAX_ID:
        return error_response(f"{flow_id[:40]!r} is not a flow id: flow ids are whole numbers, as in /api/flows/42.", 404)
    found = resolve_flow(int(flow_id))
    if found is None:
        return error_response(f"There is no flow {flow_id}; it may have been removed by retention.", 404)
    return fast_json(flow_detail(found))


OPERATIONS = (
    Operation(
        "get",
        "/api/flows",
        "Flows, newest first (started_at, then id), one page at a time.",
        {200: Response("One page.", FlowPage), 400: BAD_REQUEST, 401: UNAUTHORIZED},
        FLOW_PARAMETERS,
    ),
    Operation(
        "get",
        "/api/flows/{id}",
        "One flow with its nodes (in causal order) and edges (cause to effect). "
        "The id of a flow merged into another answers with the surviving flow.",
        {200: Response("The flow.", FlowDetail), 401: UNAUTHORIZED, 404: NOT_FOUND},
    ),
)
