"""The running shop: starts the services on a bus, keeps their fault settings fresh, lets
fraud-check join later, and shuts down cleanly (draining, then flushing every exporter)."""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry.sdk.trace import TracerProvider

from demo.analytics import AnalyticsService
from demo.bus import EventBus, InProcessBus, RabbitBus, RedisStreamBus
from demo.catalog import ANALYTICS, CHECKOUT, CLOCK_SKEW_MS, FRAUD
from demo.events import EventReporter
from demo.faults import Faults
from demo.orchestrated import OrderChecks, start_order_checks
from demo.services import CheckoutService, ServiceContext, ShopService
from demo.telemetry import ServiceClock, logs_endpoint, service_logger_provider, service_tracer_provider, traces_endpoint

logger = logging.getLogger("demo.shop")

FLUSH_SECONDS = 6.0
IN_FLIGHT_SECONDS = 5.0  # at most this long for orders caught between their checks and OrderCreated


@dataclass(frozen=True)
class ShopConfig:
    target: str
    rate: float = 2.0
    services: tuple[str, ...] = ()
    fraud_joins_after: float = 30.0
    token: str | None = None
    redis_url: str | None = None  # Redis Streams' server
    redis_prefix: str = "choreoscope"  # namespaces the bus's streams, or exchanges and queues
    bus: str = ""  # in-process, redis or rabbitmq; by default Redis Streams when redis_url is set
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    events_via_bus: bool = False  # True: events reach Choreoscope through the tap on the bus, not HTTP
    seed: int | None = None
    latency_scale: float = 1.0
    orchestrated: bool = True  # checkout calls fraud-screening and payment over HTTP first (demo.orchestrated)


def bus_kind(config: ShopConfig) -> str:
    return config.bus or ("redis" if config.redis_url else "in-process")


def make_bus(config: ShopConfig) -> EventBus:
    kind = bus_kind(config)
    if kind == "redis":
        return RedisStreamBus(config.redis_url or "", config.redis_prefix)
    if kind == "rabbitmq":
        return RabbitBus(config.rabbitmq_url, config.redis_prefix)
    return InProcessBus()


class Shop:
    FAULT_REFRESH_SECONDS = 1.0
    HEARTBEAT_SECONDS = 2.0

    def __init__(
        self,
        config: ShopConfig,
        read_faults: Callable[[], dict[str, Faults]],
        report_backlogs: Callable[[dict[str, int]], None],
    ) -> None:
        self.config = config
        self.bus = make_bus(config)
        self.read_faults = read_faults
        self.report_backlogs = report_backlogs
        self.stopping = threading.Event()
        self.services: dict[str, ShopService] = {}
        self.reporters: list[EventReporter] = []
        self._faults: dict[str, Faults] = {}
        self._rng = random.Random(config.seed)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.checks: OrderChecks | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._refresh_faults()
        self._spawn(self._keep_faults_fresh, "fault-refresh")
        # Consumers subscribe before checkout takes its first order, so none is missed.
        for name in sorted(self.config.services, key=lambda service: service == CHECKOUT):
            if name == FRAUD and self.config.fraud_joins_after > 0:
                self._spawn(self._join_later, "fraud-joins-later")
            else:
                self.start_service(name)

    def start_service(self, name: str) -> ShopService:
        ctx = self._service_context(name)
        service: ShopService
        if name == CHECKOUT:
            service = CheckoutService(name, ctx, rate=self.config.rate)
        else:
            service = AnalyticsService(name, ctx) if name == ANALYTICS else ShopService(name, ctx)
        if isinstance(service, CheckoutService) and self.config.orchestrated:
            service.checks = self.checks = start_order_checks(self._tracer_provider, self._rng, self.config.latency_scale)
        service.start()
        with self._lock:
            self.services[name] = service
        logger.info("%s is up%s", name, " and subscribed" if name != CHECKOUT else "")
        return service

    def stop(self, drain_seconds: float) -> None:
        """Stop taking orders, let the in-flight reactions finish (services that are offline
        excepted) for up to ``drain_seconds``, then stop and flush everything."""
        checkout = self.services.get(CHECKOUT)
        if isinstance(checkout, CheckoutService):
            checkout.stop_taking_orders()
        self.wait_until_drained(drain_seconds)
        self.stopping.set()
        if isinstance(checkout, CheckoutService):
            # An order between its checks and its OrderCreated finishes before the reporters stop,
            # so every order the shop counts has its event flushed.
            deadline = time.monotonic() + IN_FLIGHT_SECONDS
            while checkout.in_flight and time.monotonic() < deadline:
                time.sleep(0.05)
        for service in list(self.services.values()):
            service.stop()
        # Flush every service's spans and events at once: each is an independent exporter, and
        # one that cannot reach Choreoscope must not hold up the others.
        flushes: list[Callable[[], None]] = [reporter.stop for reporter in self.reporters]
        flushes += [service.ctx.provider.shutdown for service in self.services.values()]
        flushes += [self.checks.stop] if self.checks else []
        flushes += [service.ctx.log_provider.shutdown for service in self.services.values() if service.ctx.log_provider]
        flushers = [threading.Thread(target=flush, daemon=True) for flush in flushes]
        for flusher in flushers:
            flusher.start()
        for flusher in flushers:
            flusher.join(FLUSH_SECONDS)
        for thread in self._threads:
            thread.join(2)
        self.bus.close()

    def wait_until_drained(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not any(self.backlogs(online_only=True).values()):
                return True
            time.sleep(0.1)
        logger.info("stopping with work left: %s", self.backlogs())
        return False

    def backlogs(self, online_only: bool = False) -> dict[str, int]:
        with self._lock:
            services = dict(self.services)
        return {
            name: service.backlog() for name, service in services.items() if not (online_only and self.faults_of(name).offline)
        }

    def faults_of(self, service: str) -> Faults:
        return self._faults.get(service, Faults())

    def orders(self) -> int:
        checkout = self.services.get(CHECKOUT)
        return checkout.orders if isinstance(checkout, CheckoutService) else 0

    # --- internals -------------------------------------------------------------------------

    def _tracer_provider(self, name: str) -> TracerProvider:
        return service_tracer_provider(name, traces_endpoint(self.config.target, dict(os.environ)), self.config.token)

    def _service_context(self, name: str) -> ServiceContext:
        endpoint = traces_endpoint(self.config.target, dict(os.environ))
        reporter = None
        if not self.config.events_via_bus:
            reporter = EventReporter(self.config.target.rstrip("/") + "/v1/events", self.config.token)
            reporter.start()
            self.reporters.append(reporter)
        return ServiceContext(
            bus=self.bus,
            provider=service_tracer_provider(name, endpoint, self.config.token),
            log_provider=service_logger_provider(name, logs_endpoint(endpoint), self.config.token),
            clock=ServiceClock(CLOCK_SKEW_MS.get(name, 0.0)),
            reporter=reporter,
            faults=lambda: self.faults_of(name),
            stopping=self.stopping,
            rng=random.Random(self._rng.random()),
            latency_scale=self.config.latency_scale,
        )

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _join_later(self) -> None:
        if not self.stopping.wait(self.config.fraud_joins_after):
            logger.info("%s joins the running shop: it subscribes to orders, nobody else changes", FRAUD)
            self.start_service(FRAUD)

    def _keep_faults_fresh(self) -> None:
        last_heartbeat = 0.0
        while not self.stopping.wait(self.FAULT_REFRESH_SECONDS):
            self._refresh_faults()
            if time.monotonic() - last_heartbeat >= self.HEARTBEAT_SECONDS:
                last_heartbeat = time.monotonic()
                try:
                    self.report_backlogs(self.backlogs())
                except Exception:
                    logger.warning("cannot record the shop's heartbeat", exc_info=True)

    def _refresh_faults(self) -> None:
        try:
            faults = self.read_faults()
        except Exception:
            logger.warning("cannot read the fault settings; keeping the last ones", exc_info=True)
            return
        for name, new in faults.items():
            if self._faults.get(name, Faults()) != new:
                logger.info("%s: %s", name, new.describe())
        self._faults = faults
