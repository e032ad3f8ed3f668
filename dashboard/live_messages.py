"""Every message of the live sockets, declared once.

Three kinds, per socket:
- what the server sends a page: a ``…Snapshot`` (the whole view, on connect and on resync), a
  ``…Delta`` (group messages ``first``..``seq`` merged), or an ``ErrorMessage``;
- what a page may ask: ``SnapshotRequest`` or a ``subscribe`` request;
- what publishers send the socket's channel-layer group (``data`` of ``broadcast.group_message``):
  a ``…Publication``, merged by the consumer into one delta.

The code that builds these messages is annotated with these types, and the socket tests check
every message actually sent against them (``tests/live/message_shapes.py``), so a field cannot
be renamed on one side only. The pages read the same field names.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict, final

# The flows, map and alerts the sockets carry have the JSON API's shapes, declared there.
from dashboard.api.serializers import Alert as AlertRow
from dashboard.api.serializers import AlertGroup as IncidentGroup
from dashboard.api.serializers import FlowDetail, TopologyEdge, TopologyLag, TopologyNode

# Close codes (application range 4000-4999, after HTTP): final, so a page stops reconnecting.
CLOSE_NOT_LOGGED_IN = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
FINAL_CLOSE_CODES = (CLOSE_NOT_LOGGED_IN, CLOSE_FORBIDDEN, CLOSE_NOT_FOUND)


# --- Every socket ---------------------------------------------------------------------------------


class ErrorMessage(TypedDict):
    type: Literal["error"]
    message: str


class SnapshotRequest(TypedDict):
    type: Literal["snapshot"]


# --- /ws/stream/ ----------------------------------------------------------------------------------


class StreamItem(TypedDict):
    """One observation as a stream row; ``flow_*`` are None until it is correlated (its
    ``flow_key`` is then the business key it carries, or empty)."""

    id: int
    kind: Literal["event", "span"]
    name: str
    service: str
    status: Literal["ok", "error", "unset"]
    time: str | None
    received_at: str
    flow_id: int | None
    flow_key: str | None
    flow_status: str | None


class StreamFilterValues(TypedDict):
    service: str
    type: str
    key: str
    status: str


class StreamSubscribeRequest(TypedDict):
    type: Literal["subscribe"]
    filters: StreamFilterValues


class StreamSnapshot(TypedDict):
    type: Literal["snapshot"]
    seq: int
    items: list[StreamItem]
    filters: StreamFilterValues


class StreamChanges(TypedDict):
    """What a stream delta carries besides its numbering."""

    items: list[StreamItem]  # new rows and, for rows listed before, their correlated version
    total: int  # observations stored meanwhile, matching or not: the page's rate
    matched: int  # observations new to this page that match its filters: its true rate
    left_out: int  # of those, how many are not listed: the page shows a sample when above 0
    published_at: float | None  # unix seconds of the oldest publication merged


class StreamDelta(StreamChanges):
    type: Literal["delta"]
    first: int
    seq: int


class StreamPublication(TypedDict):
    stage: Literal["stored", "correlated"]
    items: list[StreamItem]
    total: NotRequired[int]  # only ``stored`` counts
    published_at: float


# --- /ws/flows/<id>/ ------------------------------------------------------------------------------


class FlowSnapshot(TypedDict):
    type: Literal["snapshot"]
    seq: int
    flow: FlowDetail | None  # None once the flow has expired (retention) while its page was open


class FlowDelta(TypedDict):
    type: Literal["delta"]
    first: int
    seq: int
    flow: FlowDetail
    new: list[int]  # node ids that arrived since the last message, to flash


class FlowMergedDelta(TypedDict):
    """The flow was absorbed by an older one: the page follows it there."""

    type: Literal["delta"]
    first: int
    seq: int
    merged_into: int


# final: a ``"merged_into" in data`` test tells the two apart (for mypy too).
@final
class FlowPublication(TypedDict):
    flow: FlowDetail
    new: list[int]


@final
class FlowMergedPublication(TypedDict):
    merged_into: int


# --- /ws/topology/ --------------------------------------------------------------------------------


class Pulse(TypedDict):
    source: str
    target: str
    count: int


class TopologySubscribeRequest(TypedDict):
    type: Literal["subscribe"]
    window: str


class TopologySnapshot(TypedDict):
    type: Literal["snapshot"]
    seq: int
    window: str
    nodes: list[TopologyNode]
    edges: list[TopologyEdge]
    lag: list[TopologyLag]
    lag_unavailable: list[str]


class TopologyDelta(TypedDict):
    type: Literal["delta"]
    first: int
    seq: int
    pulses: list[Pulse]


class TopologyPublication(TypedDict):
    pulses: list[Pulse]


# --- /ws/alerts/ ----------------------------------------------------------------------------------


class AlertsSnapshot(TypedDict):
    type: Literal["snapshot"]
    seq: int
    alerts: list[AlertRow]
    groups: list[IncidentGroup]
    counts: dict[str, int]  # alerts by state


class AlertsDelta(TypedDict):
    type: Literal["delta"]
    first: int
    seq: int
    alerts: list[AlertRow]  # the alerts that changed; groups and counts are fresh
    groups: list[IncidentGroup]
    counts: dict[str, int]


class AlertsPublication(TypedDict):
    alerts: list[AlertRow]
    groups: list[IncidentGroup]
    counts: dict[str, int]
