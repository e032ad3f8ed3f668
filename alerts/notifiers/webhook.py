"""Webhook notifications: a JSON POST signed with HMAC-SHA256.

Receivers verify ``X-Choreoscope-Signature: sha256=<hex>``, the HMAC-SHA256 of the exact body
bytes under ``CHOREOSCOPE_WEBHOOK_SECRET``, and may de-duplicate on ``X-Choreoscope-Delivery``
(a retried delivery keeps its id).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from typing import Any

from django.conf import settings

from alerts.notifiers import Outcome

SIGNATURE_HEADER = "X-Choreoscope-Signature"
DELIVERY_HEADER = "X-Choreoscope-Delivery"
TIMEOUT_SECONDS = 5


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def send(channel: Any, payload: dict[str, Any], delivery_id: int) -> Outcome:
    url = channel.target.strip()
    if not url.startswith(("http://", "https://")):
        return Outcome(False, f"not an http(s) URL: {url[:100]}")
    body = encode(payload)
    request = urllib.request.Request(  # noqa: S310 (the scheme is checked above)
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "Choreoscope-Webhook/1",
            SIGNATURE_HEADER: signature(settings.WEBHOOK_SECRET, body),
            DELIVERY_HEADER: str(delivery_id),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            return Outcome(200 <= response.status < 300, f"HTTP {response.status}")
    except urllib.error.HTTPError as error:
        return Outcome(False, f"HTTP {error.code} {error.reason}")
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return Outcome(False, f"unreachable: {reason}")
