"""Realistic flows for the pages' tests, screenshots and benchmark, written through the same
store + correlation services that ingestion uses.

Run inside a server's environment with
``manage.py shell -c "from tests.pages.scenarios import main; main('checkout', 'order-1042')"``;
it prints ``{"flow_id": ..., "key": ...}``.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.polling import eventually
from tracing.records import (
    SPAN_KIND_CLIENT,
    SPAN_KIND_CONSUMER,
    SPAN_KIND_INTERNAL,
    SPAN_KIND_PRODUCER,
    SPAN_KIND_SERVER,
    ObservationRecord,
    event_identity,
    span_identity,
)

MS = 1_000_000

XSS_POLYGLOTS = [
    "<script>window.__xss = 1</script>",
    '"><img src=x onerror="window.__xss=1">',
    "jaVasCript:/*-/*`/*\\`/*'/*\"/**/(/* */oNcliCk=window.__xss=1 )//%0D%0A%0d%0a//</stYle/</titLe/</teXtarEa/</scRipt/--!>"
    "\\x3csVg/<sVg/oNloAd=window.__xss=1//>\\x3e",
    "</script><svg onload=window.__xss=1>",
    "{{7*7}}${7*7}<iframe srcdoc='<script>parent.__xss=1</script>'>",
]


def hex_id(length: int) -> str:
    return secrets.token_hex(length // 2)


@dataclass
class FlowBuilder:
    key: str
    t0_ns: int
    records: list[ObservationRecord] = field(default_factory=list)

    def span(
        self,
        service: str,
        name: str,
        trace: str,
        *,
        start_ms: float,
        duration_ms: float,
        parent: str = "",
        kind: int = SPAN_KIND_INTERNAL,
        attributes: dict[str, Any] | None = None,
        links: Sequence[tuple[str, str]] = (),
        status: str = "unset",
        message: str = "",
        events: list[dict[str, Any]] | None = None,
    ) -> str:
        span_id = hex_id(16)
        start = self.t0_ns + int(start_ms * MS)
        self.records.append(
            ObservationRecord(
                kind="span",
                identity=span_identity(trace, span_id),
                name=name,
                service=service,
                start_ns=start,
                end_ns=start + int(duration_ms * MS),
                trace_id=trace,
                span_id=span_id,
                parent_span_id=parent,
                span_kind=kind,
                status=status,  # type: ignore[arg-type]
                status_message=message,
                attributes={"order.id": self.key, **(attributes or {})},
                resource={"service.name": service, "service.version": "1.4.2", "deployment.environment": "production"},
                detail={
                    "links": [
                        {"trace_id": t, "span_id": s, "attributes": {"messaging.operation.type": "receive"}} for t, s in links
                    ],
                    "events": events or [],
                },
            )
        )
        return span_id

    def event(
        self,
        service: str,
        type_: str,
        event_id: str,
        *,
        at_ms: float,
        trace: str = "",
        span: str = "",
        caused_by: str = "",
        data: Any = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        source = f"/{service}"
        attributes: dict[str, Any] = {"correlationid": self.key, **(extra or {})}
        if caused_by:
            attributes["causationid"] = caused_by
        if trace:
            attributes["traceparent"] = f"00-{trace}-{span}-01"
        self.records.append(
            ObservationRecord(
                kind="event",
                identity=event_identity(source, event_id),
                name=type_,
                service=source,
                start_ns=self.t0_ns + int(at_ms * MS),
                trace_id=trace,
                span_id=span,
                event_source=source,
                event_id=event_id,
                attributes=attributes,
                detail={"specversion": "1.0", "datacontenttype": "application/json", "subject": self.key, "data": data},
            )
        )
        return event_id

    def publish(
        self, service: str, type_: str, trace: str, parent: str, *, at_ms: float, caused_by: str = "", data: Any = None
    ) -> str:
        """A producer span and the CloudEvent it sends, as an instrumented service emits them."""
        event_id = f"{type_}-{self.key}-{hex_id(8)}"
        producer = self.span(
            service,
            f"{type_} send",
            trace,
            start_ms=at_ms,
            duration_ms=4,
            parent=parent,
            kind=SPAN_KIND_PRODUCER,
            attributes={
                "messaging.system": "redis",
                "messaging.operation.type": "send",
                "messaging.destination.name": "shop.events",
                "cloudevents.event_id": event_id,
                "cloudevents.event_source": f"/{service}",
            },
        )
        self.event(service, type_, event_id, at_ms=at_ms + 2, trace=trace, span=producer, caused_by=caused_by, data=data)
        return event_id

    def consume(
        self,
        service: str,
        type_: str,
        event_id: str,
        producer: tuple[str, str, str],
        *,
        at_ms: float,
        duration_ms: float,
        status: str = "unset",
        message: str = "",
    ) -> tuple[str, str]:
        trace = hex_id(32)
        span = self.span(
            service,
            f"{type_} process",
            trace,
            start_ms=at_ms,
            duration_ms=duration_ms,
            kind=SPAN_KIND_CONSUMER,
            links=[producer[:2]],
            status=status,
            message=message,
            attributes={
                "messaging.system": "redis",
                "messaging.operation.type": "process",
                "messaging.consumer.group.name": service,
                "cloudevents.event_id": event_id,
                "cloudevents.event_source": producer[2],
            },
        )
        return trace, span


def producer_of(builder: FlowBuilder, event_id: str) -> tuple[str, str, str]:
    """The trace and span that emitted an event, and the event's source."""
    for record in builder.records:
        if record.kind == "event" and record.event_id == event_id:
            return record.trace_id, record.span_id, record.event_source
    raise KeyError(event_id)


def checkout(
    key: str, minutes_ago: float = 9.0, healthy: bool = False, redelivered: bool = True
) -> tuple[list[ObservationRecord], list[dict[str, Any]]]:
    """The running example: checkout → OrderCreated → email, warehouse (waits 3 m for stock, then
    ships), rewards (times out; the message is ``redelivered`` and that attempt ends without
    error but never awards the points: PointsCreated never comes, so the flow is stuck; not
    redelivered, the timeout fails the flow; or, when ``healthy``, awards the points)."""
    t0 = time.time_ns() - int(minutes_ago * 60e9)
    b = FlowBuilder(key, t0)
    trace = hex_id(32)
    root = b.span(
        "checkout",
        "POST /checkout",
        trace,
        start_ms=0,
        duration_ms=182,
        kind=SPAN_KIND_SERVER,
        attributes={
            "http.request.method": "POST",
            "http.route": "/checkout",
            "http.response.status_code": 201,
            "user.id": "customer-7731",
        },
    )
    charge = b.span(
        "checkout",
        "charge card",
        trace,
        start_ms=18,
        duration_ms=121,
        parent=root,
        kind=SPAN_KIND_CLIENT,
        attributes={"http.request.method": "POST", "server.address": "payments"},
    )
    b.span(
        "payments",
        "POST /payments/charge",
        trace,
        start_ms=24,
        duration_ms=109,
        parent=charge,
        kind=SPAN_KIND_SERVER,
        attributes={"payment.amount": 84.9, "payment.currency": "EUR", "payment.provider": "stripe"},
        events=[{"name": "3ds.challenge.skipped", "time_ns": t0 + 40 * MS, "attributes": {"risk.score": 12}}],
    )
    created = b.publish(
        "checkout",
        "OrderCreated",
        trace,
        root,
        at_ms=150,
        data={
            "order_id": key,
            "customer": "customer-7731",
            "total": {"amount": 84.9, "currency": "EUR"},
            "items": [{"sku": "TEA-EARLGREY-250", "qty": 2}, {"sku": "MUG-STONE-BLUE", "qty": 1}],
        },
    )
    producer = producer_of(b, created)

    email_trace, email_span = b.consume("email", "OrderCreated", created, producer, at_ms=410, duration_ms=118)
    b.span(
        "email",
        "POST /v3/mail/send",
        email_trace,
        start_ms=430,
        duration_ms=80,
        parent=email_span,
        kind=SPAN_KIND_CLIENT,
        attributes={"server.address": "api.sendgrid.com", "http.response.status_code": 202},
    )
    b.publish(
        "email",
        "EmailSent",
        email_trace,
        email_span,
        at_ms=515,
        caused_by=created,
        data={"order_id": key, "template": "order-confirmation", "to": "c***@example.com"},
    )

    wh_trace, wh_span = b.consume("warehouse", "OrderCreated", created, producer, at_ms=305, duration_ms=160)
    b.span(
        "warehouse",
        "reserve stock",
        wh_trace,
        start_ms=320,
        duration_ms=130,
        parent=wh_span,
        attributes={"db.system": "postgresql", "stock.sku": "MUG-STONE-BLUE", "stock.available": 0},
        events=[{"name": "backorder", "time_ns": t0 + 440 * MS, "attributes": {"expected.restock": "PT3M"}}],
    )
    retry_trace = hex_id(32)
    retry = b.span(
        "warehouse",
        "reserve stock (retry)",
        retry_trace,
        start_ms=192_480,
        duration_ms=210,
        links=[(wh_trace, wh_span)],
        attributes={"db.system": "postgresql", "retry.attempt": 2},
    )
    shipped = b.publish(
        "warehouse",
        "ShipmentPrepared",
        retry_trace,
        retry,
        at_ms=192_660,
        caused_by=created,
        data={"order_id": key, "parcel": "PCL-55102", "carrier": "DHL", "weight_kg": 1.4},
    )

    ship_trace, ship_span = b.consume(
        "shipping", "ShipmentPrepared", shipped, producer_of(b, shipped), at_ms=193_020, duration_ms=290
    )
    b.span(
        "shipping",
        "POST /labels",
        ship_trace,
        start_ms=193_060,
        duration_ms=190,
        parent=ship_span,
        kind=SPAN_KIND_CLIENT,
        attributes={"server.address": "api.dhl.com", "http.response.status_code": 200},
    )
    b.publish(
        "shipping",
        "LabelPrinted",
        ship_trace,
        ship_span,
        at_ms=193_290,
        caused_by=shipped,
        data={"order_id": key, "tracking": "JD014600006281049113"},
    )

    if healthy:
        rewards_trace, rewards_span = b.consume("rewards", "OrderCreated", created, producer, at_ms=352, duration_ms=61)
        b.publish(
            "rewards",
            "PointsCreated",
            rewards_trace,
            rewards_span,
            at_ms=400,
            caused_by=created,
            data={"order_id": key, "points": 85, "tier": "silver"},
        )
        return b.records, []
    b.consume(
        "rewards",
        "OrderCreated",
        created,
        producer,
        at_ms=352,
        duration_ms=5003,
        status="error",
        message="loyalty-db: timeout after 5000 ms",
    )
    if not redelivered:
        return b.records, []
    b.consume("rewards", "OrderCreated", created, producer, at_ms=5_400, duration_ms=38)
    missing = [
        {
            "step": "PointsCreated",
            "service": "rewards",
            "after": "OrderCreated",
            "after_service": "checkout",
            "due_at": t0 / 1e9 + 120,
            "origin": "learned",
        }
    ]
    return b.records, missing


def shipped(key: str, minutes_ago: float = 4.0) -> tuple[list[ObservationRecord], list[dict[str, Any]]]:
    """The same checkout where every reaction happened."""
    return checkout(key, minutes_ago=minutes_ago, healthy=True)


def failed(key: str, minutes_ago: float = 20.0) -> tuple[list[ObservationRecord], list[dict[str, Any]]]:
    """The same checkout where rewards timed out, and nothing made it good."""
    return checkout(key, minutes_ago=minutes_ago, redelivered=False)


def xss(key: str) -> tuple[list[ObservationRecord], list[dict[str, Any]]]:
    """Every field a user can send, full of script-injection polyglots."""
    t0 = time.time_ns() - int(60e9)
    b = FlowBuilder(key, t0)
    trace = hex_id(32)
    evil = {f"attr{i} {p}": p for i, p in enumerate(XSS_POLYGLOTS)}
    root = b.span(
        XSS_POLYGLOTS[1],
        XSS_POLYGLOTS[0],
        trace,
        start_ms=0,
        duration_ms=40,
        kind=SPAN_KIND_SERVER,
        attributes=evil,
        events=[{"name": XSS_POLYGLOTS[2], "attributes": {XSS_POLYGLOTS[3]: XSS_POLYGLOTS[4]}}],
    )
    event_id = f"{XSS_POLYGLOTS[3]}-{hex_id(8)}"
    b.event(
        XSS_POLYGLOTS[1],
        XSS_POLYGLOTS[3],
        event_id,
        at_ms=20,
        trace=trace,
        span=root,
        data={"html": XSS_POLYGLOTS[0], "nested": {"list": XSS_POLYGLOTS}, XSS_POLYGLOTS[2]: XSS_POLYGLOTS[4]},
        extra={"note": XSS_POLYGLOTS[4]},
    )
    missing = [
        {
            "step": XSS_POLYGLOTS[0],
            "service": XSS_POLYGLOTS[3],
            "after": XSS_POLYGLOTS[3],
            "after_service": "",
            "due_at": t0 / 1e9 + 5,
            "origin": "declared",
        }
    ]
    return b.records, missing


def large(key: str, observations: int = 1000) -> tuple[list[ObservationRecord], list[dict[str, Any]]]:
    """A long saga: a chain of events, each consumed by the next of eight services, which emits the
    next event (a consumer span, a producer span and an event per step)."""
    services = ["checkout", "payments", "fraud", "inventory", "warehouse", "shipping", "email", "rewards"]
    t0 = time.time_ns() - int(3600e9)
    b = FlowBuilder(key, t0)
    trace = hex_id(32)
    root = b.span(services[0], "POST /checkout", trace, start_ms=0, duration_ms=50, kind=SPAN_KIND_SERVER)
    previous = b.publish(services[0], "Step0", trace, root, at_ms=40)
    at = 60.0
    step = 1
    while len(b.records) + 3 <= observations:
        service = services[step % len(services)]
        trace, span = b.consume(service, f"Step{step - 1}", previous, producer_of(b, previous), at_ms=at, duration_ms=30)
        at += 5_000 if step % 50 == 0 else 35  # now and then a long wait
        previous = b.publish(service, f"Step{step}", trace, span, at_ms=at, caused_by=previous)
        at += 8
        step += 1
    while len(b.records) < observations:  # round up with work inside the last step
        b.span(service, "write audit log", trace, start_ms=at, duration_ms=3, parent=span)
        at += 4
    return b.records, []


def orchestrated(key: str, root_type: str = "OrderCreated", minutes_ago: float = 2.0) -> tuple[list[ObservationRecord], list]:
    """A hybrid: checkout calls fraud-screening, then payment (which calls the bank) over HTTP and
    waits; then it emits ``root_type``, and email and warehouse react (warehouse last)."""
    t0 = time.time_ns() - int(minutes_ago * 60e9)
    b = FlowBuilder(key, t0)
    trace = hex_id(32)
    http = {"http.request.method": "POST", "http.response.status_code": 200}
    root = b.span("checkout", "POST /checkout", trace, start_ms=0, duration_ms=320, kind=SPAN_KIND_SERVER, attributes=http)
    for caller_parent, caller, callee, route, start, duration in (  # payment's server span calls the bank below
        (root, "checkout", "fraud-screening", "/screenings", 10, 60),
        (root, "checkout", "payment", "/payments", 80, 200),
    ):
        client = b.span(caller, f"POST {route}", trace, start_ms=start, duration_ms=duration, parent=caller_parent,
                        kind=SPAN_KIND_CLIENT, attributes={**http, "url.full": f"http://{callee}{route}"})  # fmt: skip
        server = b.span(callee, f"POST {route}", trace, start_ms=start + 2, duration_ms=duration - 4, parent=client,
                        kind=SPAN_KIND_SERVER, attributes={**http, "http.route": route})  # fmt: skip
    bank = b.span("payment", "POST /authorisations", trace, start_ms=100, duration_ms=150, parent=server,
                  kind=SPAN_KIND_CLIENT, attributes={**http, "url.full": "http://bank/authorisations"})  # fmt: skip
    b.span("bank", "POST /authorisations", trace, start_ms=102, duration_ms=146, parent=bank,
           kind=SPAN_KIND_SERVER, attributes=http)  # fmt: skip
    created = b.publish("checkout", root_type, trace, root, at_ms=300, data={"order_id": key})
    producer = producer_of(b, created)
    for service, reaction, start, duration in (("email", "EmailSent", 330, 40), ("warehouse", "ShipmentPrepared", 360, 900)):
        reaction_trace, span = b.consume(service, root_type, created, producer, at_ms=start, duration_ms=duration)
        b.publish(service, reaction, reaction_trace, span, at_ms=start + duration - 10, caused_by=created, data={"order_id": key})
    return b.records, []


def batched(key: str, minutes_ago: float = 3.0) -> tuple[list[ObservationRecord], list[dict[str, Any]]]:
    """Three orders placed within a second; loyalty, whose clock runs two seconds behind, awards
    their points in one batch (a consumer span linking the three producers); warehouse answers
    the first with a shipment of its own key, caused by its OrderCreated."""
    t0 = time.time_ns() - int(minutes_ago * 60e9)
    number = int(key.rsplit("-", 1)[-1]) if key.rsplit("-", 1)[-1].isdigit() else 1
    keys = [key, f"order-{number + 1}", f"order-{number + 2}"]
    producers, records = [], []
    first_event = ""
    for index, order in enumerate(keys):
        b = FlowBuilder(order, t0)
        trace = hex_id(32)
        at = index * 100.0
        root = b.span("checkout", "POST /checkout", trace, start_ms=at, duration_ms=60, kind=SPAN_KIND_SERVER)
        event_id = b.publish(
            "checkout", "OrderCreated", trace, root, at_ms=at + 40, data={"order_id": order, "total": 42.5 + index}
        )
        producers.append(producer_of(b, event_id))
        first_event = first_event or event_id
        records += b.records
    loyalty = FlowBuilder("", t0)  # a batch belongs to no order of its own
    trace = hex_id(32)
    skewed = 300 - 2_000  # it ran just after the last order, by a clock two seconds behind
    batch = loyalty.span(
        "loyalty",
        "OrderCreated process",
        trace,
        start_ms=skewed,
        duration_ms=120,
        kind=SPAN_KIND_CONSUMER,
        links=[producer[:2] for producer in producers],
        attributes={"messaging.system": "redis", "messaging.operation.type": "process", "messaging.batch.message_count": 3},
    )
    loyalty.span("loyalty", "award points", trace, start_ms=skewed + 20, duration_ms=80, parent=batch)
    records += loyalty.records
    shipping = FlowBuilder(f"shipment-{number}", t0)
    trace, span = shipping.consume("warehouse", "OrderCreated", first_event, producers[0], at_ms=400, duration_ms=90)
    shipping.event(
        "warehouse",
        "ShipmentRequested",
        f"ShipmentRequested-{hex_id(8)}",
        at_ms=470,
        trace=trace,
        span=span,
        caused_by=first_event,
    )
    records += shipping.records
    return records, []


SCENARIOS = {
    "checkout": checkout,
    "shipped": shipped,
    "failed": failed,
    "xss": xss,
    "large": large,
    "orchestrated": orchestrated,
    "batched": batched,
}


def seed(name: str, key: str, **options: Any) -> dict[str, Any]:
    from django.db import transaction

    from alerts.models import FlowFlip, FlowWatch
    from tracing.models import Flow, Observation
    from tracing.services import correlate_pending_observations
    from tracing.store import store_observations

    records, missing = SCENARIOS[name](key, **options)
    store_observations(records)
    identities = [r.identity for r in records]

    def all_in_a_flow() -> bool:
        # A Celery worker may be correlating the same rows; either way, wait until all are in a flow.
        if not Observation.objects.filter(identity__in=identities, flow__isnull=True).exists():
            return True
        correlate_pending_observations()
        return False

    eventually(f"{name} flow {key} is correlated", all_in_a_flow, 60, every=0.05)
    flow_ids = set(Observation.objects.filter(identity__in=identities).values_list("flow_id", flat=True))
    flow = Flow.objects.filter(key=key, merged_into__isnull=True).first() or (
        Flow.objects.get(id__in=flow_ids, merged_into__isnull=True) if len(flow_ids) > 1 else Flow.objects.get(id=flow_ids.pop())
    )
    if missing:
        # Stuck detection marks flows like this one once it has learned from enough past flows;
        # the scenario states the outcome directly so that pages can be tested in isolation.
        with transaction.atomic():
            FlowWatch.objects.update_or_create(flow_id=flow.id, defaults={"stuck": True, "missing": missing})
            FlowFlip.objects.create(flow_id=flow.id, old_status="running", new_status="stuck", missing=missing)
    return {"flow_id": flow.id, "key": flow.key, "observations": len(records)}


def main(name: str, key: str, **options: Any) -> None:
    print(json.dumps(seed(name, key, **options)))
