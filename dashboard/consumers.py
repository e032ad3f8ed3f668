"""WebSocket consumers: a snapshot on connect, then numbered, coalesced deltas.

The protocol, the same on every socket:
- server → client ``{"type": "snapshot", "seq": n, ...}``: the whole view as of group message n;
- server → client ``{"type": "delta", "first": a, "seq": b, ...}``: everything of group messages
  a..b that this view shows, merged into one; a client whose last ``seq`` is not ``a - 1`` asks
  for a snapshot;
- server → client ``{"type": "error", "message": ...}`` for a request it could not use;
- client → server ``{"type": "snapshot"}`` (resync) and ``{"type": "subscribe", ...}`` (change the
  view's parameters: stream filters, map window), each answered with a snapshot.

Deltas go out at most once per ``LIVE_UPDATE_SECONDS`` per socket, so a burst reaches a browser as
a few messages a second. A hole in the group's numbering (the channel layer dropped a message)
that does not fill within one interval is answered with a fresh snapshot.

Close codes: 4401 not logged in, 4403 not allowed, 4404 no such flow. Subclasses name their
group from server-side values only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import asdict
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from dashboard import broadcast, live_feed
from tracing.topology import parse_window

log = logging.getLogger(__name__)

CLOSE_NOT_LOGGED_IN = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
MIN_REQUEST_SECONDS = 0.2  # between two snapshot or subscribe requests of one socket
MAX_PENDING_MESSAGES = 500  # group messages held for one socket before it resyncs instead


class LiveConsumer(AsyncJsonWebsocketConsumer):
    """Base of every live socket. Subclasses set ``group`` in ``resolve``, build the view in
    ``snapshot`` and merge group messages' data in ``coalesce``."""

    group: str = ""

    # --- what subclasses provide ---------------------------------------------------------------

    async def resolve(self) -> int | None:
        """Set ``self.group`` from the URL; return a close code to refuse the socket."""
        return None

    async def snapshot(self) -> dict[str, Any]:
        raise NotImplementedError

    def coalesce(self, datas: list[dict[str, Any]]) -> dict[str, Any] | None:
        """One delta from the data of consecutive group messages; None when this view shows none of it."""
        raise NotImplementedError

    def configure(self, request: dict[str, Any]) -> None:
        """Apply a ``subscribe`` request; ``ValueError`` with a message for a bad one."""
        raise ValueError("this socket takes no parameters.")

    async def keep_watching(self) -> None:
        """Called on connect and every ``WATCH_SECONDS / 3`` while open."""

    # --- connection ----------------------------------------------------------------------------

    async def connect(self) -> None:
        self.last_seq = 0  # the newest group message this view reflects
        self.sent_seq = 0  # the newest one the client has been told about
        self.pending: dict[int, dict[str, Any]] = {}
        self.hole_since: float | None = None
        self.flush_timer: asyncio.TimerHandle | None = None
        self.last_flush = 0.0
        self.last_request = 0.0
        self.lock = asyncio.Lock()
        self.watcher: asyncio.Task[None] | None = None
        refused = await self.refusal()
        if refused is not None:
            # Accept first: a close before the handshake can only say 403, not why.
            await self.accept()
            await self.close(code=refused)
            return
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.keep_watching()
        self.watcher = asyncio.ensure_future(self._watch_loop())
        await self.send_snapshot()

    async def refusal(self) -> int | None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            return CLOSE_NOT_LOGGED_IN
        if not user.is_active:
            return CLOSE_FORBIDDEN
        return await self.resolve()

    async def disconnect(self, code: int) -> None:
        # connect() may have refused the socket before setting these up.
        timer, watcher = getattr(self, "flush_timer", None), getattr(self, "watcher", None)
        if timer is not None:
            timer.cancel()
        if watcher is not None:
            watcher.cancel()
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def _watch_loop(self) -> None:
        while True:
            await asyncio.sleep(broadcast.WATCH_SECONDS / 3)
            try:
                await self.keep_watching()
            except Exception:
                log.exception("renewing the watch mark of %s failed", self.group)

    # --- client requests -----------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        try:
            request = json.loads(text_data or "")
        except ValueError:
            await self.send_json({"type": "error", "message": 'send JSON text such as {"type": "snapshot"}.'})
            return
        if not isinstance(request, dict):
            await self.send_json({"type": "error", "message": "send a JSON object with a 'type'."})
            return
        kind = request.get("type")
        if kind in ("snapshot", "subscribe") and time.monotonic() - self.last_request < MIN_REQUEST_SECONDS:
            # Each request costs a database read: one tab may not hammer the database.
            await self.send_json({"type": "error", "message": f"too many requests; wait {MIN_REQUEST_SECONDS:g} s between them."})
            return
        self.last_request = time.monotonic()
        if kind == "snapshot":
            await self.send_snapshot()
        elif kind == "subscribe":
            try:
                self.configure(request)
            except ValueError as error:
                await self.send_json({"type": "error", "message": str(error)})
                return
            await self.send_snapshot()
        else:
            await self.send_json({"type": "error", "message": "'type' must be 'snapshot' or 'subscribe'."})

    # --- snapshots and deltas ------------------------------------------------------------------

    async def send_snapshot(self) -> None:
        async with self.lock:
            # Read the counter before the data: every message up to it is already in the data,
            # later ones may be too, and applying them again changes nothing.
            seq = await sync_to_async(broadcast.current_sequence)(self.group)
            view = await self.snapshot()
            self.last_seq = self.sent_seq = max(seq, self.last_seq)
            self.pending = {n: m for n, m in self.pending.items() if n > self.last_seq}
            self.hole_since = None
            await self.send_json({"type": "snapshot", "seq": self.sent_seq, **view})

    async def live_delta(self, message: dict[str, Any]) -> None:
        """A group message (``broadcast.MESSAGE_TYPE``)."""
        seq = int(message["seq"])
        if seq <= self.last_seq:
            return  # already in the snapshot this client holds
        self.pending[seq] = message["data"]
        if len(self.pending) > MAX_PENDING_MESSAGES:
            await self.send_snapshot()
            return
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self.flush_timer is not None:
            return
        interval = settings.LIVE_UPDATE_SECONDS
        delay = max(0.0, self.last_flush + interval - time.monotonic())
        loop = asyncio.get_running_loop()
        self.flush_timer = loop.call_later(delay, lambda: asyncio.ensure_future(self._flush_logged()))

    async def _flush_logged(self) -> None:
        try:
            await self._flush()
        except Exception:
            log.exception("sending a live update on %s failed", self.group)

    async def _flush(self) -> None:
        self.flush_timer = None
        self.last_flush = time.monotonic()
        resync = False
        async with self.lock:
            datas = []
            while self.last_seq + 1 in self.pending:
                self.last_seq += 1
                datas.append(self.pending.pop(self.last_seq))
            if self.pending:
                # A hole: another publisher's message may still be on its way (two workers
                # numbered them in one order and sent them in the other). Wait one interval.
                self.hole_since = self.hole_since or time.monotonic()
                resync = time.monotonic() - self.hole_since >= settings.LIVE_UPDATE_SECONDS
            else:
                self.hole_since = None
            delta = self.coalesce(datas) if datas else None
            if delta is not None:
                await self.send_json({"type": "delta", "first": self.sent_seq + 1, "seq": self.last_seq, **delta})
                self.sent_seq = self.last_seq
        if resync:
            await self.send_snapshot()
        elif self.pending:
            self._schedule_flush()


class StreamConsumer(LiveConsumer):
    """``/ws/stream/``: the newest events and spans, filtered on the server."""

    async def resolve(self) -> int | None:
        self.group = broadcast.STREAM_GROUP
        self.filters = live_feed.StreamFilters()
        return None

    def configure(self, request: dict[str, Any]) -> None:
        filters = request.get("filters", {})
        if not isinstance(filters, dict):
            raise ValueError("'filters' must be an object with any of service, type, key, status.")
        self.filters = live_feed.parse_stream_filters(filters)

    async def snapshot(self) -> dict[str, Any]:
        items = await database_sync_to_async(live_feed.stream_snapshot)(self.filters)
        return {"items": items, "filters": asdict(self.filters)}

    def coalesce(self, datas: list[dict[str, Any]]) -> dict[str, Any] | None:
        return live_feed.stream_delta(datas, self.filters)


class FlowConsumer(LiveConsumer):
    """``/ws/flows/<id>/``: one flow's diagram, kept current."""

    async def resolve(self) -> int | None:
        self.flow_id = int(self.scope["url_route"]["kwargs"]["flow_id"])
        initial = await database_sync_to_async(live_feed.flow_snapshot)(self.flow_id)
        if initial is None:
            return CLOSE_NOT_FOUND
        self.flow_id = initial["id"]  # an absorbed flow's page follows the flow that absorbed it
        self.group = broadcast.flow_group(self.flow_id)
        return None

    async def keep_watching(self) -> None:
        await sync_to_async(broadcast.watch)(self.group)

    async def snapshot(self) -> dict[str, Any]:
        detail = await database_sync_to_async(live_feed.flow_snapshot)(self.flow_id)
        return {"flow": detail}

    def coalesce(self, datas: list[dict[str, Any]]) -> dict[str, Any] | None:
        merged_into = next((data["merged_into"] for data in reversed(datas) if "merged_into" in data), None)
        if merged_into is not None:
            return {"merged_into": merged_into}
        new = sorted({node_id for data in datas for node_id in data.get("new", [])})
        return {"flow": datas[-1]["flow"], "new": new}


class TopologyConsumer(LiveConsumer):
    """``/ws/topology/``: the service map; snapshots for the chosen window, pulses as deltas."""

    async def resolve(self) -> int | None:
        self.group = broadcast.TOPOLOGY_GROUP
        self.window = parse_window(None)
        return None

    def configure(self, request: dict[str, Any]) -> None:
        window = request.get("window")
        if not isinstance(window, str):
            raise ValueError("'window' must be one of 5m, 15m, 1h, 24h.")
        self.window = parse_window(window)

    async def snapshot(self) -> dict[str, Any]:
        name, seconds = self.window
        topology = await database_sync_to_async(live_feed.topology_snapshot)(name, seconds)
        return {"window": name, **topology}

    def coalesce(self, datas: list[dict[str, Any]]) -> dict[str, Any] | None:
        counts: dict[tuple[str, str], int] = {}
        for data in datas:
            for pulse in data.get("pulses", []):
                key = (pulse["source"], pulse["target"])
                counts[key] = counts.get(key, 0) + pulse["count"]
        if not counts:
            return None
        return {"pulses": [{"source": s, "target": t, "count": n} for (s, t), n in sorted(counts.items())]}
