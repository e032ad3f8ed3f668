"""Realistic correlated flows for tests, written through the real store and correlation.

``checkout_flow()`` builds the running example of DESIGN.md: checkout handles ``POST /checkout``
and emits ``OrderCreated`` from a producer span; email, warehouse and rewards each consume it in
a new trace (a consumer span linking to the producer) and emit their own event, caused by
OrderCreated; analytics receives OrderCreated but never reacts (the branch alerts look for).
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from tracing.models import Flow, Observation
from tracing.records import (
    SPAN_KIND_CONSUMER,
    SPAN_KIND_INTERNAL,
    SPAN_KIND_PRODUCER,
    SPAN_KIND_SERVER,
    ObservationRecord,
    event_identity,
    span_identity,
)
from tracing.services import correlate_pending_observations
from tracing.store import store_observations

MS = 1_000_000
REACTIONS = {"email": "EmailSent", "warehouse": "ShipmentPrepared", "rewards": "PointsCreated"}
_order_numbers = itertools.count(1042)


def new_trace_id() -> str:
    return secrets.token_hex(16)


def new_span_id() -> str:
    return secrets.token_hex(8)


def span(
    service: str,
    name: str,
    trace_id: str,
    start_ns: int,
    duration_ms: float = 5,
    *,
    parent: str = "",
    kind: int = SPAN_KIND_INTERNAL,
    attributes: dict | None = None,
    links: Sequence[tuple[str, str]] = (),
    status: str = "unset",
    span_id: str = "",
) -> ObservationRecord:
    span_id = span_id or new_span_id()
    detail = {"links": [{"trace_id": t, "span_id": s} for t, s in links]} if links else {}
    return ObservationRecord(
        kind="span",
        identity=span_identity(trace_id, span_id),
        name=name,
        service=service,
        start_ns=start_ns,
        end_ns=start_ns + int(duration_ms * MS),
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        span_kind=kind,
        status=status,  # type: ignore[arg-type]
        attributes=attributes or {},
        resource={"service.name": service},
        detail=detail,
    )


def event(
    source: str,
    event_type: str,
    at_ns: int,
    *,
    data: dict | None = None,
    emitted_by: ObservationRecord | None = None,
    caused_by: ObservationRecord | None = None,
    correlation_id: str = "",
    event_id: str = "",
) -> ObservationRecord:
    event_id = event_id or f"evt-{secrets.token_hex(6)}"
    attributes: dict[str, str] = {}
    if correlation_id:
        attributes["correlationid"] = correlation_id
    if caused_by is not None:
        attributes["causationid"] = caused_by.event_id
    return ObservationRecord(
        kind="event",
        identity=event_identity(source, event_id),
        name=event_type,
        service=source,
        start_ns=at_ns,
        trace_id=emitted_by.trace_id if emitted_by else "",
        span_id=emitted_by.span_id if emitted_by else "",
        event_source=source,
        event_id=event_id,
        attributes=attributes,
        detail={"specversion": "1.0", "datacontenttype": "application/json", "data": data or {}},
    )


@dataclass
class CheckoutFlow:
    key: str
    records: list[ObservationRecord]
    by_name: dict[str, ObservationRecord] = field(default_factory=dict)

    def flow(self) -> Flow:
        return Flow.objects.get(key=self.key, merged_into__isnull=True)

    def observation(self, name: str) -> Observation:
        return Observation.objects.get(identity=self.by_name[name].identity)


def checkout_records(
    key: str | None = None,
    *,
    start_ns: int | None = None,
    reacting: Sequence[str] = ("email", "warehouse", "rewards"),
    silent: Sequence[str] = ("analytics",),
    failing: bool = False,
) -> CheckoutFlow:
    """The observations of one order, not yet stored (for tests that control arrival)."""
    key = key or f"order-{next(_order_numbers)}"
    t = start_ns if start_ns is not None else time.time_ns() - 60_000 * MS
    trace = new_trace_id()
    http = span("checkout", "POST /checkout", trace, t, 40, kind=SPAN_KIND_SERVER, attributes={"order.id": key})
    order_created_id = f"evt-{secrets.token_hex(6)}"
    publish = span(
        "checkout",
        "OrderCreated send",
        trace,
        t + 10 * MS,
        3,
        parent=http.span_id,
        kind=SPAN_KIND_PRODUCER,
        attributes={
            "messaging.operation.type": "send",
            "messaging.system": "redis",
            "cloudevents.event_id": order_created_id,
            "cloudevents.event_source": "/checkout",
        },
    )
    created = event(
        "/checkout",
        "OrderCreated",
        t + 11 * MS,
        data={"order_id": key, "total": 42.5},
        emitted_by=publish,
        correlation_id=key,
        event_id=order_created_id,
    )
    records = [http, publish, created]
    by_name = {"POST /checkout": http, "OrderCreated send": publish, "OrderCreated": created}
    for index, service in enumerate([*reacting, *silent]):
        at = t + (30 + 20 * index) * MS
        consumer_trace = new_trace_id()
        process = span(
            service,
            "OrderCreated process",
            consumer_trace,
            at,
            15,
            kind=SPAN_KIND_CONSUMER,
            links=[(trace, publish.span_id)],
            attributes={
                "messaging.operation.type": "process",
                "cloudevents.event_id": order_created_id,
                "cloudevents.event_source": "/checkout",
            },
        )
        records.append(process)
        by_name[f"{service}: OrderCreated process"] = process
        if service not in reacting:
            continue
        work = span(
            service,
            f"{service} work",
            consumer_trace,
            at + 2 * MS,
            8,
            parent=process.span_id,
            status="error" if failing and service == "warehouse" else "unset",
        )
        reaction = event(
            f"/{service}",
            REACTIONS.get(service, f"{service.title()}Done"),
            at + 11 * MS,
            data={"order_id": key},
            emitted_by=process,
            caused_by=created,
            correlation_id=key,
        )
        records += [work, reaction]
        by_name[f"{service} work"] = work
        by_name[reaction.name] = reaction
    return CheckoutFlow(key, records, by_name)


def checkout_flow(key: str | None = None, **options) -> CheckoutFlow:
    """Store and correlate one order's observations; ``.flow()`` is its Flow."""
    flow = checkout_records(key, **options)
    store_observations(flow.records)
    correlate_pending_observations()
    return flow
