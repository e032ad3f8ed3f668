"""analytics: a batch consumer, as Kafka, SQS and Spring batch listeners work.

It loads orders into the shop's data warehouse in batches: it takes up to ``BATCH_SIZE``
OrderCreated messages at once (waiting at most ``BATCH_WAIT_SECONDS`` for a batch to fill) and,
as the OpenTelemetry messaging conventions recommend for batch receivers, processes them under
ONE consumer span that starts a trace of its own and links to every message's producer context.
Under it, one span per order (keyed by the order, delivered that order's message) emits the
order's own ``OrderRecorded`` event, caused by its OrderCreated. The batch span carries no key:
it serves every order of the batch.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from demo.bus import Delivery
from demo.catalog import reactions_of
from demo.events import ShopEvent, read_event
from demo.faults import Faults, chance
from demo.latency import retry_backoff_ms, sample_latency_ms
from demo.services import MAX_ATTEMPTS, TRANSIENT_FAILURE_SHARE, ProcessingError, ServiceContext, ShopService
from demo.telemetry import producer_link

BATCH_SIZE = 20
BATCH_WAIT_SECONDS = 1.0


class AnalyticsService(ShopService):
    """Consumes its topics in batches; one batch at a time in flight per worker."""

    def __init__(self, name: str, ctx: ServiceContext, workers: int = 2) -> None:
        super().__init__(name, ctx, workers)
        self.gathering = 0  # deliveries received into a batch that is still filling

    def backlog(self) -> int:
        # Received but not yet submitted is still work to do: the shop must not stop meanwhile.
        return super().backlog() + self.gathering

    def _consume(self) -> None:
        while not self.ctx.stopping.is_set():
            if self.ctx.faults().offline or self.in_flight >= self.workers * BATCH_SIZE:
                self.ctx.stopping.wait(0.2)
                continue
            try:
                batch = self._fill_batch()
            except Exception:
                self.ctx.stopping.wait(1.0)
                continue
            if batch:
                self._submit_batch(batch, 1)
            self.gathering = 0  # counted in flight now (counted twice for a moment, never zero times)

    def _fill_batch(self) -> list[Delivery]:
        """Up to BATCH_SIZE deliveries: what arrives within BATCH_WAIT_SECONDS of the first."""
        batch = self.ctx.bus.receive(self.name, BATCH_SIZE, timeout=0.5)
        self.gathering = len(batch)
        deadline = time.monotonic() + BATCH_WAIT_SECONDS
        while batch and len(batch) < BATCH_SIZE and not self.ctx.stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            batch += self.ctx.bus.receive(self.name, BATCH_SIZE - len(batch), timeout=min(left, 0.25))
            self.gathering = len(batch)
        return batch

    def _submit_batch(self, batch: list[Delivery], attempt: int) -> None:
        with self._lock:
            self.in_flight += len(batch)
        try:
            self.pool.submit(self._handle_batch_safely, batch, attempt)
        except RuntimeError:  # the pool is shut down: the shop is stopping
            with self._lock:
                self.in_flight -= len(batch)

    def _handle_batch_safely(self, batch: list[Delivery], attempt: int) -> None:
        try:
            done = self._handle_batch(batch, attempt)
        except Exception:
            done = True
        if done:
            for delivery in batch:
                self.ctx.bus.ack(self.name, delivery)
        with self._lock:
            self.in_flight -= len(batch)
            self.handled += len(batch)

    def _handle_batch(self, batch: list[Delivery], attempt: int) -> bool:
        """Process one batch; True when it is finished with (handled, or given up)."""
        faults = self.ctx.faults()
        events = [read_event(delivery.payload) for delivery in batch]
        wanted = {reaction.on for reaction in reactions_of(self.name)}
        # A message published twice (a lost acknowledgement) may arrive twice in one batch.
        unique = {event.id: event for event in events if event.type in wanted}
        events = [event for event in unique.values() if not self._already_processed(event.id)]
        if attempt == 1:
            events = [event for event in events if not chance(self.ctx.rng, faults.drop)]
        if not events:
            return True
        destination = self.ctx.bus.destination(batch[0].topic)
        links: list[Link] = [link for event in events for link in producer_link(event.traceparent, event.id)]
        attributes: dict[str, Any] = {
            "messaging.system": self.ctx.bus.system,
            "messaging.destination.name": destination,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.batch.message_count": len(events),
            "messaging.consumer.group.name": self.name,
        }
        if attempt > 1:
            attributes["messaging.delivery.attempt"] = attempt
        # A new trace (an empty parent context), linked to every message's producer.
        root = otel_context.Context()
        with self.span(f"process {destination}", SpanKind.CONSUMER, attributes, links=links, context=root) as span:
            return self._load(span, events, faults, attempt, batch)

    def _load(self, span: Span, events: list[ShopEvent], faults: Faults, attempt: int, batch: list[Delivery]) -> bool:
        [reaction] = reactions_of(self.name)
        latency_ms = sample_latency_ms(reaction.latency, self.ctx.rng) * self.ctx.latency_scale + faults.slow_seconds * 1000.0
        if not self.work("load batch", latency_ms, {"analytics.batch.size": len(events)}):
            return False
        if chance(self.ctx.rng, faults.fail) or chance(self.ctx.rng, TRANSIENT_FAILURE_SHARE):
            error = ProcessingError(f"loading a batch of {len(events)} orders failed (attempt {attempt} of {MAX_ATTEMPTS})")
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, str(error)))
            span.set_attribute("error.type", "ProcessingError")
            if attempt < MAX_ATTEMPTS:
                timer = threading.Timer(retry_backoff_ms(attempt) / 1000.0, self._submit_batch, (batch, attempt + 1))
                timer.daemon = True
                timer.start()
                return False
            return True
        for event in events:
            self._record(event, reaction.work, reaction.emits)
        return True

    def _record(self, event: ShopEvent, work: str, emits: str) -> None:
        """One order of the batch: its own span (keyed by the order, delivered its message) and event."""
        attributes = {
            "order.id": event.order_id,
            "messaging.message.id": event.id,
            "cloudevents.event_id": event.id,
            "cloudevents.event_source": event.source,
        }
        with self.span(work, SpanKind.INTERNAL, attributes):
            self.publish(emits, event.order_id, {"warehouse_table": "orders"}, cause=event)
        self._remember(event.id)
