"""API tokens: shown once, stored only as a SHA-256 digest, revocable, scoped."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "chs_"  # noqa: S105 - a recognisable prefix, not a secret


def token_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    class Scope(models.TextChoices):
        INGEST = "ingest", "Ingest (send spans and events)"
        READ = "read", "Read (JSON API)"

    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=10, choices=Scope.choices)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    hint = models.CharField(max_length=12, editable=False, help_text="The token's first characters, to recognise it.")
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.scope}, {self.hint}…)"

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def issue(cls, name: str, scope: str) -> tuple[ApiToken, str]:
        """Create a token and return it with its plaintext, which is never stored."""
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(name=name, scope=scope, digest=token_digest(raw), hint=raw[:10])
        return token, raw

    def revoke(self) -> None:
        self.revoked_at = timezone.now()
        self.save(update_fields=["revoked_at"])


def authenticate_token(raw: str, scope: str) -> ApiToken | None:
    """The active token with this plaintext and scope, or None."""
    digest = token_digest(raw)
    token = ApiToken.objects.filter(digest=digest, revoked_at__isnull=True, scope=scope).first()
    # The lookup is by digest; compare_digest keeps the final check constant-time anyway.
    if token is None or not hmac.compare_digest(token.digest, digest):
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def token_in_other_scope(raw: str, scope: str) -> bool:
    """Whether this plaintext is an active token of another scope (asked only after a refusal)."""
    return ApiToken.objects.filter(digest=token_digest(raw), revoked_at__isnull=True).exclude(scope=scope).exists()
