"""Live sockets on ``/metrics``: who is connected, and what became of the group messages they hear;
and log-ins that did not get in.

Counted in memory by the process that holds the socket; with several web processes and
``PROMETHEUS_MULTIPROC_DIR`` the scrape sums the live processes' figures.
"""

from __future__ import annotations

from collections.abc import Collection

from choreoscope.metrics import counter, process_gauge

WEBSOCKET_CLIENTS = process_gauge(
    "choreoscope_websocket_clients", "Live sockets open, by socket (stream, flow, topology, alerts).", ["socket"]
)
LIVE_MESSAGES = counter(
    "choreoscope_live_messages_total",
    "Group messages a live socket heard, by socket and fate: delivered (inside a delta); coalesced "
    "(delivered merged into a delta with earlier ones); dropped (lost on the channel layer, the "
    "socket resynced with a snapshot); superseded (too many waiting, replaced by a snapshot).",
    ["socket", "outcome"],
)

LOGIN_ATTEMPTS = counter(
    "choreoscope_login_attempts_total",
    "Log-ins (site and admin) that did not get in, by outcome: failed (a wrong password), refused (throttled, "
    "never checked against a password), lockout (a lock-out of an account or an address began).",
    ["outcome"],
)


def observe_login(outcome: str) -> None:
    LOGIN_ATTEMPTS.labels(outcome).inc()


def socket_kind(consumer: object) -> str:
    return type(consumer).__name__.removesuffix("Consumer").lower()


def socket_opened(consumer: object) -> None:
    WEBSOCKET_CLIENTS.labels(socket_kind(consumer)).inc()
    consumer.counted_as_open = True  # type: ignore[attr-defined]


def socket_closed(consumer: object) -> None:
    """Sockets refused before they opened were never counted."""
    if getattr(consumer, "counted_as_open", False):
        consumer.counted_as_open = False  # type: ignore[attr-defined]
        WEBSOCKET_CLIENTS.labels(socket_kind(consumer)).dec()


def lost_messages(last_seq: int, waiting: Collection[int]) -> int:
    """Numbers between the last message applied and the newest one held that never arrived."""
    return max(waiting) - last_seq - len(waiting) if waiting else 0


def observe_flush(consumer: object, merged: int, sent: bool, last_seq: int, hole: Collection[int]) -> None:
    """One flush: ``merged`` messages went out as one delta (when ``sent``); ``hole`` holds the
    numbers still waiting when the socket gives up on a hole and resyncs (else it is empty)."""
    kind = socket_kind(consumer)
    if sent:
        LIVE_MESSAGES.labels(kind, "delivered").inc(merged)
        if merged > 1:
            LIVE_MESSAGES.labels(kind, "coalesced").inc(merged - 1)
    if lost := lost_messages(last_seq, hole):
        LIVE_MESSAGES.labels(kind, "dropped").inc(lost)


def observe_superseded(consumer: object, waiting: int) -> None:
    LIVE_MESSAGES.labels(socket_kind(consumer), "superseded").inc(waiting)
