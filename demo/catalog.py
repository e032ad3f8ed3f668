"""The shop's choreography as data: who publishes what, who reacts to what.

Checkout emits OrderCreated; email, warehouse and rewards react (the e-commerce checkout of the
seed article); fraud-check is the fourth service that joins later and simply subscribes. Some
reactions trigger more: ShipmentPrepared → ShipmentDispatched → the dispatch notice e-mail.
analytics loads orders into the data warehouse in batches of up to 20 (``demo.analytics``).
Nobody conducts: each service only knows the topics it reads and the events it emits.
"""

from __future__ import annotations

from dataclasses import dataclass

from demo.latency import LatencyProfile

CHECKOUT, EMAIL, WAREHOUSE, REWARDS, FRAUD = "checkout", "email", "warehouse", "rewards", "fraud-check"
ANALYTICS = "analytics"
SERVICES: tuple[str, ...] = (CHECKOUT, EMAIL, WAREHOUSE, REWARDS, FRAUD, ANALYTICS)

# One topic per publishing domain, as a shop on Kafka or Redis Streams would have it.
TOPIC_BY_EVENT = {
    "OrderCreated": "orders",
    "EmailSent": "notifications",
    "DispatchNoticeSent": "notifications",
    "ShipmentPrepared": "shipments",
    "ShipmentDispatched": "shipments",
    "PointsCreated": "rewards",
    "FraudCleared": "risk",
    "OrderRecorded": "analytics",
}
TOPICS: tuple[str, ...] = tuple(dict.fromkeys(TOPIC_BY_EVENT.values()))


@dataclass(frozen=True, slots=True)
class Reaction:
    """``service`` reacts to ``on`` by doing ``work`` and emitting ``emits``."""

    service: str
    on: str
    emits: str
    work: str
    latency: LatencyProfile


REACTIONS: tuple[Reaction, ...] = (
    Reaction(EMAIL, "OrderCreated", "EmailSent", "send order confirmation", LatencyProfile(median_ms=140)),
    Reaction(WAREHOUSE, "OrderCreated", "ShipmentPrepared", "reserve stock and pack", LatencyProfile(median_ms=450, spread=0.45)),
    Reaction(
        WAREHOUSE,
        "ShipmentPrepared",
        "ShipmentDispatched",
        "hand over to carrier",
        LatencyProfile(median_ms=900, tail_share=0.04),
    ),
    Reaction(EMAIL, "ShipmentDispatched", "DispatchNoticeSent", "send dispatch notice", LatencyProfile(median_ms=120)),
    Reaction(REWARDS, "OrderCreated", "PointsCreated", "credit reward points", LatencyProfile(median_ms=90)),
    Reaction(FRAUD, "OrderCreated", "FraudCleared", "score order risk", LatencyProfile(median_ms=300, spread=0.5)),
    # Per batch: the batch's load takes the latency; each order is then recorded with its own event.
    Reaction(ANALYTICS, "OrderCreated", "OrderRecorded", "record order", LatencyProfile(median_ms=80)),
)

CHECKOUT_LATENCY = LatencyProfile(median_ms=60, spread=0.3)

# The e-mail provider's host runs 2 s behind: its spans and events carry timestamps from before
# the orders that caused them, which is why timelines order by causality before time (and why
# the correlation-health page shows email's clock behind checkout's and warehouse's).
CLOCK_SKEW_MS = {EMAIL: -2000.0}


def reactions_of(service: str) -> tuple[Reaction, ...]:
    return tuple(reaction for reaction in REACTIONS if reaction.service == service)


def topics_read_by(service: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(TOPIC_BY_EVENT[reaction.on] for reaction in reactions_of(service)))


def parse_services(text: str) -> tuple[str, ...]:
    """``checkout,email,warehouse`` → those services, in the shop's order; checkout is required."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SERVICES]
    if unknown:
        raise ValueError(f"unknown service {', '.join(unknown)}; the shop's services are {', '.join(SERVICES)}.")
    if CHECKOUT not in names:
        raise ValueError("the shop needs checkout: without it no order is ever created.")
    return tuple(name for name in SERVICES if name in names)
