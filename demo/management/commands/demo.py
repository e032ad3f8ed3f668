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

from demo.bus import RedisStreamBus, stream_name
from demo.catalog import FRAUD, SERVICES, TOPICS, parse_services
from demo.fault_settings import apply_fault_changes, current_faults, record_heartbeat, register_services
from demo.faults import FaultChange, FaultError, parse_fault
from demo.shop import Shop, ShopConfig

TAP_GROUP = "choreoscope"
TAP_START_SECONDS = 60
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
            help="How events reach Choreoscope: POST /v1/events, or the bus read by `tap redis-stream` "
            "(auto: the tap when REDIS_URL is set).",
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
        redis_url = settings.REDIS_URL
        via_tap = options["events_via"] == "tap" or (options["events_via"] == "auto" and bool(redis_url))
        if via_tap and not redis_url:
            raise CommandError("--events-via tap needs REDIS_URL: the tap reads the shop's Redis streams.")
        config = ShopConfig(
            target=options["target"].rstrip("/"),
            rate=options["rate"],
            services=services,
            fraud_joins_after=max(0.0, options["fraud_joins_after"]),
            token=os.environ.get("CHOREOSCOPE_DEMO_TOKEN") or None,
            redis_url=redis_url,
            redis_prefix=settings.REDIS_PREFIX,
            events_via_bus=via_tap,
            seed=options["seed"],
            latency_scale=options["latency_scale"],
        )
        return config, changes

    def _banner(self, config: ShopConfig) -> str:
        bus = "Redis Streams" if config.redis_url else "an in-process bus"
        events = "the tap on the bus" if config.events_via_bus else f"{config.target}/v1/events"
        joining_later = FRAUD in config.services and config.fraud_joins_after
        joins = f"; {FRAUD} joins after {config.fraud_joins_after:g} s" if joining_later else ""
        return (
            f"Demo shop: {config.rate:g} orders/s on {bus}, services {', '.join(config.services)}{joins}. "
            f"Events via {events}. Ctrl-C stops it."
        )

    def _start_tap(self, config: ShopConfig) -> subprocess.Popen[bytes]:
        """Choreoscope's tap reads the shop's streams as one more consumer group, from the
        earliest entry. Wait until it has subscribed: only then can the shop, when it stops, tell
        whether the tap has stored everything."""
        streams = [stream_name(config.redis_prefix, topic) for topic in TOPICS]
        command = [sys.executable, str(settings.BASE_DIR / "manage.py"), "tap", "redis-stream", *streams]
        tap = subprocess.Popen(
            [*command, "--group", TAP_GROUP, "--consumer", "demo-tap", "--start", "earliest", "--block", "0.5"]
        )
        bus = RedisStreamBus(config.redis_url or "", config.redis_prefix)
        try:
            deadline = time.monotonic() + TAP_START_SECONDS
            while not all(bus.has_group(topic, TAP_GROUP) for topic in TOPICS):
                if tap.poll() is not None:
                    raise CommandError(f"`manage.py tap redis-stream` exited with {tap.returncode}; see its output above.")
                if time.monotonic() > deadline:
                    tap.kill()
                    raise CommandError(f"`manage.py tap redis-stream` did not subscribe within {TAP_START_SECONDS} s.")
                time.sleep(0.2)
        finally:
            bus.close()
        return tap

    def _stop_tap(self, tap: subprocess.Popen[bytes], config: ShopConfig, patience: float) -> None:
        """Let the tap store what the shop published, then stop it."""
        bus = RedisStreamBus(config.redis_url or "", config.redis_prefix)
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline and tap.poll() is None and bus.unread(TOPICS, group=TAP_GROUP):
            time.sleep(0.2)
        bus.close()
        if tap.poll() is None:
            tap.send_signal(signal.SIGINT)
            try:
                tap.wait(10)
            except subprocess.TimeoutExpired:
                tap.kill()


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
