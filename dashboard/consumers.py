"""The live sockets: a snapshot on connect, then numbered, coalesced deltas.

The protocol, the same on every socket (each message is declared in ``dashboard.live_messages``):
- server → client ``{"type": "snapshot", "seq": n, ...}``: the whole view as of group message n;
- server → client ``{"type": "delta", "first": a, "seq": b, ...}``: everything of group messages
  a..b that this view shows, merged into one; a client whose last ``seq`` is not ``a - 1`` asks
  for a snapshot;
- server → client ``{"type": "error", "message": ...}`` for a request it could not use;
- client → server ``{"type": "snapshot"}`` (resync) and ``{"type": "subscribe", ...}`` (change the
  view's parameters: stream filters, map window), each answered with a snapshot.

A delta goes out as soon as a group message arrives, unless the socket sent one less than
``LIVE_UPDATE_SECONDS`` ago: then everything arriving meanwhile goes out as one delta when the
interval is over. So a quiet system shows a change at once, and a burst reaches a browser as a
few messages a second. The stream lists at most ``LIVE_STREAM_ROWS_PER_SECOND`` new rows a second
and says how many it left out. A hole in the group's numbering (the channel layer dropped a message)
that does not fill within ``HOLE_SECONDS`` is answered with a fresh snapshot.

Close codes (final: a page stops reconnecting): 4401 not logged in, or logged out meanwhile;
4403 not allowed; 4404 no such flow. Subclasses name their group from server-side values only.

Channel-layer handlers are named after the message types they take (Channels' convention):
``live.delta`` → ``live_delta``, ``session.ended`` → ``session_ended``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from dashboard import broadcast, live_feed
from dashboard.live_messages import (
    CLOSE_FORBIDDEN,
    CLOSE_NOT_FOUND,
    CLOSE_NOT_LOGGED_IN,
    AlertsDelta,
    AlertsPublication,
    AlertsSnapshot,
    ErrorMessage,
    FlowDelta,
    FlowMergedDelta,
    FlowMergedPublication,
    FlowPublication,
    FlowSnapshot,
    StreamDelta,
    StreamPublication,
    StreamSnapshot,
    TopologyDelta,
    TopologyPublication,
    TopologySnapshot,
)
from dashboard.metrics import observe_flush, observe_superseded, socket_closed, socket_opened
from tracing.topology import parse_window

log = logging.getLogger(__name__)

MIN_REQUEST_SECONDS = 0.2  # between two snapshot or subscribe requests of one socket
MAX_PENDING_MESSAGES = 500  # group messages held for one socket before it resyncs instead
# How long a hole in the numbering may wait to fill: two publishers (a web process and a worker)
# number their messages and then send them, and a busy machine can pause one in between for a
# few hundred milliseconds. Messages after a hole wait too, so this is only waited out when a
# message was lost or is that late.
HOLE_SECONDS = 0.5


def error(message: str) -> ErrorMessage:
    return {"type": "error", "message": message}


class LiveConsumer(AsyncJsonWebsocketConsumer):
    """Base of every live socket. Subclasses set ``group`` in ``resolve``, build their snapshot
    message in ``snapshot`` and merge their group's publications into a delta in ``coalesce``;
    the annotations of those two methods name the messages the socket sends and hears."""

    group: str = ""
    session_group: str = ""

    # --- what subclasses provide ---------------------------------------------------------------

    async def resolve(self) -> int | None:
        """Set ``self.group`` from the URL; return a close code to refuse the socket."""
        return None

    async def snapshot(self, seq: int) -> Any:
        """The whole view, as the snapshot message numbered ``seq``."""
        raise NotImplementedError

    def coalesce(self, first: int, seq: int, datas: list[Any]) -> Any:
        """One delta message from the publications ``first``..``seq``; None when this view shows none of it."""
        raise NotImplementedError

    def configure(self, request: dict[str, Any]) -> None:
        """Apply a ``subscribe`` request; ``ValueError`` with a message for a bad one."""
        raise ValueError("this socket takes no parameters.")

    async def keep_watching(self) -> None:
        """Called on connect and every ``WATCH_SECONDS / 3`` while open."""

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        # A busy stream encodes thousands of rows a second per process, for every open page: with
        # orjson, several times faster than json.dumps (the same JSON text for these messages).
        return orjson.dumps(content).decode()

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
        await self.join_groups()
        await self.accept()
        socket_opened(self)
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

    async def join_groups(self) -> None:
        await self.channel_layer.group_add(self.group, self.channel_name)
        session = self.scope.get("session")
        session_key = session.session_key if session is not None else None
        if session_key:
            # Logging out ends this session's sockets too (``session_ended``).
            self.session_group = broadcast.session_group(session_key)
            await self.channel_layer.group_add(self.session_group, self.channel_name)

    async def disconnect(self, code: int) -> None:
        socket_closed(self)
        # connect() may have refused the socket before setting these up.
        timer, watcher = getattr(self, "flush_timer", None), getattr(self, "watcher", None)
        if timer is not None:
            timer.cancel()
        if watcher is not None:
            watcher.cancel()
        for group in (self.group, self.session_group):
            if group:
                await self.channel_layer.group_discard(group, self.channel_name)

    async def session_ended(self, message: dict[str, Any]) -> None:
        """A group message (``broadcast.SESSION_ENDED``): the user logged out."""
        await self.close(code=CLOSE_NOT_LOGGED_IN)

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
        except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
            await self.send_json(error('send JSON text such as {"type": "snapshot"}.'))
            return
        if not isinstance(request, dict):
            await self.send_json(error("send a JSON object with a 'type'."))
            return
        kind = request.get("type")
        if kind not in ("snapshot", "subscribe"):
            await self.send_json(error("'type' must be 'snapshot' or 'subscribe'."))
            return
        if time.monotonic() - self.last_request < MIN_REQUEST_SECONDS:
            # Each request costs a database read: one tab may not hammer the database.
            await self.send_json(error(f"too many requests; wait {MIN_REQUEST_SECONDS:g} s between them."))
            return
        self.last_request = time.monotonic()
        if kind == "subscribe":
            try:
                self.configure(request)
            except ValueError as problem:
                await self.send_json(error(str(problem)))
                return
        await self.send_snapshot()

    # --- snapshots and deltas ------------------------------------------------------------------

    async def send_snapshot(self) -> None:
        async with self.lock:
            # Read the counter before the data: every message up to it is already in the data,
            # later ones may be too, and applying them again changes nothing.
            seq = max(await sync_to_async(broadcast.current_sequence)(self.group), self.last_seq)
            message = await self.snapshot(seq)
            self.last_seq = self.sent_seq = seq
            self.pending = {n: m for n, m in self.pending.items() if n > self.last_seq}
            self.hole_since = None
            await self.send_json(message)

    async def live_delta(self, message: dict[str, Any]) -> None:
        """A group message (``broadcast.MESSAGE_TYPE``)."""
        seq = int(message["seq"])
        if seq <= self.last_seq:
            return  # already in the snapshot this client holds
        self.pending[seq] = message["data"]
        if len(self.pending) > MAX_PENDING_MESSAGES:
            observe_superseded(self, len(self.pending))
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
                # A hole: another publisher's message may still be on its way (two publishers
                # numbered them in one order and sent them in the other). Wait up to HOLE_SECONDS.
                self.hole_since = self.hole_since or time.monotonic()
                resync = time.monotonic() - self.hole_since >= max(HOLE_SECONDS, settings.LIVE_UPDATE_SECONDS)
            else:
                self.hole_since = None
            delta = self.coalesce(self.sent_seq + 1, self.last_seq, datas) if datas else None
            observe_flush(self, len(datas), delta is not None, self.last_seq, self.pending if resync else ())
            if delta is not None:
                await self.send_json(delta)
                self.sent_seq = self.last_seq
        if resync:
            await self.send_snapshot()
        elif self.pending:
            self._schedule_flush()


class StreamConsumer(LiveConsumer):
    """``/ws/stream/``: the newest events and spans, filtered on the server."""

    async def resolve(self) -> int | None:
        self.group = broadcast.STREAM_GROUP
        self.sampler = live_feed.StreamSampler(live_feed.StreamFilters(), settings.LIVE_STREAM_ROWS_PER_SECOND)
        return None

    def configure(self, request: dict[str, Any]) -> None:
        filters = request.get("filters", {})
        if not isinstance(filters, dict):
            raise ValueError("'filters' must be an object with any of service, type, key, status.")
        self.sampler.filters = live_feed.parse_stream_filters(filters)

    async def snapshot(self, seq: int) -> StreamSnapshot:
        filters = self.sampler.filters
        items = await database_sync_to_async(live_feed.stream_snapshot)(filters)
        self.sampler.restart(items)
        return {"type": "snapshot", "seq": seq, "items": items, "filters": live_feed.filter_values(filters)}

    def coalesce(self, first: int, seq: int, datas: list[StreamPublication]) -> StreamDelta:
        return {"type": "delta", "first": first, "seq": seq, **self.sampler.delta(datas, time.monotonic())}


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

    async def snapshot(self, seq: int) -> FlowSnapshot:
        detail = await database_sync_to_async(live_feed.flow_snapshot)(self.flow_id)
        return {"type": "snapshot", "seq": seq, "flow": detail}

    def coalesce(self, first: int, seq: int, datas: list[FlowPublication | FlowMergedPublication]) -> FlowDelta | FlowMergedDelta:
        new: set[int] = set()
        for data in datas:
            if "merged_into" in data:
                # The flow was absorbed: nothing else of it matters to its page any more.
                return {"type": "delta", "first": first, "seq": seq, "merged_into": data["merged_into"]}
            new.update(data["new"])
            flow = data["flow"]
        return {"type": "delta", "first": first, "seq": seq, "flow": flow, "new": sorted(new)}


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

    async def snapshot(self, seq: int) -> TopologySnapshot:
        name, seconds = self.window
        topology = await database_sync_to_async(live_feed.topology_snapshot)(name, seconds)
        return {
            "type": "snapshot",
            "seq": seq,
            "window": name,
            "nodes": topology["nodes"],
            "edges": topology["edges"],
            "lag": topology["lag"],
            "lag_unavailable": topology["lag_unavailable"],
        }

    def coalesce(self, first: int, seq: int, datas: list[TopologyPublication]) -> TopologyDelta | None:
        pulses = live_feed.merge_pulses(datas)
        return {"type": "delta", "first": first, "seq": seq, "pulses": pulses} if pulses else None


class AlertsConsumer(LiveConsumer):
    """``/ws/alerts/``: new, acknowledged and resolved alerts, and the incident groups."""

    async def resolve(self) -> int | None:
        self.group = broadcast.ALERTS_GROUP
        return None

    async def snapshot(self, seq: int) -> AlertsSnapshot:
        view: AlertsPublication = await database_sync_to_async(live_feed.alerts_view)()
        return {"type": "snapshot", "seq": seq, **view}

    def coalesce(self, first: int, seq: int, datas: list[AlertsPublication]) -> AlertsDelta:
        merged = {alert["id"]: alert for data in datas for alert in data["alerts"]}
        newest = datas[-1]  # groups and counts are whole each time: the newest win
        alerts = list(merged.values())
        return {
            "type": "delta",
            "first": first,
            "seq": seq,
            "alerts": alerts,
            "groups": newest["groups"],
            "counts": newest["counts"],
        }
