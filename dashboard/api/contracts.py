"""``GET /api/contracts``: the AsyncAPI documents' declared map against what ran in a window."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from dashboard.api.auth import api_read, error_response
from dashboard.api.openapi import BAD_REQUEST, UNAUTHORIZED, Operation, Response
from dashboard.api.paging import Page
from dashboard.api.params import CONTRACT_PARAMETERS, InvalidQuery, parse_contract_query, parse_limit, reject_unknown
from dashboard.api.serializers import ContractDriftPage, serialize_contract_drift_page
from dashboard.selectors import contract_list


@require_GET
@api_read
def contracts(request: HttpRequest) -> JsonResponse:
    try:
        reject_unknown(request.GET, CONTRACT_PARAMETERS)
        query = parse_contract_query(request.GET)
        page = contract_list(query, request.GET.get("cursor") or None, parse_limit(request.GET.get("limit")))
    except InvalidQuery as error:
        return error_response(str(error), 400)
    rows = Page([row for _, row in page.rows], page.next_cursor)
    return JsonResponse(serialize_contract_drift_page(rows))


OPERATIONS = (
    Operation(
        "get",
        "/api/contracts",
        "Declared contracts (AsyncAPI 3 documents) against what ran in the window: declared edges never "
        "observed, observed edges never declared, and payloads breaking a declared schema, each naming the "
        "party at fault. Payloads are checked on the newest 200 events of each sender and message.",
        {200: Response("One page.", ContractDriftPage), 400: BAD_REQUEST, 401: UNAUTHORIZED},
        CONTRACT_PARAMETERS,
    ),
)
