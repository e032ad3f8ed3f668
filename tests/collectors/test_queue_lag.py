"""Queue lag: the buses that settings name are read where the web process answers, and each
consumer's backlog shows on the service map (``GET /api/topology``) and on ``/metrics``, read
from a real RabbitMQ, Redis and NATS JetStream."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families

from collectors.queue_watch import (
    jetstream_readings,
    nats_source,
    rabbitmq_source,
    redis_source,
    register_watched_buses,
    watched_queue,
)
from demo.catalog import SERVICES, TOPICS, topics_read_by
from tests.conftest import ROOT
from tests.live.sockets import event, ingest
from tracing.queue_lag import QueueLag, current_lag, register_lag_source, unregister_lag_source


def test_a_watched_queue_may_say_whose_it_is():
    assert watched_queue("shop.email") == ("shop.email", "shop.email")
    assert watched_queue("email=shop.email") == ("email", "shop.email")
    with pytest.raises(ImproperlyConfigured, match="QUEUE or SERVICE=QUEUE"):
        watched_queue("=shop.email")


def test_jetstream_consumers_report_pending_and_unacknowledged_messages():
    assert list(jetstream_readings({"ORDERS": {"email": {"pending": 4, "unacked": 2}}})) == [
        QueueLag("nats", "ORDERS", "email", 4, 2, "email")
    ]


def test_the_demo_destinations_watched_by_default_are_the_ones_the_shop_makes():
    assert set(settings.DEMO_TOPICS) == set(TOPICS)
    consumers = {service for service in SERVICES if topics_read_by(service)}
    assert set(settings.DEMO_CONSUMERS) == consumers | {"choreoscope"}


@pytest.fixture
def watching() -> Iterator[list[str]]:
    """Names of the lag sources a test registers; unregistered after it."""
    names: list[str] = []
    yield names
    for name in names:
        unregister_lag_source(name)


@pytest.fixture
def rabbit_queue() -> Iterator[tuple[object, str]]:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(settings.RABBITMQ_URL))
    channel = connection.channel()
    queue = f"test-lag-email-{uuid.uuid4().hex[:8]}"
    channel.queue_declare(queue, durable=True)
    yield channel, queue
    channel.queue_delete(queue)
    connection.close()


def scrape(client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:  # type: ignore[no-untyped-def]
    text = client.get("/metrics").content.decode()
    return {(s.name, frozenset(s.labels.items())): s.value for f in text_string_to_metric_families(text) for s in f.samples}


@pytest.mark.rabbitmq
@pytest.mark.django_db
def test_a_stopped_consumers_rabbitmq_backlog_shows_on_its_service_in_the_map_and_on_metrics(client, rabbit_queue, watching):
    channel, queue = rabbit_queue
    for number in range(5):
        channel.basic_publish("", queue, f"message {number}".encode())  # type: ignore[attr-defined]
    with override_settings(WATCH_RABBITMQ_QUEUES=[f"email={queue}"]):
        register_watched_buses()
    watching.append("rabbitmq")
    ingest(event("OrderCreated", "checkout", "order-1", event_id="e1"), event("EmailSent", "email", "order-1", causation="e1"))
    client.force_login(get_user_model().objects.create_user("viewer"))

    body = client.get("/api/topology?window=5m").json()
    assert body["lag"] == [
        {
            "bus": "rabbitmq",
            "destination": queue,
            "consumer": "email",
            "node": "service:email",
            "waiting": 5,
            "unacknowledged": None,
        }
    ]
    assert body["lag_unavailable"] == []
    samples = scrape(client)
    labels = {"bus": "rabbitmq", "destination": queue, "consumer": "email", "state": "waiting"}
    assert samples[("choreoscope_queue_lag_messages", frozenset(labels.items()))] == 5

    channel.basic_get(queue, auto_ack=True)  # type: ignore[attr-defined]  # the consumer takes one
    register_lag_source("rabbitmq", rabbitmq_source(settings.RABBITMQ_URL, [f"email={queue}"]))  # a fresh reading
    assert [row["waiting"] for row in client.get("/api/topology?window=5m").json()["lag"]] == [4]


@pytest.mark.rabbitmq
@pytest.mark.django_db
def test_a_broker_that_does_not_answer_is_named_and_costs_the_page_at_most_the_read_timeout(client, rabbit_queue, watching):
    _, queue = rabbit_queue
    register_lag_source("rabbitmq", rabbitmq_source(settings.RABBITMQ_URL, [queue]))
    register_lag_source("nats", nats_source("nats://127.0.0.1:1", ["ORDERS"]))  # nothing listens there
    watching.extend(["rabbitmq", "nats"])
    client.force_login(get_user_model().objects.create_user("viewer"))
    started = time.monotonic()
    body = client.get("/api/topology").json()
    assert time.monotonic() - started < 5
    assert body["lag_unavailable"] == ["nats"]
    assert [(row["destination"], row["waiting"], row["node"]) for row in body["lag"]] == [(queue, 0, None)]


@pytest.mark.redis
def test_redis_stream_groups_report_undelivered_and_pending_entries(watching):
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    stream = f"test-lag-{uuid.uuid4().hex[:8]}"
    try:
        for number in range(5):
            client.xadd(stream, {"cloudevent": f"{number}"})
        client.xgroup_create(stream, "email", id="0")
        client.xgroup_create(stream, "warehouse", id="$")
        client.xreadgroup("email", "email-1", {stream: ">"}, count=2)  # delivered, not acknowledged
        register_lag_source("redis-stream", redis_source(os.environ["REDIS_URL"], [stream]))
        watching.append("redis-stream")
        assert current_lag().readings == [
            QueueLag("redis-stream", stream, "email", 3, 2, "email"),
            QueueLag("redis-stream", stream, "warehouse", 0, 0, "warehouse"),
        ]
    finally:
        client.delete(stream)
        client.close()


@pytest.mark.nats
def test_jetstream_consumers_lag_is_read_from_the_server(watching):
    import nats

    name = f"LAG_{uuid.uuid4().hex[:8]}"

    async def prepare() -> None:
        connection = await nats.connect(settings.NATS_URL)
        jetstream = connection.jetstream()
        await jetstream.add_stream(name=name, subjects=[f"{name}.>"])
        await jetstream.add_consumer(name, durable_name="email", ack_policy="explicit")
        for number in range(3):
            await jetstream.publish(f"{name}.orders", f"{number}".encode())
        await connection.close()

    async def remove() -> None:
        connection = await nats.connect(settings.NATS_URL)
        await connection.jetstream().delete_stream(name)
        await connection.close()

    asyncio.run(prepare())
    try:
        register_lag_source("nats", nats_source(settings.NATS_URL, [name]))
        watching.append("nats")
        assert current_lag().readings == [QueueLag("nats", name, "email", 3, 0, "email")]
    finally:
        asyncio.run(remove())


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CHOREOSCOPE_WATCH_REDIS_STREAMS": "orders"}, "CHOREOSCOPE_WATCH_REDIS_STREAMS needs REDIS_URL"),
        ({"CHOREOSCOPE_WATCH_RABBITMQ_QUEUES": "email=shop.email,=shop.rewards"}, "'=shop.rewards' must be QUEUE or"),
        ({"DEMO_BUS": "kafka"}, "DEMO_BUS='kafka' must be one of: in-process, redis, rabbitmq"),
    ],
)
def test_a_watch_that_cannot_work_stops_the_process_with_a_message_naming_it(tmp_path, env, message):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CHOREOSCOPE_", "DJANGO_", "REDIS_URL", "DATABASE_URL"))}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**base, "CHOREOSCOPE_DATA_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and message in result.stderr
