"""What the live sockets carry, and the snapshots a page receives when it connects or resyncs.

The stream hears of an observation twice:
- ``stored``: as soon as its ingestion request commits (``on_observations_stored``), built from
  the records in hand, with no read. Each process publishes what its requests stored from a
  thread of its own: at once after a quiet spell, and at most every ``STREAM_PUBLISH_SECONDS``
  under load (everything gathered meanwhile as one message), so a stream page sees an event
  within milliseconds of its 2xx when the system is quiet, and within a fraction of a second
  when it is busy, whatever correlation's backlog. Its flow is not known yet; its ``flow_key``
  is the business key it carries, if any.
- ``correlated``: once correlation committed it, with its flow's id, key and status (and the
  service of the span that emitted it); pages fill in the rows they show (``stream_delta``).

Publications carry every observation (up to ``STREAM_PUBLICATION_CAP``), so that each socket can
filter them itself: a filtered page lists every matching row. A page lists at most
``settings.LIVE_STREAM_ROWS_PER_SECOND`` new rows a second; above that it lists the newest and
says how many matching rows it left out (``StreamSampler``).

Correlation also publishes once per batch (``on_flows_changed``): one message per watched flow
it touched and one for the service map. Flows nobody has open are not published at all, so a
burst of new orders costs a few group sends, not thousands.

Alerts publish after the commit that opened, acknowledged or resolved them
(``on_alerts_changed``). Logging out ends the session's open sockets (``on_logged_out``).

Every message is declared in ``dashboard.live_messages``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from django.core.cache import cache

from alerts.models import Alert
from alerts.selectors import alert_counts, alert_groups
from alerts.status import ShownStatus, shown_status, status_condition
from dashboard.api.serializers import serialize_alert, serialize_alert_group
from dashboard.broadcast import (
    ALERTS_GROUP,
    STREAM_GROUP,
    TOPOLOGY_GROUP,
    end_session,
    flow_group,
    publish,
    publish_many,
    watched,
)
from dashboard.live_messages import (
    AlertsPublication,
    FlowDetail,
    FlowMergedPublication,
    FlowPublication,
    Pulse,
    StreamChanges,
    StreamFilterValues,
    StreamItem,
    StreamPublication,
    TopologyPublication,
)
from dashboard.selectors import alert_list, flow_page_detail
from tracing.correlation import business_key, iso_from_ns
from tracing.flowconfig import flows_config
from tracing.models import Flow, Observation
from tracing.queue_lag import current_lag
from tracing.records import ObservationRecord
from tracing.selectors import resolve_flow
from tracing.topology import batch_pulses, lag_on_map, observed_topology

log = logging.getLogger(__name__)

# Observations one stream publication carries at most (the newest): far above what one process
# stores in an interval, so that in practice every observation reaches the sockets' filters.
STREAM_PUBLICATION_CAP = 2000
# Shortest time between two stored-stage publications of one process. The first observation
# after a quiet spell goes out at once; under load, one message per interval per process, so a
# stored event reaches open pages within about this plus the sockets' LIVE_UPDATE_SECONDS.
STREAM_PUBLISH_SECONDS = 0.05
# Observations one socket remembers as listed or left out, so that an observation's correlated
# version fills in a row the page lists and is not counted twice when it left it out.
STREAM_SEEN_MEMORY = 20_000
STREAM_SNAPSHOT_SIZE = 100
STREAM_SNAPSHOT_WINDOW = 200_000  # newest observations a filtered snapshot looks among
# Observations of one batch whose map pulses are drawn: a sample of a busy batch is enough to
# animate the map (each id costs the database a lookup, in the worker, after every batch).
PULSE_BATCH_CAP = 200
OBSERVATION_STATUSES = ("ok", "error", "unset")
FLOW_STATUSES = tuple(ShownStatus.values)
STREAM_FIELDS = (
    "id",
    "kind",
    "name",
    "service",
    "flow_id",
    "flow__key",
    "flow__status",
    "flow__watch__stuck",
    "status",
    "start_ns",
    "received_at",
)


# --- The stream -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamFilters:
    service: str = ""
    type: str = ""
    key: str = ""
    status: str = ""  # an observation status (ok, error, unset) or a flow status (running, …)

    def is_empty(self) -> bool:
        return not (self.service or self.type or self.key or self.status)


def filter_values(filters: StreamFilters) -> StreamFilterValues:
    return {"service": filters.service, "type": filters.type, "key": filters.key, "status": filters.status}


def parse_stream_filters(raw: Mapping[str, Any]) -> StreamFilters:
    values: dict[str, str] = {}
    for name in ("service", "type", "key", "status"):
        value = raw.get(name) or ""
        if not isinstance(value, str):
            raise ValueError(f"filter '{name}' must be a string.")
        if len(value) > 255:
            raise ValueError(f"filter '{name}' is longer than 255 characters.")
        if "\x00" in value:
            raise ValueError(f"filter '{name}' contains a NUL character, which no stored value holds.")
        values[name] = value.strip()
    if values["status"] and values["status"] not in OBSERVATION_STATUSES + FLOW_STATUSES:
        raise ValueError(f"filter 'status' must be one of {', '.join(OBSERVATION_STATUSES + FLOW_STATUSES)}.")
    return StreamFilters(**values)


def flow_status(row: Mapping[str, Any]) -> str | None:
    """The status people see of the row's flow (None before it is correlated)."""
    if row["flow__status"] is None:
        return None
    stuck = row["flow__watch__stuck"]
    return shown_status(row["flow__status"], stuck is not None, bool(stuck))


def stream_item(row: Mapping[str, Any]) -> StreamItem:
    return {
        "id": row["id"],
        "kind": row["kind"],
        "name": row["name"],
        "service": row["service"],
        "status": row["status"],
        "time": iso_from_ns(row["start_ns"]),
        "received_at": row["received_at"].isoformat(),
        "flow_id": row["flow_id"],
        "flow_key": row["flow__key"],
        "flow_status": flow_status(row),
    }


def stream_item_matches(item: StreamItem, filters: StreamFilters) -> bool:
    if filters.service and item["service"] != filters.service:
        return False
    if filters.type and item["name"] != filters.type:
        return False
    if filters.key and item["flow_key"] != filters.key:
        return False
    if filters.status in OBSERVATION_STATUSES:
        return item["status"] == filters.status
    return not filters.status or item["flow_status"] == filters.status


def stored_item(obs_id: int, record: ObservationRecord, received_at: str, key: str) -> StreamItem:
    """A stream item for an observation just stored: what its record says, no flow yet."""
    return {
        "id": obs_id,
        "kind": record.kind,
        "name": record.name[:255],
        "service": record.service[:255],
        "status": record.status,
        "time": iso_from_ns(record.start_ns),
        "received_at": received_at,
        "flow_id": None,
        "flow_key": key,
        "flow_status": None,
    }


def matching_items(datas: list[StreamPublication], filters: StreamFilters) -> dict[int, StreamItem]:
    """The items of consecutive stream messages that match ``filters``, one per observation: its
    correlated version, if any, over its stored one (they may come in either order; in the
    embedded mode correlation often publishes first)."""
    latest: dict[int, StreamItem] = {}
    for data in datas:
        for item in data["items"]:
            if stream_item_matches(item, filters) and (item["flow_id"] is not None or item["id"] not in latest):
                latest[item["id"]] = item
    return latest


@dataclass
class StreamSampler:
    """What one stream page lists of the messages it hears. Every matching observation is new
    once: listed, or, when more are new than the page may list (``rows_per_second``, a budget
    refilled continuously and holding at most one second's worth), left out, newest listed
    first. A listed row's later version (correlated: its flow) is sent too, to fill the row in;
    a row left out stays out. Pages keep rows by observation id, so a version they already hold
    changes nothing. Pure: the consumer passes the clock."""

    filters: StreamFilters
    rows_per_second: float
    budget: float = math.inf  # starts full (capped at the first refill)
    refilled_at: float | None = None
    seen: dict[int, bool] = field(default_factory=dict)  # observation id → listed (else left out)
    forgotten_up_to: int = -1  # ids up to this one were seen and forgotten: old news, not new rows

    def restart(self, listed: list[StreamItem]) -> None:
        """After a snapshot: the page lists exactly these."""
        self.seen = {item["id"]: True for item in listed}

    def delta(self, datas: list[StreamPublication], now: float) -> StreamChanges:
        """The delta of these consecutive messages: the listed items oldest first; ``total``,
        how many observations were stored meanwhile, matching or not (the page's rate);
        ``matched``, how many matching observations are new; ``left_out``, how many of those
        are not listed; and ``published_at``, the oldest publication merged."""
        self._refill(now)
        latest = matching_items(datas, self.filters)
        new = sorted(obs_id for obs_id in latest if obs_id not in self.seen and obs_id > self.forgotten_up_to)
        room = len(new) if self.budget >= len(new) else int(self.budget)
        listed = new[len(new) - room :]
        self.budget -= room
        self._remember(new, set(listed))
        updates = [obs_id for obs_id in latest if self.seen.get(obs_id) and latest[obs_id]["flow_id"] is not None]
        shown = sorted({*listed, *updates})
        published = min((data["published_at"] for data in datas if "published_at" in data), default=None)
        return {
            "items": [latest[obs_id] for obs_id in shown],
            "total": sum(data.get("total", 0) for data in datas),
            "matched": len(new),
            "left_out": len(new) - room,
            "published_at": published,
        }

    def _refill(self, now: float) -> None:
        elapsed = now - self.refilled_at if self.refilled_at is not None else math.inf
        self.budget = min(self.rows_per_second, self.budget + max(0.0, elapsed) * self.rows_per_second)
        self.refilled_at = now

    def _remember(self, new: list[int], listed: set[int]) -> None:
        self.seen.update((obs_id, obs_id in listed) for obs_id in new)
        if len(self.seen) > STREAM_SEEN_MEMORY:
            # Forget the oldest ids; a late version of one (a correlation backlog) is not new.
            for obs_id in sorted(self.seen)[: len(self.seen) - STREAM_SEEN_MEMORY // 2]:
                del self.seen[obs_id]
                self.forgotten_up_to = max(self.forgotten_up_to, obs_id)


def stream_items(observation_ids: list[int]) -> list[StreamItem]:
    """The newest ``STREAM_PUBLICATION_CAP`` of these observations, oldest first."""
    newest = sorted(observation_ids)[-STREAM_PUBLICATION_CAP:]
    rows = Observation.objects.filter(id__any=newest).order_by("id").values(*STREAM_FIELDS)
    return [stream_item(row) for row in rows]


def stream_snapshot(filters: StreamFilters) -> list[StreamItem]:
    """The newest observations matching ``filters``, oldest first. A flow key is looked up by
    its flows; the other filters look among the newest ``STREAM_SNAPSHOT_WINDOW`` observations
    (the stream is about now, and an index per filter would cost every write twice)."""
    observations = Observation.objects.all()
    if not filters.key and not filters.is_empty():
        newest = Observation.objects.order_by("-id").values_list("id", flat=True).first() or 0
        observations = observations.filter(id__gt=newest - STREAM_SNAPSHOT_WINDOW)
    if filters.service:
        observations = observations.filter(service=filters.service)
    if filters.type:
        observations = observations.filter(name=filters.type)
    if filters.key:
        observations = observations.filter(flow__key=filters.key)
    if filters.status in OBSERVATION_STATUSES:
        observations = observations.filter(status=filters.status)
    elif filters.status:
        observations = observations.filter(status_condition(filters.status, "flow__"))
    rows = list(observations.order_by("-id").values(*STREAM_FIELDS)[:STREAM_SNAPSHOT_SIZE])
    return [stream_item(row) for row in reversed(rows)]


def recent_names(sample: int = 2000) -> tuple[list[str], list[str]]:
    """Services and observation names seen lately: suggestions for the stream's filters."""
    rows = Observation.objects.order_by("-id").values_list("service", "name")[:sample]
    return sorted({service for service, _ in rows}), sorted({name for _, name in rows})


class StoredStream:
    """The stream items this process stored since its last publication (at most the newest
    ``STREAM_PUBLICATION_CAP``) and a count of all of them (the pages' rate), published by a
    thread of its own (``background``; started by the first item): at once when the last
    publication is ``interval`` old, else when it becomes so, everything gathered meanwhile as
    one message. So a quiet system publishes each request's observations immediately, and a
    busy one coalesces them, a message per interval."""

    def __init__(self, interval: float = STREAM_PUBLISH_SECONDS, background: bool = True) -> None:
        self.interval = interval
        self.background = background
        self.ready = threading.Condition()
        self.items: list[StreamItem] = []
        self.total = 0
        self.published_at = -math.inf  # monotonic
        self.publisher: threading.Thread | None = None

    def add(self, items: list[StreamItem], total: int) -> None:
        with self.ready:
            self.items.extend(items)
            del self.items[:-STREAM_PUBLICATION_CAP]
            self.total += total
            if self.background and (self.publisher is None or not self.publisher.is_alive()):
                self.publisher = threading.Thread(target=self._publish_forever, name="live-stream-publisher", daemon=True)
                self.publisher.start()
            self.ready.notify()

    def take(self) -> tuple[list[StreamItem], int]:
        with self.ready:
            items, total = self.items, self.total
            self.items, self.total = [], 0
            self.published_at = time.monotonic()
        return items, total

    def publish(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        items, total = self.take()
        if total:
            data: StreamPublication = {"stage": "stored", "items": items, "total": total, "published_at": time.time()}
            publish_many([(STREAM_GROUP, data)], loop=loop)

    def _publish_forever(self) -> None:
        loop = asyncio.new_event_loop()
        while True:
            with self.ready:
                while not self.total:
                    self.ready.wait()
                wait = self.published_at + self.interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                self.publish(loop)
            except Exception:  # publish_many logs its own failures; this is a bug, not a hiccup
                log.exception("publishing stored observations to the live stream failed")


stored_stream = StoredStream()


def on_observations_stored(
    sender: object, stored: list[tuple[int, ObservationRecord]] | None = None, received_at: Any = None, **kwargs: object
) -> None:
    """Receiver of ``tracing.signals.observations_stored``: after the commit, hand the newest
    stored observations to this process's stream publisher."""
    from django.db import transaction

    stored = stored or []
    newest, total = stored[-STREAM_PUBLICATION_CAP:], len(stored)
    received = received_at.isoformat() if received_at is not None else ""

    def gather() -> None:
        try:
            config = flows_config()
            items = [stored_item(obs_id, record, received, business_key(record, config)) for obs_id, record in newest]
        except Exception:
            log.exception("building live stream items for stored observations failed")
            return
        stored_stream.add(items, total)

    transaction.on_commit(gather)


# Publications to channel-layer groups, each declared in ``live_messages``.
Messages = list[tuple[str, StreamPublication | FlowPublication | FlowMergedPublication | TopologyPublication | AlertsPublication]]


# --- Flows ------------------------------------------------------------------------------------


def flow_snapshot(flow_id: int) -> FlowDetail | None:
    """The flow's detail (the ``GET /api/flows/<id>`` shape), following merges; None if unknown."""
    flow = resolve_flow(flow_id)
    return flow_page_detail(flow) if flow is not None else None


def flow_updates(flow_ids: list[int], observation_ids: list[int], merged: Mapping[int, int]) -> Messages:
    """One message per watched flow this batch touched: its new state and which nodes are new;
    a watched flow absorbed by another is told where its observations went."""
    groups = {flow_group(flow_id): flow_id for flow_id in flow_ids}
    groups.update({flow_group(absorbed): absorbed for absorbed in merged})
    open_groups = watched(list(groups))
    messages: Messages = []
    for group in sorted(open_groups):
        flow_id = groups[group]
        if flow_id in merged:
            absorbed: FlowMergedPublication = {"merged_into": merged[flow_id]}
            messages.append((group, absorbed))
            continue
        flow = Flow.objects.filter(id=flow_id, merged_into__isnull=True).first()
        if flow is None:
            continue
        detail = flow_page_detail(flow)
        batch = set(observation_ids)  # shared steps included: they are this flow's nodes too
        update: FlowPublication = {"flow": detail, "new": sorted(node["id"] for node in detail["nodes"] if node["id"] in batch)}
        messages.append((group, update))
    return messages


# --- The service map ---------------------------------------------------------------------------

TOPOLOGY_CACHE_SECONDS = 5


def topology_snapshot(window: str, seconds: int) -> dict[str, Any]:
    """The map over a window, and the watched queues' lag now; open maps and the API share one
    computation every few seconds (the lag is read at most that often per process)."""
    key = f"live:topology:{window}"
    topology = cache.get(key)
    if topology is None:
        topology = observed_topology(seconds)
        cache.set(key, topology, timeout=TOPOLOGY_CACHE_SECONDS)
    return {**topology, **lag_on_map(topology["nodes"], current_lag())}


def merge_pulses(datas: list[TopologyPublication]) -> list[Pulse]:
    """The pulses of consecutive publications, added up per edge."""
    counts: dict[tuple[str, str], int] = {}
    for data in datas:
        for pulse in data["pulses"]:
            key = (pulse["source"], pulse["target"])
            counts[key] = counts.get(key, 0) + pulse["count"]
    return [{"source": s, "target": t, "count": n} for (s, t), n in sorted(counts.items())]


def forget_stale_topologies(pulses: list[Pulse]) -> None:
    """Drop cached maps that lack an edge this batch used, so that the snapshot an open map
    asks for on seeing an unknown edge (a new consumer) already shows it."""
    from tracing.topology import WINDOWS

    keys = [f"live:topology:{window}" for window in WINDOWS]
    used = {(pulse["source"], pulse["target"]) for pulse in pulses}
    stale = [
        key
        for key, topology in cache.get_many(keys).items()
        if not used <= {(edge["source"], edge["target"]) for edge in topology["edges"]}
    ]
    if stale:
        cache.delete_many(stale)


# --- Publishing a correlated batch ------------------------------------------------------------


def batch_messages(flow_ids: list[int], observation_ids: list[int], merged: Mapping[int, int]) -> Messages:
    messages: Messages = []
    if observation_ids:
        # published_at (unix seconds) lets a client tell correlation lag from delivery lag.
        items = stream_items(observation_ids)
        messages.append((STREAM_GROUP, {"stage": "correlated", "items": items, "published_at": time.time()}))
        pulses = cast(list[Pulse], batch_pulses(sorted(observation_ids)[-PULSE_BATCH_CAP:]))
        if pulses:
            forget_stale_topologies(pulses)
            messages.append((TOPOLOGY_GROUP, {"pulses": pulses}))
    messages.extend(flow_updates(flow_ids, observation_ids, merged))
    return messages


def publish_batch(flow_ids: list[int], observation_ids: list[int], merged: Mapping[int, int]) -> None:
    try:
        messages = batch_messages(flow_ids, observation_ids, merged)
    except Exception:
        log.exception("building live messages for a correlated batch failed")
        return
    publish_many(messages)


def on_flows_changed(
    sender: object,
    flow_ids: list[int] | None = None,
    observation_ids: list[int] | None = None,
    merged: Mapping[int, int] | None = None,
    **kwargs: object,
) -> None:
    """Receiver of ``tracing.signals.flows_changed``; sent inside the correlation transaction,
    so the messages are built and sent only once it commits."""
    from django.db import transaction

    flows, observations, absorbed = list(flow_ids or []), list(observation_ids or []), dict(merged or {})
    transaction.on_commit(lambda: publish_batch(flows, observations, absorbed))


# --- Alerts -------------------------------------------------------------------------------------

SNAPSHOT_ALERTS = 100
# A storm (500 flows stuck at once) goes out as the newest alerts plus the fresh groups and
# counts; a page shows 100 rows at most anyway.
DELTA_ALERTS = 100


def alerts_view(alert_ids: list[int] | None = None) -> AlertsPublication:
    """These alerts (the newest ``SNAPSHOT_ALERTS`` without ids), the incident groups and counts."""
    alerts = list(Alert.objects.filter(id__in=alert_ids)) if alert_ids is not None else alert_list(limit=SNAPSHOT_ALERTS).rows
    groups = [serialize_alert_group(group) for group in alert_groups()]
    return {"alerts": [serialize_alert(alert) for alert in alerts], "groups": groups, "counts": alert_counts()}


def on_alerts_changed(
    sender: object = None, opened: Any = (), acknowledged: Any = (), resolved: Any = (), **kwargs: object
) -> None:
    """Receiver of ``alerts.signals.alerts_changed`` (sent after the commit): the changed alerts
    with the fresh incident groups and counts, to the alerts group; and to the pages of flows
    that just became stuck, their new state (a flow that recovers changed, and was sent, with
    the observation that made it good)."""
    ids = sorted({*opened, *acknowledged, *resolved})[-DELTA_ALERTS:]
    if ids:
        publish(ALERTS_GROUP, alerts_view(ids))
    if opened:
        stuck = list(Alert.objects.filter(id__in=list(opened)).values_list("flow_id", flat=True))
        publish_many(flow_updates(stuck, [], {}))


# --- Sessions -----------------------------------------------------------------------------------


def on_logged_out(sender: object, request: Any = None, **kwargs: object) -> None:
    """Receiver of ``django.contrib.auth.signals.user_logged_out`` (sent before the session is
    flushed): the session's open sockets close with 4401, so no page of a logged-out browser
    keeps receiving live data."""
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if session_key:
        end_session(session_key)
