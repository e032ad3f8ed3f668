"""Talking to a running server as a service, a read-token client and a logged-in user would."""

from __future__ import annotations

import http.cookiejar
import json
import time
import urllib.parse
import urllib.request
import uuid
from typing import Any

from tests.conftest import ADMIN_PASSWORD
from tests.polling import eventually

CLOUDEVENT = "application/cloudevents+json"
CLOUDEVENTS_BATCH = "application/cloudevents-batch+json"


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST ``body``; returns the status (an error status raises ``urllib.error.HTTPError``)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def post_cloudevents(base_url: str, events: dict[str, Any] | list[dict[str, Any]]) -> int:
    """One structured CloudEvent (a dict) or a batch (a list) to ``/v1/events``; asserts a 2xx."""
    content_type = CLOUDEVENTS_BATCH if isinstance(events, list) else CLOUDEVENT
    status = post(f"{base_url}/v1/events", json.dumps(events).encode(), {"Content-Type": content_type})
    assert 200 <= status < 300, status
    return status


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
    post_cloudevents(base_url, event)
    return time.monotonic()


def get_json(url: str, token: str | None = None, cookie: str | None = None) -> Any:
    """GET a JSON answer with a read token (``Authorization: Bearer``) or a session cookie."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if cookie:
        headers["Cookie"] = cookie
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
        return json.loads(response.read())


def read_token(server: Any, name: str | None = None) -> str:
    """A new read-scoped API token of the running ``server`` (the command prints it last)."""
    created = server.manage("token", "create", name or f"reader-{uuid.uuid4().hex[:6]}", "--scope", "read")
    return created.stdout.strip().splitlines()[-1]


def session_cookie(base_url: str, password: str = ADMIN_PASSWORD) -> str:
    """Log in as ``admin`` through the login form; returns the Cookie header of the session."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{base_url}/login/", timeout=10).read()
    csrf = next(cookie.value for cookie in jar if cookie.name == "csrftoken")
    form = urllib.parse.urlencode({"username": "admin", "password": password, "csrfmiddlewaretoken": csrf}).encode()
    login = urllib.request.Request(f"{base_url}/login/", data=form, headers={"Referer": f"{base_url}/login/"})
    opener.open(login, timeout=10).read()
    return "; ".join(f"{cookie.name}={cookie.value}" for cookie in jar)


def flow_id_of(base_url: str, cookie: str, key: str, timeout: float = 10.0) -> int:
    def listed() -> list[dict[str, Any]]:
        return get_json(f"{base_url}/api/flows?key={urllib.parse.quote(key)}", cookie=cookie)["results"]

    return eventually(f"a flow with key {key}", listed, timeout, every=0.1)[0]["id"]
