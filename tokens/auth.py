"""Reading a bearer token off a request, for ingestion and the JSON API."""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest

from tokens.models import ApiToken, authenticate_token, token_in_other_scope


@dataclass(frozen=True)
class TokenCheck:
    token: ApiToken | None
    error: str | None  # a message a person can act on, when the check failed
    # Why it failed, for ``/metrics``: missing, malformed, unknown (or revoked) or wrong_scope.
    # The message says no more than "unknown, revoked, or not of scope", on purpose.
    reason: str | None = None


def bearer_token(authorization: str) -> str | None:
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def check_bearer(request: HttpRequest, scope: str, required: bool) -> TokenCheck:
    return check_authorization(request.headers.get("Authorization", ""), scope, required)


def check_authorization(header: str, scope: str, required: bool) -> TokenCheck:
    """An ``Authorization`` value, from an HTTP header or gRPC metadata."""
    if not header:
        if required:
            return TokenCheck(
                None, f"Missing token: send 'Authorization: Bearer <token>' with a token of scope '{scope}'.", "missing"
            )
        return TokenCheck(None, None)
    raw = bearer_token(header)
    if raw is None:
        return TokenCheck(None, "Malformed Authorization header: expected 'Bearer <token>'.", "malformed")
    token = authenticate_token(raw, scope)
    if token is None:
        reason = "wrong_scope" if token_in_other_scope(raw, scope) else "unknown"
        return TokenCheck(None, f"Invalid token: it is unknown, revoked, or not of scope '{scope}'.", reason)
    return TokenCheck(token, None)
