"""The log-in forms of the site and the admin, throttled per account and per client address."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm

from dashboard.login_throttle import LoginAttempt, Refusal, client_address

THROTTLED = "throttled"


class ThrottledLogInMixin:
    """Checks the throttle before the password: a locked-out account or address is refused with
    the time to wait, without the password being checked at all."""

    request: Any
    user_cache: Any
    cleaned_data: dict[str, Any]

    def clean(self) -> dict[str, Any]:
        username, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
        if not username or not password:
            return super().clean()  # type: ignore[misc]
        attempt = LoginAttempt(username, client_address(self.request.META if self.request else {}))
        if refusal := attempt.begin():
            self._refuse(refusal)
        try:
            cleaned: dict[str, Any] = super().clean()  # type: ignore[misc]
        except forms.ValidationError:
            if self.user_cache is None and (refusal := attempt.failed()):
                self._refuse(refusal)
            raise
        attempt.succeeded()
        return cleaned

    def _refuse(self, refusal: Refusal) -> None:
        if self.request is not None:
            # Read by the log-in views to answer 429 with Retry-After.
            self.request.login_refusal = refusal
        raise forms.ValidationError(refusal.message, code=THROTTLED)


class ThrottledAuthenticationForm(ThrottledLogInMixin, AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "Your user name and password didn't match. Please try again.",
    }


class ThrottledAdminAuthenticationForm(ThrottledLogInMixin, AdminAuthenticationForm):
    pass
