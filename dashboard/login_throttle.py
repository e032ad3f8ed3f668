"""Log-in throttling, per account and per client address, for the site's and the admin's log-in.

Every attempt is counted *before* the password is checked (an atomic increment in the cache:
Redis in production, shared by every web process), so that parallel guesses cannot slip past the
limit while the first ones are still being checked. A successful log-in takes its attempt back
and clears the account's record; a failure leaves it counted. Once an account or an address
reaches its limit within the window, it is locked out: every attempt is refused without checking
the password, whether the account exists or not (so the answer reveals nothing about it). Each
lock-out that follows another within a day lasts twice as long as the one before, up to a day.

An address is the connection's peer as the server saw it (``REMOTE_ADDR``); a proxy's
``X-Forwarded-For`` counts only when ``CHOREOSCOPE_TRUSTED_PROXIES`` names that proxy (``manage.py
serve`` hands it to uvicorn), so a client cannot pick a fresh address for every guess.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

from dashboard.metrics import observe_login

ACCOUNT, ADDRESS = "account", "address"
LONGEST_LOCKOUT_SECONDS = 24 * 3600
# A lock-out that follows another within this time grows (doubles).
STRIKE_MEMORY_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Refusal:
    """Why an attempt is refused, and for how long."""

    subject: str  # ACCOUNT or ADDRESS
    retry_after_seconds: int

    @property
    def message(self) -> str:
        whose = "for this account" if self.subject == ACCOUNT else "from your network address"
        return f"Too many failed log-ins {whose}; try again in {wait_in_words(self.retry_after_seconds)}."


def wait_in_words(seconds: int) -> str:
    """``59`` → "1 minute", ``61`` → "2 minutes", ``7200`` → "120 minutes": always rounded up."""
    minutes = max(1, math.ceil(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def lockout_seconds(base_seconds: int, strikes: int) -> int:
    """The length of the ``strikes``-th lock-out in a row (1 is the first): doubling, capped."""
    return min(base_seconds * 2 ** max(0, min(strikes, 32) - 1), max(base_seconds, LONGEST_LOCKOUT_SECONDS))


def _digest(value: str) -> str:
    # Keys hold no user names or addresses in clear, and stay short whatever was typed.
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _key(kind: str, subject: str, identity: str) -> str:
    return f"login-throttle:{kind}:{subject}:{_digest(identity)}"


def _limit(subject: str) -> int:
    return settings.LOGIN_FAILURES_PER_ACCOUNT if subject == ACCOUNT else settings.LOGIN_FAILURES_PER_ADDRESS


def _increment(key: str, timeout: int) -> int:
    cache.add(key, 0, timeout)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout)
        return 1


def _locked_for(subject: str, identity: str, now: float) -> int:
    until = cache.get(_key("locked", subject, identity))
    return max(0, math.ceil(until - now)) if until else 0


def _lock(subject: str, identity: str, now: float) -> int:
    strikes = _increment(_key("strikes", subject, identity), STRIKE_MEMORY_SECONDS)
    duration = lockout_seconds(settings.LOGIN_LOCKOUT_SECONDS, strikes)
    cache.set(_key("locked", subject, identity), now + duration, duration)
    cache.delete(_key("attempts", subject, identity))
    observe_login("lockout")
    return duration


class LoginAttempt:
    """One log-in attempt: ``begin`` it before checking the password, then report the outcome."""

    def __init__(self, username: str, address: str) -> None:
        self.identities = {ACCOUNT: username.strip().lower(), ADDRESS: address or "unknown"}
        self.counted: list[str] = []

    def begin(self, now: float | None = None) -> Refusal | None:
        """Count the attempt; a ``Refusal`` means: do not check the password at all."""
        now = time.time() if now is None else now
        for subject, identity in self.identities.items():
            if seconds := _locked_for(subject, identity, now):
                observe_login("refused")
                return Refusal(subject, seconds)
        for subject, identity in self.identities.items():
            attempts = _increment(_key("attempts", subject, identity), settings.LOGIN_WINDOW_SECONDS)
            self.counted.append(subject)
            if attempts > _limit(subject):
                # Parallel guesses past the limit: lock now, before any of them is checked.
                observe_login("refused")
                return Refusal(subject, _lock(subject, identity, now))
        return None

    def failed(self, now: float | None = None) -> Refusal | None:
        """The password was wrong; a ``Refusal`` when this failure started a lock-out."""
        now = time.time() if now is None else now
        observe_login("failed")
        refusals = [
            Refusal(subject, _lock(subject, identity, now))
            for subject, identity in self.identities.items()
            if cache.get(_key("attempts", subject, identity), 0) >= _limit(subject)
        ]
        return refusals[0] if refusals else None

    def succeeded(self) -> None:
        """The right password: the account starts afresh; the address only takes this attempt
        back (many people may share one address, and one good log-in must not clear another's
        guesses)."""
        account = self.identities[ACCOUNT]
        cache.delete_many([_key(kind, ACCOUNT, account) for kind in ("attempts", "locked", "strikes")])
        if ADDRESS in self.counted:
            with contextlib.suppress(ValueError):  # the window ended meanwhile
                cache.decr(_key("attempts", ADDRESS, self.identities[ADDRESS]))


def client_address(meta: Mapping[str, Any]) -> str:
    return str(meta.get("REMOTE_ADDR") or "unknown")


def answer_refusal(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """429 with ``Retry-After`` when the log-in form refused the attempt (set by the forms in
    ``dashboard.forms``); the page still shows the form and the message."""
    refusal = getattr(request, "login_refusal", None)
    if isinstance(refusal, Refusal):
        response.status_code = 429
        response["Retry-After"] = str(refusal.retry_after_seconds)
    return response
