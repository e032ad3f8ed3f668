"""The admin site: Django's, with the throttled log-in form (see ``dashboard.login_throttle``).

Installed as the default admin site by ``dashboard.admin_apps.ChoreoscopeAdminConfig``, so every
``admin.site.register`` and ``@admin.register`` lands here."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from dashboard.forms import ThrottledAdminAuthenticationForm
from dashboard.login_throttle import answer_refusal


class ChoreoscopeAdminSite(admin.AdminSite):
    login_form = ThrottledAdminAuthenticationForm

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return answer_refusal(request, super().login(request, extra_context))
