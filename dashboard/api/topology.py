"""``GET /api/topology``: the service map, producer → event type → consumer, over a window."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from dashboard.api.auth import api_read, error_response
from dashboard.api.openapi import BAD_REQUEST, UNAUTHORIZED, Operation, Response
from dashboard.api.params import TOPOLOGY_PARAMETERS, InvalidQuery, parse_window, reject_unknown
from dashboard.api.serializers import Topology, serialize_topology
from dashboard.live_feed import topology_snapshot


@require_GET
@api_read
def topology(request: HttpRequest) -> JsonResponse:
    try:
        reject_unknown(request.GET, TOPOLOGY_PARAMETERS)
        name, seconds = parse_window(request.GET.get("window"))
    except InvalidQuery as error:
        return error_response(str(error), 400)
    return JsonResponse(serialize_topology(name, topology_snapshot(name, seconds)))


OPERATIONS = (
    Operation(
        "get",
        "/api/topology",
        "The service map: producer → event type → consumer over a window",
        {200: Response("The map", Topology), 400: BAD_REQUEST, 401: UNAUTHORIZED},
        TOPOLOGY_PARAMETERS,
    ),
)
