"""``/services/contracts/``: the AsyncAPI documents' declared map against what ran in a window."""

from __future__ import annotations

from collections import Counter

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from dashboard.api.params import CONTRACT_PARAMETERS, InvalidQuery, parse_contract_query, reject_unknown
from dashboard.selectors import contract_rows
from tracing.contracts import KINDS, PAYLOAD_SAMPLE, declared_applications, documents_problem
from tracing.topology import WINDOWS

KIND_LABELS = {
    "schema_violation": "Schema violations",
    "undeclared": "Undeclared",
    "declared_not_observed": "Declared, not seen",
}


@login_required
@require_GET
def contracts(request: HttpRequest) -> HttpResponse:
    try:
        reject_unknown(request.GET, CONTRACT_PARAMETERS)
        query, error = parse_contract_query(request.GET), None
    except InvalidQuery as problem:
        query, error = parse_contract_query({}), str(problem)
    rows = contract_rows(query.window, query.seconds)
    counts = Counter(row.kind for row in rows)
    applications = sorted(declared_applications(), key=lambda app: app.service)
    shown = [row for row in rows if query.kind is None or row.kind == query.kind]
    context = {
        "query": query,
        "error": error,
        "rows": shown,
        "total": len(rows),
        "tabs": [(kind, KIND_LABELS[kind], counts.get(kind, 0)) for kind in KINDS],
        "windows": list(WINDOWS),
        "applications": [{"app": app, "label": app.source.rsplit("/", 1)[-1]} for app in applications],
        "sample": PAYLOAD_SAMPLE,
        "problem": documents_problem(),
    }
    return render(request, "dashboard/contracts.html", context, status=400 if error else 200)
