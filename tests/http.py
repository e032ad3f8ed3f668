"""Talking to a running server as a service and as a logged-in user would."""

from __future__ import annotations

import http.cookiejar
import json
import time
import urllib.parse
import urllib.request
import uuid
from typing import Any

from tests.conftest import ADMIN_PASSWORD


def post_event(
    base_url: str, event_type: str, source: str, key: str, event_id: str | None = None, causation: str | None = None
) -> float:
    """POST one structured CloudEvent; returns the monotonic time the 2xx answer arrived."""
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id or uuid.uuid4().hex,
        "source": source,
        "type": event_type,
        "correlationid": key,
        "data": {"order_id": key},
    }
    if causation:
        event["causationid"] = causation
    request = urllib.request.Request(
        f"{base_url}/v1/events",
        data=json.dumps(event).encode(),
        method="POST",
        headers={"Content-Type": "application/cloudevents+json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert 200 <= response.status < 300, response.status
    return time.monotonic()


def session_cookie(base_url: str) -> str:
    """Log in through the login form; returns the Cookie header of the session."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{base_url}/login/", timeout=10).read()
    csrf = next(cookie.value for cookie in jar if cookie.name == "csrftoken")
    form = urllib.parse.urlencode({"username": "admin", "password": ADMIN_PASSWORD, "csrfmiddlewaretoken": csrf}).encode()
    login = urllib.request.Request(f"{base_url}/login/", data=form, headers={"Referer": f"{base_url}/login/"})
    opener.open(login, timeout=10).read()
    return "; ".join(f"{cookie.name}={cookie.value}" for cookie in jar)


def flow_id_of(base_url: str, cookie: str, key: str, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        request = urllib.request.Request(f"{base_url}/api/flows?key={urllib.parse.quote(key)}", headers={"Cookie": cookie})
        with urllib.request.urlopen(request, timeout=10) as response:
            results = json.load(response)["results"]
        if results:
            return results[0]["id"]
        if time.monotonic() > deadline:
            raise TimeoutError(f"no flow with key {key} after {timeout}s")
        time.sleep(0.1)
