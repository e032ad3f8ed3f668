"""``GET /api/correlation-health``: what each service's instrumentation lacks for flows to come
out whole, over a window (``tracing.health``)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from dashboard.api.auth import api_read, error_response
from dashboard.api.openapi import BAD_REQUEST, UNAUTHORIZED, Operation, Response
from dashboard.api.params import HEALTH_PARAMETERS, InvalidQuery, parse_health_query, reject_unknown
from dashboard.api.serializers import CorrelationHealth
from dashboard.selectors import correlation_health_answer


@require_GET
@api_read
def correlation_health(request: HttpRequest) -> JsonResponse:
    try:
        reject_unknown(request.GET, HEALTH_PARAMETERS)
        query = parse_health_query(request.GET)
    except InvalidQuery as error:
        return error_response(str(error), 400)
    return JsonResponse(correlation_health_answer(query))


OPERATIONS = (
    Operation(
        "get",
        "/api/correlation-health",
        "Correlation health: per service, what its instrumentation lacks for flows to come out whole",
        {200: Response("The report", CorrelationHealth), 400: BAD_REQUEST, 401: UNAUTHORIZED},
        HEALTH_PARAMETERS,
    ),
)
