"""Who may read the JSON API: a logged-in user, or a bearer token of scope ``read``."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase

from tokens.auth import check_bearer
from tokens.metrics import observe_token_check

View = Callable[..., HttpResponse]
AnyView = TypeVar("AnyView", bound=Callable[..., HttpResponseBase])  # streaming answers too


def error_response(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def api_read(view: AnyView) -> AnyView:
    """Let a request through with a session or a read token; otherwise answer 401 in JSON."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            check = check_bearer(request, "read", required=True)
            observe_token_check("api", check)
            if check.error:
                response = error_response(check.error, 401)
                response["WWW-Authenticate"] = 'Bearer realm="choreoscope"'
                return response
        return view(request, *args, **kwargs)

    return cast(AnyView, wrapped)
