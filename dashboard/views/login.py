"""The site's log-in page: Django's, with the throttled form, answering 429 while locked out."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse

from dashboard.forms import ThrottledAuthenticationForm
from dashboard.login_throttle import answer_refusal


class LoginView(auth_views.LoginView):
    authentication_form = ThrottledAuthenticationForm
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return answer_refusal(request, super().post(request, *args, **kwargs))
