"""Sockets stay open however quiet the system is. Each web process waits for its sockets' next
message with a blocking Redis read (``CHOREOSCOPE_CHANNEL_LAYER_WAIT_SECONDS``, 5 s in
production); if redis-py's read timeout were not longer than that wait, every quiet wait would
fail with ``Timeout reading from …`` and drop the process's sockets without a close frame. The
tests shorten the wait to 1 s to show the mechanism over many waits; ``python -m bench live``
keeps 20 sockets open through a real quiet minute."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import redis.exceptions
from channels_redis.core import RedisChannelLayer as UnconfiguredRedisLayer
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from websockets.sync.client import connect

from dashboard.broadcast import RedisChannelLayer
from tests.conftest import RunningServer, _create_postgres_database, _drop_postgres_database, start_server, stop_server
from tests.http import post_event, session_cookie

pytestmark = pytest.mark.redis


def layer_config(wait: float) -> dict[str, Any]:
    """The configured layer's settings, with a blocking wait of ``wait`` seconds and its Redis
    read timeout set as the settings set it."""
    layers: dict[str, dict[str, Any]] = settings.CHANNEL_LAYERS
    config: dict[str, Any] = dict(layers["default"]["CONFIG"])
    [host] = config["hosts"]
    return {**config, "hosts": [{**host, "socket_timeout": wait + 10.0}], "blocking_wait": wait}


def on_a_loop_of_its_own(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``scenario`` in a thread with its own event loop: a browser test on the same test
    process may leave Playwright's loop running in the main thread."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, scenario()).result()


def test_a_channel_with_nothing_to_say_outlasts_many_blocking_waits_and_then_hears_a_message():
    on_a_loop_of_its_own(nothing_to_say_then_a_message)


async def nothing_to_say_then_a_message() -> None:
    layer = RedisChannelLayer(**layer_config(0.2))
    channel = await layer.new_channel()
    receiving = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(2.0)  # ten waits
    assert not receiving.done(), f"the receive ended during a quiet spell: {receiving.exception()!r}"
    await layer.send(channel, {"type": "live.delta", "seq": 1})
    assert (await asyncio.wait_for(receiving, 3))["seq"] == 1
    await layer.flush()


def test_a_read_timeout_no_longer_than_the_blocking_wait_fails_a_quiet_wait():
    """Why the read timeout is configured: redis-py's default (5 s) against channels_redis's
    default wait (5 s), here both 1 s."""
    on_a_loop_of_its_own(a_quiet_wait_with_an_equal_read_timeout)


async def a_quiet_wait_with_an_equal_read_timeout() -> None:
    config = layer_config(1.0)
    [host] = config.pop("hosts")
    del config["blocking_wait"]
    layer = UnconfiguredRedisLayer(hosts=[{**host, "socket_timeout": 1.0}], **config)
    layer.brpop_timeout = 1
    channel = await layer.new_channel()
    with pytest.raises(redis.exceptions.TimeoutError, match="Timeout reading from"):
        await asyncio.wait_for(layer.receive(channel), 10)
    await layer.flush()


def test_the_configured_layer_refuses_a_read_timeout_that_the_wait_would_reach():
    [host] = layer_config(1.0)["hosts"]
    with pytest.raises(ImproperlyConfigured, match=r"read timeout \(5.0 s\) must be longer than its blocking wait \(5.0 s\)"):
        RedisChannelLayer(hosts=[{**host, "socket_timeout": 5.0}], blocking_wait=5.0)
    with pytest.raises(ImproperlyConfigured, match="must be longer"):
        RedisChannelLayer(hosts=[{"address": host["address"]}], blocking_wait=5.0)  # redis-py's default


@pytest.fixture(scope="module")
def server_with_a_short_wait(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    extra = {"CHOREOSCOPE_CHANNEL_LAYER_WAIT_SECONDS": "1"}
    base_url, database = os.environ.get("DATABASE_URL"), None
    if base_url:
        extra["DATABASE_URL"], database = _create_postgres_database(base_url)
    running = start_server(Path(tmp_path_factory.mktemp("quiet")), extra)
    yield running
    stop_server(running)
    if base_url and database:
        _drop_postgres_database(base_url, database)


@pytest.mark.slow
def test_stream_sockets_of_a_real_server_stay_open_through_a_quiet_spell_and_then_hear_an_event(server_with_a_short_wait):
    server = server_with_a_short_wait
    cookie = session_cookie(server.url)
    url = server.url.replace("http://", "ws://") + "/ws/stream/"
    with ExitStack() as stack:
        sockets = [
            stack.enter_context(connect(url, origin=server.url, additional_headers={"Cookie": cookie}, open_timeout=10))
            for _ in range(3)
        ]
        for socket in sockets:
            assert json.loads(socket.recv(timeout=5))["type"] == "snapshot"
        quiet_until = time.monotonic() + 8.0  # eight blocking waits
        while time.monotonic() < quiet_until:
            for socket in sockets:
                with pytest.raises(TimeoutError):  # nothing to say, and still open
                    socket.recv(timeout=0.25)
        key = f"quiet-{uuid.uuid4().hex[:8]}"
        post_event(server.url, "OrderCreated", "checkout", key)
        for socket in sockets:
            delta = json.loads(socket.recv(timeout=5))
            assert delta["type"] == "delta" and [item["flow_key"] for item in delta["items"]] == [key]
    assert "Timeout reading from" not in server.log()
