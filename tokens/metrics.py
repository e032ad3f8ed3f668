"""Refused bearer tokens, on ``/metrics``: a spike of unknown tokens is someone guessing, a spike of
wrong scopes is a misconfigured client."""

from __future__ import annotations

from choreoscope.metrics import counter
from tokens.auth import TokenCheck

TOKEN_ERRORS = counter(
    "choreoscope_token_errors_total",
    "Requests refused for their bearer token, by endpoint group (ingest, api, metrics) and reason "
    "(missing, malformed, unknown, wrong_scope).",
    ["group", "reason"],
)


def observe_token_check(group: str, check: TokenCheck) -> None:
    if check.error:
        TOKEN_ERRORS.labels(group, check.reason or "unknown").inc()
