"""The shop's services. Each runs as an independent service would: its own tracer provider and
clock, its own consumer loop on its own thread (and a small worker pool), its own event reporter.
They share nothing but the bus."""

from __future__ import annotations

import logging
import random
import secrets
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from demo.bus import Delivery, EventBus
from demo.catalog import CHECKOUT_LATENCY, TOPIC_BY_EVENT, Reaction, reactions_of, topics_read_by
from demo.events import EventReporter, ShopEvent, build_event, event_source, reaction_event_id, read_event
from demo.faults import Faults, chance
from demo.latency import retry_backoff_ms, sample_latency_ms
from demo.orchestrated import OrderChecks
from demo.telemetry import ServiceClock, format_traceparent, producer_link

logger = logging.getLogger("demo.shop")

MAX_ATTEMPTS = 3
TRANSIENT_FAILURE_SHARE = 0.005  # a timeout now and then, retried
DUPLICATE_PUBLISH_SHARE = 0.01  # a producer that resends after a lost acknowledgement


class ProcessingError(RuntimeError):
    pass


@dataclass
class ServiceContext:
    """What the shop hands each service: the bus, the telemetry, the current faults."""

    bus: EventBus
    provider: TracerProvider
    clock: ServiceClock
    reporter: EventReporter | None
    faults: Callable[[], Faults]
    stopping: threading.Event
    rng: random.Random
    latency_scale: float = 1.0  # below 1 the whole shop works faster (tests, impatient demos)
    log_provider: LoggerProvider | None = None  # plain log lines, written inside the current span


class ShopService:
    def __init__(self, name: str, ctx: ServiceContext, workers: int = 16) -> None:
        self.name = name
        self.ctx = ctx
        self.tracer = ctx.provider.get_tracer("shop." + name.replace("-", "_"), "1.4.2")
        self.log_lines = ctx.log_provider.get_logger("shop." + name.replace("-", "_"), "1.4.2") if ctx.log_provider else None
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self.workers = workers
        self.in_flight = 0
        self.handled = 0
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, None] = OrderedDict()  # recently processed message ids
        self._thread: threading.Thread | None = None

    # --- publishing ------------------------------------------------------------------------

    def publish(self, event_type: str, order_id: str, data: dict[str, Any], cause: ShopEvent | None) -> str:
        topic = TOPIC_BY_EVENT[event_type]
        destination = self.ctx.bus.destination(topic)
        event_id = reaction_event_id(cause.id, self.name, event_type) if cause else str(uuid.uuid4())
        attributes = {
            **self._messaging(destination, "send", event_id, order_id),
            "cloudevents.event_id": event_id,
            "cloudevents.event_source": event_source(self.name),
            "cloudevents.event_type": event_type,
        }
        with self.span(f"send {destination}", SpanKind.PRODUCER, attributes) as span:
            payload = build_event(
                event_type=event_type,
                service=self.name,
                event_id=event_id,
                order_id=order_id,
                data=data,
                traceparent=format_traceparent(span.get_span_context()),
                causation_id=cause.id if cause else None,
                time_ns=self.ctx.clock.now_ns(),
            )
            self.ctx.bus.publish(topic, payload)
            if chance(self.ctx.rng, DUPLICATE_PUBLISH_SHARE):
                self.ctx.bus.publish(topic, payload)
            if self.ctx.reporter:
                self.ctx.reporter.report(payload)
        return event_id

    def _messaging(self, destination: str, operation: str, message_id: str, order_id: str) -> dict[str, Any]:
        return {
            "messaging.system": self.ctx.bus.system,
            "messaging.destination.name": destination,
            "messaging.operation.type": operation,
            "messaging.operation.name": operation,
            "messaging.message.id": message_id,
            "order.id": order_id,
        }

    @contextmanager
    def span(self, name: str, kind: SpanKind, attributes: dict[str, Any], **options: Any) -> Iterator[Span]:
        """A span timed by this service's own (possibly skewed) clock."""
        clock = self.ctx.clock
        with self.tracer.start_as_current_span(
            name, kind=kind, attributes=attributes, start_time=clock.now_ns(), end_on_exit=False, **options
        ) as span:
            try:
                yield span
            finally:
                span.end(end_time=clock.now_ns())

    def log(self, severity: SeverityNumber, body: str, **attributes: Any) -> None:
        """A plain log line in the current span, stamped by this service's clock."""
        if self.log_lines:
            self.log_lines.emit(
                timestamp=self.ctx.clock.now_ns(),
                severity_number=severity,
                severity_text=severity.name,
                body=body,
                attributes=attributes,
            )

    def work(self, name: str, latency_ms: float, attributes: dict[str, Any]) -> bool:
        """Do the service's actual work (simulated); False if the shop is shutting down meanwhile."""
        with self.span(name, SpanKind.INTERNAL, attributes):
            return not self.ctx.stopping.wait(latency_ms / 1000.0)

    # --- consuming -------------------------------------------------------------------------

    def start(self) -> None:
        topics = topics_read_by(self.name)
        if not topics:
            return
        self.ctx.bus.subscribe(self.name, topics)
        self._thread = threading.Thread(target=self._consume, name=f"{self.name}-consumer", daemon=True)
        self._thread.start()

    def backlog(self) -> int:
        return self.ctx.bus.backlog(self.name) + self.in_flight

    def stop(self) -> None:
        if self._thread:
            self._thread.join(5)
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _consume(self) -> None:
        while not self.ctx.stopping.is_set():
            if self.ctx.faults().offline:
                self.ctx.stopping.wait(0.2)
                continue
            free = self.workers - self.in_flight
            if free <= 0:
                self.ctx.stopping.wait(0.05)
                continue
            try:
                deliveries = self.ctx.bus.receive(self.name, free, timeout=0.5)
            except Exception:
                logger.exception("%s: the bus is unavailable; retrying", self.name)
                self.ctx.stopping.wait(1.0)
                continue
            for delivery in deliveries:
                self._submit(delivery, 1)

    def _submit(self, delivery: Delivery, attempt: int) -> None:
        with self._lock:
            self.in_flight += 1
        try:
            self.pool.submit(self._handle_safely, delivery, attempt)
        except RuntimeError:  # the pool is shut down: the shop is stopping
            with self._lock:
                self.in_flight -= 1

    def _handle_safely(self, delivery: Delivery, attempt: int) -> None:
        try:
            done = self._handle(delivery, attempt)
        except Exception:
            logger.exception("%s: cannot handle a delivery from %s", self.name, delivery.topic)
            done = True
        if done:
            self.ctx.bus.ack(self.name, delivery)
        with self._lock:
            self.in_flight -= 1
            self.handled += 1

    def _handle(self, delivery: Delivery, attempt: int) -> bool:
        """Process one delivery; True when it is finished with (handled, skipped or given up)."""
        event = read_event(delivery.payload)
        reaction = next((r for r in reactions_of(self.name) if r.on == event.type), None)
        if reaction is None:
            return True
        faults = self.ctx.faults()
        if attempt == 1 and chance(self.ctx.rng, faults.drop):
            return True  # lost: the order waits for a reaction that never comes
        destination = self.ctx.bus.destination(delivery.topic)
        attributes = {
            **self._messaging(destination, "process", event.id, event.order_id),
            "messaging.consumer.group.name": self.name,
            "messaging.destination.subscription.name": self.name,
            "cloudevents.event_id": event.id,
            "cloudevents.event_source": event.source,
            "cloudevents.event_type": event.type,
        }
        if attempt > 1:
            attributes["messaging.delivery.attempt"] = attempt
        links = producer_link(event.traceparent, event.id)
        # A messaging consumer starts a trace of its own and links back to the producer.
        with self.span(
            f"process {destination}", SpanKind.CONSUMER, attributes, links=links, context=otel_context.Context()
        ) as span:
            if self._already_processed(event.id):
                span.set_attribute("shop.duplicate_delivery", True)
                self.log(
                    SeverityNumber.INFO, f"{event.type} {event.id} already handled; acknowledged again", order_id=event.order_id
                )
                return True
            if attempt > 1:
                self.log(
                    SeverityNumber.WARN,
                    f"retrying {reaction.work} (attempt {attempt} of {MAX_ATTEMPTS})",
                    order_id=event.order_id,
                )
            else:
                self.log(SeverityNumber.INFO, f"{event.type} taken from {destination}: {reaction.work}", order=event.order_id)
            return self._react(span, reaction, event, faults, attempt, delivery)

    def _react(self, span: Span, reaction: Reaction, event: ShopEvent, faults: Faults, attempt: int, delivery: Delivery) -> bool:
        latency_ms = sample_latency_ms(reaction.latency, self.ctx.rng) * self.ctx.latency_scale + faults.slow_seconds * 1000.0
        if not self.work(reaction.work, latency_ms, {"order.id": event.order_id}):
            return False
        if chance(self.ctx.rng, faults.fail) or chance(self.ctx.rng, TRANSIENT_FAILURE_SHARE):
            error = ProcessingError(f"{reaction.work} failed for {event.order_id} (attempt {attempt} of {MAX_ATTEMPTS})")
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, str(error)))
            span.set_attribute("error.type", "ProcessingError")
            final = attempt >= MAX_ATTEMPTS
            self.log(SeverityNumber.ERROR, f"{error}; {'giving up' if final else 'will retry'}", order=event.order_id)
            if attempt < MAX_ATTEMPTS:
                self._retry_later(delivery, attempt)
                return False
            return True  # dead-lettered: the flow shows the error and stops here
        self.publish(reaction.emits, event.order_id, reaction_data(reaction, self.ctx.rng), cause=event)
        self._remember(event.id)
        return True

    def _retry_later(self, delivery: Delivery, attempt: int) -> None:
        timer = threading.Timer(retry_backoff_ms(attempt) / 1000.0, self._submit, (delivery, attempt + 1))
        timer.daemon = True
        timer.start()

    def _already_processed(self, message_id: str) -> bool:
        with self._lock:
            return message_id in self._seen

    def _remember(self, message_id: str) -> None:
        with self._lock:
            self._seen[message_id] = None
            while len(self._seen) > 50_000:
                self._seen.popitem(last=False)


class CheckoutService(ShopService):
    """Takes orders at a Poisson rate and emits OrderCreated for each (once ``checks``, when set,
    approved it over HTTP: the shop's orchestrated part)."""

    checks: OrderChecks | None = None

    def __init__(self, name: str, ctx: ServiceContext, rate: float, workers: int = 16) -> None:
        super().__init__(name, ctx, workers)
        self.rate = rate
        self.orders = 0
        self.accepting = threading.Event()
        self.accepting.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._take_orders, name="checkout-orders", daemon=True)
        self._thread.start()

    def backlog(self) -> int:
        return self.in_flight

    def stop_taking_orders(self) -> None:
        self.accepting.clear()

    def _take_orders(self) -> None:
        while self.accepting.is_set() and not self.ctx.stopping.wait(self.ctx.rng.expovariate(self.rate)):
            if not self.accepting.is_set() or self.ctx.faults().offline:
                continue
            with self._lock:
                self.in_flight += 1
            try:
                self.pool.submit(self._checkout_safely)
            except RuntimeError:
                return

    def _checkout_safely(self) -> None:
        placed = False
        try:
            placed = self.checkout()
        except Exception:
            logger.exception("checkout failed")
        finally:
            with self._lock:
                self.in_flight -= 1
                self.orders += placed

    def checkout(self) -> bool:
        """One order: True once it is placed (OrderCreated handed to the reporter, or the order
        failed, was refused or dropped on purpose), False when the shop stopped before it was."""
        order_id = f"order-{secrets.token_hex(3)}"
        faults = self.ctx.faults()
        attributes = {"http.request.method": "POST", "http.route": "/checkout", "url.path": "/checkout", "order.id": order_id}
        with self.span("POST /checkout", SpanKind.SERVER, attributes, context=otel_context.Context()) as span:
            latency_ms = sample_latency_ms(CHECKOUT_LATENCY, self.ctx.rng) * self.ctx.latency_scale + faults.slow_seconds * 1000.0
            if not self.work("create order", latency_ms, {"order.id": order_id}):
                return False
            if chance(self.ctx.rng, faults.fail):
                span.set_attribute("http.response.status_code", 500)
                span.record_exception(ProcessingError(f"payment authorisation failed for {order_id}"))
                span.set_status(Status(StatusCode.ERROR, "payment authorisation failed"))
                return True
            approved = self.checks is None or self.checks.approve(self.span, order_id)
            if self.ctx.stopping.is_set():
                return False  # the shop stopped while the checks ran: the order is never placed
            if not approved:
                span.set_attribute("http.response.status_code", 402)
                return True
            span.set_attribute("http.response.status_code", 201)
            if not chance(self.ctx.rng, faults.drop):
                self.publish("OrderCreated", order_id, order_data(self.ctx.rng), cause=None)
        return True


def order_data(rng: random.Random) -> dict[str, Any]:
    items = rng.randint(1, 5)
    return {
        "customer_id": f"cust-{rng.randint(1000, 9999)}",
        "items": items,
        "total": round(sum(rng.uniform(4.0, 80.0) for _ in range(items)), 2),
        "currency": "EUR",
    }


def reaction_data(reaction: Reaction, rng: random.Random) -> dict[str, Any]:
    if reaction.emits == "PointsCreated":
        return {"points": rng.randint(10, 400)}
    if reaction.emits == "ShipmentPrepared":
        return {"warehouse": rng.choice(["AMS-1", "FRA-2", "MAD-1"]), "parcels": rng.randint(1, 3)}
    if reaction.emits == "ShipmentDispatched":
        return {"carrier": rng.choice(["DHL", "UPS", "PostNL"]), "tracking": f"TRK{rng.randint(10**8, 10**9 - 1)}"}
    if reaction.emits == "FraudCleared":
        return {"score": round(rng.uniform(0.0, 0.3), 3)}
    return {"template": reaction.emits}
