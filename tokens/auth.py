"""Reading a bearer token off a request, for ingestion and the JSON API."""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest

from tokens.models import ApiToken, authenticate_token


@dataclass(frozen=True)
class TokenCheck:
    token: ApiToken | None
    error: str | None  # a message a person can act on, when the check failed


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
            return TokenCheck(None, f"Missing token: send 'Authorization: Bearer <token>' with a token of scope '{scope}'.")
        return TokenCheck(None, None)
    raw = bearer_token(header)
    if raw is None:
        return TokenCheck(None, "Malformed Authorization header: expected 'Bearer <token>'.")
    token = authenticate_token(raw, scope)
    if token is None:
        return TokenCheck(None, f"Invalid token: it is unknown, revoked, or not of scope '{scope}'.")
    return TokenCheck(token, None)
