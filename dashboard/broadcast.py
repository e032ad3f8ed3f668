"""Publishing to channel-layer groups: after commit, numbered, never at the cost of the write.

Every group message is ``{"type": "live.delta", "seq": n, "data": {...}}``. ``seq`` counts the
messages of one group (a cache counter: Redis in production, local memory embedded), so a
consumer that sees a hole knows a message was lost (channel layers drop by design) and sends
its client a fresh snapshot instead. Group names are built here, from server-side values only.

Each group's ``data`` is declared in ``dashboard.live_messages``. A publishing failure
is logged and swallowed: a dashboard that misses an update must never fail the transaction
that made it, nor the task that correlated it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer as BaseRedisChannelLayer
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured

log = logging.getLogger(__name__)

MESSAGE_TYPE = "live.delta"  # handled by LiveConsumer.live_delta
SESSION_ENDED = "session.ended"  # handled by LiveConsumer.session_ended
SEQUENCE_KEY = "live:seq:{group}"
WATCH_KEY = "live:watch:{group}"
# A flow group is published to only while a page watches it; a page renews its mark this often.
WATCH_SECONDS = 90
# Per-flow counters live as long as the data may; the few hot group counters never expire.
FLOW_SEQUENCE_SECONDS = 8 * 24 * 3600

STREAM_GROUP = "live.stream"
TOPOLOGY_GROUP = "live.topology"
ALERTS_GROUP = "live.alerts"


REDIS_DEFAULT_READ_TIMEOUT = 5.0  # redis-py's socket_timeout when none is given


class RedisChannelLayer(BaseRedisChannelLayer):
    """channels_redis's layer, whose blocking wait for a process's next message is configured
    (``blocking_wait``, seconds) rather than fixed, so that it is set beside the Redis read
    timeout it must stay under (``settings.CHANNEL_LAYER_WAIT_SECONDS``)."""

    def __init__(self, *args: Any, blocking_wait: float = BaseRedisChannelLayer.brpop_timeout, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.brpop_timeout = blocking_wait
        for host in self.hosts:
            timeout = host.get("socket_timeout", REDIS_DEFAULT_READ_TIMEOUT)
            if timeout is not None and timeout <= blocking_wait:
                raise ImproperlyConfigured(
                    f"the channel layer's Redis read timeout ({timeout} s) must be longer than its blocking wait "
                    f"({blocking_wait} s), or every quiet wait drops the open sockets."
                )

    async def _brpop_with_clean(self, index: int, channel: str, timeout: float) -> Any:
        member = await super()._brpop_with_clean(index, channel, timeout)
        task = asyncio.current_task()
        if member is None and task is not None and task.cancelling():
            # A cancellation that arrives during the blocking read can be swallowed by the Redis
            # client; the read then ends empty and channels_redis would start the next wait, for
            # ever (a closing socket's receive never ends). Honour the pending cancellation.
            raise asyncio.CancelledError
        return member


def flow_group(flow_id: int) -> str:
    return f"live.flow.{int(flow_id)}"


def session_group(session_key: str) -> str:
    """The sockets of one login session; named by a digest, as group names show in Redis."""
    return f"live.session.{hashlib.sha256(session_key.encode()).hexdigest()[:32]}"


def _sequence_timeout(group: str) -> int | None:
    return FLOW_SEQUENCE_SECONDS if group.startswith("live.flow.") else None


def next_sequence(group: str) -> int:
    key = SEQUENCE_KEY.format(group=group)
    cache.add(key, 0, timeout=_sequence_timeout(group))
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 0, timeout=_sequence_timeout(group))
        return cache.incr(key)


def current_sequence(group: str) -> int:
    return int(cache.get(SEQUENCE_KEY.format(group=group)) or 0)


def watch(group: str) -> None:
    """Mark a group as watched by an open page (renewed by the page's consumer)."""
    cache.set(WATCH_KEY.format(group=group), 1, timeout=WATCH_SECONDS)


def watched(groups: list[str]) -> set[str]:
    if not groups:
        return set()
    found = cache.get_many([WATCH_KEY.format(group=group) for group in groups])
    return {group for group in groups if WATCH_KEY.format(group=group) in found}


def group_message(group: str, data: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": MESSAGE_TYPE, "seq": next_sequence(group), "data": data}


async def _send_all(messages: list[tuple[str, dict[str, Any]]]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for group, message in messages:
        await layer.group_send(group, message)


def publish_many(payloads: Sequence[tuple[str, Mapping[str, Any]]], loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Send each ``(group, data)`` now, numbered, in one trip to the channel layer. A thread
    that publishes often passes an event loop of its own (``loop``): the channel layer keeps a
    loop's Redis connections, where each ``async_to_sync`` call would start a new loop, and
    with it a new connection."""
    try:
        messages = [(group, group_message(group, data)) for group, data in payloads]
        if messages and loop is not None:
            loop.run_until_complete(_send_all(messages))
        elif messages:
            async_to_sync(_send_all)(messages)
    except Exception:
        log.exception("publishing %d live message(s) failed; open pages will resync on their next message", len(payloads))


def publish(group: str, data: Mapping[str, Any]) -> None:
    publish_many([(group, data)])


def end_session(session_key: str) -> None:
    """Close the open sockets of a session that ended (logged out)."""
    try:
        async_to_sync(_send_all)([(session_group(session_key), {"type": SESSION_ENDED})])
    except Exception:
        log.exception("telling the sockets of a session that ended failed; they stay open until they reconnect")
