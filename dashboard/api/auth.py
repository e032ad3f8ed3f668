"""Who may read the JSON API: a logged-in user, or a bearer token of scope ``read``."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from tokens.auth import check_bearer
from tokens.metrics import observe_token_check

View = Callable[..., HttpResponse]


def error_response(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def api_read(view: View) -> View:
    """Let a request through with a session or a read token; otherwise answer 401 in JSON."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            check = check_bearer(request, "read", required=True)
            observe_token_check("api", check)
            if check.error:
                response = error_response(check.error, 401)
                response["WWW-Authenticate"] = 'Bearer realm="choreoscope"'
                return response
        return view(request, *args, **kwargs)

    return wrapped
