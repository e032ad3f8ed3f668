"""``python manage.py demo``: run the demo shop against a Choreoscope."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections

from demo.bus import RabbitBus, RedisStreamBus, exchange_name, queue_name, stream_name
from demo.catalog import FRAUD, SERVICES, TOPICS, parse_services
from demo.fault_settings import apply_fault_changes, current_faults, record_heartbeat, register_services
from demo.faults import FaultChange, FaultError, parse_fault
from demo.shop import Shop, ShopConfig, bus_kind

TAP_GROUP = "choreoscope"
TAP_START_SECONDS = 60
BUS_NAMES = {"redis": "Redis Streams", "rabbitmq": "RabbitMQ", "in-process": "an in-process bus"}
STATUS_EVERY_SECONDS = 60
INTERRUPT_DRAIN_SECONDS = 2.0
END_DRAIN_SECONDS = 15.0


class Command(BaseCommand):
    help = (
        "Run the demo shop: checkout, email, warehouse, rewards, analytics (in batches) and (later) fraud-check, "
        "talking over an event bus and reporting OpenTelemetry spans and CloudEvents to Choreoscope. "
        "Faults: SERVICE=drop:SHARE, slow:SECONDS, fail:SHARE, offline."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--target", default=f"http://127.0.0.1:{settings.PORT}", help="Choreoscope's base URL.")
        parser.add_argument("--rate", type=float, default=2.0, help="Orders per second (default 2).")
        parser.add_argument("--duration", type=float, default=None, help="Seconds to take orders, then drain and exit.")
        parser.add_argument("--services", default=",".join(SERVICES), help="Comma-separated services to run (default all).")
        parser.add_argument(
            "--fault",
            action="append",
            default=[],
            metavar="SERVICE=KIND[:VALUE]",
            help="e.g. rewards=drop:0.3, warehouse=slow:5, email=fail:0.2, fraud-check=offline; repeatable.",
        )
        parser.add_argument(
            "--fraud-joins-after",
            type=float,
            default=30.0,
            metavar="SECONDS",
            help="fraud-check subscribes this long after the start (0: from the start).",
        )
        parser.add_argument("--keep-faults", action="store_true", help="Keep the faults stored by an earlier run or the panel.")
        parser.add_argument(
            "--events-via",
            choices=("auto", "http", "tap"),
            default="auto",
            help="How events reach Choreoscope: POST /v1/events, or the bus (DEMO_BUS) read by `tap redis-stream` or "
            "`tap rabbitmq` (auto: the tap whenever the bus is Redis Streams or RabbitMQ).",
        )
        parser.add_argument(
            "--latency-scale",
            type=float,
            default=1.0,
            metavar="FACTOR",
            help="Multiply every service's simulated latency (0.2: five times faster; faults' delays are not scaled).",
        )
        parser.add_argument("--seed", type=int, default=None, help="Seed the simulated randomness.")
        parser.add_argument(
            "--parent",
            type=int,
            default=None,
            metavar="PID",
            help="Stop (draining, as on Ctrl-C) once process PID, which started this one, is gone (`serve` passes its own).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        config, changes = self._config(options)
        register_services(SERVICES, reset=not options["keep_faults"])
        apply_fault_changes(changes)

        tap = self._start_tap(config) if config.events_via_bus else None
        shop = Shop(config, read_faults=_fresh(current_faults), report_backlogs=_fresh(record_heartbeat))
        stop = threading.Event()
        interrupted = threading.Event()

        def on_signal(signum: int, frame: object) -> None:
            interrupted.set()
            stop.set()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        parent = options["parent"]
        self.stdout.write(self._banner(config))
        shop.start()
        started = time.monotonic()
        try:
            ticks = 0
            while not stop.wait(1.0):
                ticks += 1
                if parent is not None and os.getppid() != parent:
                    interrupted.set()
                    break
                if options["duration"] is not None and time.monotonic() - started >= options["duration"]:
                    break
                if ticks % STATUS_EVERY_SECONDS == 0:
                    self.stdout.write(shop_status(shop))
        finally:
            shop.stop(INTERRUPT_DRAIN_SECONDS if interrupted.is_set() else END_DRAIN_SECONDS)
            if tap:
                self._stop_tap(tap, config, patience=2.0 if interrupted.is_set() else 15.0)
            record_heartbeat({name: 0 for name in shop.services})
            close_old_connections()
        self.stdout.write(f"Demo shop stopped after {shop.orders()} orders.")

    def _config(self, options: dict[str, Any]) -> tuple[ShopConfig, list[FaultChange]]:
        if options["rate"] <= 0 or options["rate"] > 1000:
            raise CommandError("--rate is orders per second: use a number above 0 and at most 1000.")
        if not 0 < options["latency_scale"] <= 100:
            raise CommandError("--latency-scale multiplies latencies: use a number above 0 and at most 100.")
        if options["duration"] is not None and options["duration"] <= 0:
            raise CommandError("--duration is in seconds and must be positive.")
        try:
            services = parse_services(options["services"])
            changes = [parse_fault(text, SERVICES) for text in options["fault"]]
        except (ValueError, FaultError) as error:
            raise CommandError(str(error)) from None
        redis_url, bus = settings.REDIS_URL, settings.DEMO_BUS
        if bus == "redis" and not redis_url:
            raise CommandError("DEMO_BUS=redis needs REDIS_URL: the shop's streams live in Redis.")
        via_tap = options["events_via"] == "tap" or (options["events_via"] == "auto" and bus != "in-process")
        if via_tap and bus == "in-process":
            raise CommandError(
                "--events-via tap needs a bus Choreoscope can tap: DEMO_BUS=redis (with REDIS_URL) or DEMO_BUS=rabbitmq."
            )
        config = ShopConfig(
            target=options["target"].rstrip("/"),
            rate=options["rate"],
            services=services,
            fraud_joins_after=max(0.0, options["fraud_joins_after"]),
            token=os.environ.get("CHOREOSCOPE_DEMO_TOKEN") or None,
            redis_url=redis_url,
            redis_prefix=settings.REDIS_PREFIX,
            bus=bus,
            rabbitmq_url=settings.RABBITMQ_URL,
            events_via_bus=via_tap,
            seed=options["seed"],
            latency_scale=options["latency_scale"],
        )
        return config, changes

    def _banner(self, config: ShopConfig) -> str:
        bus = BUS_NAMES[bus_kind(config)]
        events = "the tap on the bus" if config.events_via_bus else f"{config.target}/v1/events"
        joining_later = FRAUD in config.services and config.fraud_joins_after
        joins = f"; {FRAUD} joins after {config.fraud_joins_after:g} s" if joining_later else ""
        return (
            f"Demo shop: {config.rate:g} orders/s on {bus}, services {', '.join(config.services)}{joins}. "
            f"Events via {events}. Ctrl-C stops it."
        )

    def _start_tap(self, config: ShopConfig) -> subprocess.Popen[bytes]:
        """Choreoscope's tap reads the shop's bus as one more consumer (group or queue), from the
        earliest entry. Wait until it has subscribed: only then can the shop, when it stops, tell
        whether the tap has stored everything."""
        reading = TapReading(config)
        tap = subprocess.Popen([sys.executable, str(settings.BASE_DIR / "manage.py"), "tap", *reading.arguments()])
        try:
            deadline = time.monotonic() + TAP_START_SECONDS
            while not reading.subscribed():
                if tap.poll() is not None:
                    raise CommandError(f"`manage.py tap {reading.kind}` exited with {tap.returncode}; see its output above.")
                if time.monotonic() > deadline:
                    tap.kill()
                    raise CommandError(f"`manage.py tap {reading.kind}` did not subscribe within {TAP_START_SECONDS} s.")
                time.sleep(0.2)
        finally:
            reading.close()
        return tap

    def _stop_tap(self, tap: subprocess.Popen[bytes], config: ShopConfig, patience: float) -> None:
        """Let the tap store what the shop published, then stop it (it finishes the batch in hand)."""
        reading = TapReading(config)
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline and tap.poll() is None and reading.unread():
            time.sleep(0.2)
        reading.close()
        if tap.poll() is None:
            tap.send_signal(signal.SIGINT)
            try:
                tap.wait(10)
            except subprocess.TimeoutExpired:
                tap.kill()


class TapReading:
    """The tap that reads the shop's bus: its command line, whether it has subscribed, and what
    it has not yet stored."""

    def __init__(self, config: ShopConfig) -> None:
        self.config = config
        self.kind = "rabbitmq" if bus_kind(config) == "rabbitmq" else "redis-stream"
        self.tap_queue = queue_name(config.redis_prefix, TAP_GROUP)
        self.redis = RedisStreamBus(config.redis_url or "", config.redis_prefix) if self.kind == "redis-stream" else None
        self.rabbit = RabbitBus(config.rabbitmq_url, config.redis_prefix) if self.kind == "rabbitmq" else None
        self._drained_at: float | None = None

    def arguments(self) -> list[str]:
        prefix = self.config.redis_prefix
        if self.rabbit:
            self.rabbit.declare_topics(TOPICS)  # the tap binds to the shop's exchanges, which must exist
            exchanges = [exchange_name(prefix, topic) for topic in TOPICS]
            return ["rabbitmq", *exchanges, "--url", self.config.rabbitmq_url, "--queue", self.tap_queue, "--block", "0.5"]
        streams = [stream_name(prefix, topic) for topic in TOPICS]
        return ["redis-stream", *streams, "--group", TAP_GROUP, "--consumer", "demo-tap", "--start", "earliest", "--block", "0.5"]

    def subscribed(self) -> bool:
        if self.rabbit:
            import pika.exceptions

            try:
                return self.rabbit.consumers(self.tap_queue) > 0
            except pika.exceptions.ChannelClosedByBroker:  # its queue is not declared yet
                return False
        assert self.redis is not None
        return all(self.redis.has_group(topic, TAP_GROUP) for topic in TOPICS)

    def unread(self) -> int:
        if self.rabbit:
            # AMQP tells what waits in the queue, not what the tap holds unacknowledged: once the
            # queue is empty, give the tap's batch in hand a second to be committed.
            ready = self.rabbit.ready(self.tap_queue)
            if ready:
                self._drained_at = None
                return ready
            self._drained_at = self._drained_at or time.monotonic()
            return int(time.monotonic() - self._drained_at < 1.0)
        assert self.redis is not None
        return self.redis.unread(TOPICS, group=TAP_GROUP)

    def close(self) -> None:
        for bus in (self.redis, self.rabbit):
            if bus:
                bus.close()


def shop_status(shop: Shop) -> str:
    waiting = ", ".join(f"{name} {count}" for name, count in shop.backlogs().items() if count) or "nothing"
    faulty = "; ".join(f"{name} {shop.faults_of(name).describe()}" for name in shop.services if not shop.faults_of(name).healthy)
    return f"Demo shop: {shop.orders()} orders so far; waiting: {waiting}; faults: {faulty or 'none'}."


def _fresh(function: Any) -> Any:
    """Database access from the shop's own threads: drop connections that went stale."""

    def call(*args: Any) -> Any:
        close_old_connections()
        return function(*args)

    return call
