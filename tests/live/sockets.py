"""Helpers for the socket tests: a logged-in WebSocket client on the real ASGI application, and
events stored and then correlated by the real correlation code."""

from __future__ import annotations

import time
import uuid
from typing import Any

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from choreoscope.asgi import application
from tracing.records import ObservationRecord, event_identity

ORIGIN = (b"origin", b"http://testserver")


def session_cookie(username: str = "viewer") -> bytes:
    user, _ = get_user_model().objects.get_or_create(username=username)
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def connect(path: str, logged_in: bool = True, origin: tuple[bytes, bytes] = ORIGIN) -> WebsocketCommunicator:
    headers = [origin]
    if logged_in:
        headers.append((b"cookie", await database_sync_to_async(session_cookie)()))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    await communicator.connect(timeout=5)
    return communicator


def event(
    event_type: str, source: str, key: str, event_id: str | None = None, causation: str | None = None, status: str = "unset"
) -> ObservationRecord:
    event_id = event_id or uuid.uuid4().hex
    attributes: dict[str, Any] = {"correlationid": key}
    if causation:
        attributes["causationid"] = causation
    return ObservationRecord(
        kind="event",
        identity=event_identity(source, event_id),
        name=event_type,
        service=source,
        start_ns=time.time_ns(),
        event_source=source,
        event_id=event_id,
        attributes=attributes,
        status=status,  # type: ignore[arg-type]
    )


def ingest(*records: ObservationRecord) -> None:
    """Store through the collectors' writer and correlate, as ingestion and its task do; then
    publish what was stored to the stream now rather than after the publisher's interval, so
    that a test sees both stream messages (correlated, then stored) in a known order."""
    from dashboard.live_feed import stored_stream
    from tracing.services import correlate_pending_observations
    from tracing.store import store_observations

    store_observations(list(records))
    correlate_pending_observations()
    stored_stream.publish()


def store(*records: ObservationRecord) -> None:
    """Store only (correlation is left to the test), and publish to the stream now."""
    from dashboard.live_feed import stored_stream
    from tracing.store import store_observations

    store_observations(list(records))
    stored_stream.publish()


aingest = database_sync_to_async(ingest)
astore = database_sync_to_async(store)
