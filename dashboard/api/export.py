"""``GET /api/flows/export.ocel.json``: the flows the list's filters select, newest first and at
most ``CHOREOSCOPE_OCEL_EXPORT_MAX_FLOWS`` of them, as one OCEL 2.0 JSON document (``dashboard.ocel``),
streamed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_GET

from alerts.status import flow_states
from dashboard.api.auth import api_read, error_response
from dashboard.api.openapi import BAD_REQUEST, UNAUTHORIZED, Operation, Response
from dashboard.api.params import EXPORT_PARAMETERS, InvalidQuery, parse_flow_query, reject_unknown
from dashboard.api.serializers import OcelDocument
from dashboard.ocel import ocel_chunks
from dashboard.selectors import flow_list
from tracing.selectors import cross_flow_causes, flows_business_events


@require_GET
@api_read
def ocel_export(request: HttpRequest) -> HttpResponseBase:
    try:
        reject_unknown(request.GET, EXPORT_PARAMETERS)
        page = flow_list(parse_flow_query(request.GET), None, settings.OCEL_EXPORT_MAX_FLOWS)
    except InvalidQuery as error:
        return error_response(str(error), 400)
    states = flow_states(page.rows)
    flows: list[Mapping[str, Any]] = [
        {"id": f.id, "key": f.key, "type": f.type, "status": states[f.id].status, "started_at": f.started_at} for f in page.rows
    ]
    ids = [f.id for f in page.rows]
    key_of = {f.id: f.key for f in page.rows}
    follows = {flow_id: [key_of[cause] for cause in causes] for flow_id, causes in cross_flow_causes(ids).items()}
    response = StreamingHttpResponse(ocel_chunks(flows, follows, flows_business_events(ids)), content_type="application/json")
    response["Content-Disposition"] = 'attachment; filename="choreoscope.ocel.json"'
    response["X-Choreoscope-Flows"] = str(len(flows))
    # More flows matched than one export holds: these are the newest; narrow with since/until.
    response["X-Choreoscope-Truncated"] = "true" if page.next_cursor else "false"
    return response


OPERATIONS = (
    Operation(
        "get",
        "/api/flows/export.ocel.json",
        "The flows the filters select (newest first, at most CHOREOSCOPE_OCEL_EXPORT_MAX_FLOWS) as OCEL 2.0 JSON: "
        "business events as events, business keys as objects. X-Choreoscope-Truncated says whether more matched.",
        {200: Response("An OCEL 2.0 JSON document.", OcelDocument), 400: BAD_REQUEST, 401: UNAUTHORIZED},
        EXPORT_PARAMETERS,
    ),
)
