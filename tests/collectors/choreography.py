"""The checkout choreography as the CloudEvents a bus carries, and the shape of the flow it
becomes, so that a tap's flow can be compared with the same events sent over HTTP."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from cloudevents.v1.conversion import to_json
from cloudevents.v1.http import CloudEvent

from tracing.services import correlate_pending_observations

# (type, source, what caused it): OrderCreated fans out to email, warehouse and rewards.
CHECKOUT_STEPS = (
    ("OrderCreated", "/checkout", None),
    ("EmailSent", "/email", "OrderCreated"),
    ("ShipmentPrepared", "/warehouse", "OrderCreated"),
    ("PointsCreated", "/rewards", "OrderCreated"),
    ("ShipmentDispatched", "/warehouse", "ShipmentPrepared"),
)


@dataclass(frozen=True)
class BusEvent:
    """One event: its CloudEvents attributes, its data, and the W3C traceparent of the span that
    sent it (a message header on a bus, the ``traceparent`` extension over HTTP)."""

    attributes: dict[str, str]
    data: dict[str, Any]
    traceparent: str = field(default_factory=lambda: f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01")

    def structured(self, with_traceparent: bool = False) -> bytes:
        """The event as the CloudEvents SDK writes it in structured mode."""
        extra = {"traceparent": self.traceparent} if with_traceparent else {}
        return to_json(CloudEvent({**self.attributes, **extra}, self.data))

    @property
    def body(self) -> bytes:
        return json.dumps(self.data).encode()


def checkout(key: str) -> list[BusEvent]:
    ids = {name: f"{key}-{name}" for name, _, _ in CHECKOUT_STEPS}
    events = []
    for name, source, cause in CHECKOUT_STEPS:
        attributes = {"specversion": "1.0", "id": ids[name], "source": source, "type": name, "correlationid": key}
        if cause:
            attributes["causationid"] = ids[cause]
        events.append(BusEvent(attributes, {"order_id": key, "step": name}))
    return events


def flow_shape(client: Any, key: str) -> dict[str, Any]:
    """What the flows API says about ``key``'s flow, without ids and times."""
    correlate_pending_observations()
    listing = client.get("/api/flows", {"key": key}).json()["results"]
    assert len(listing) == 1, f"expected one flow for {key}, got {listing}"
    detail = client.get(f"/api/flows/{listing[0]['id']}").json()
    names = {node["id"]: f"{node['name']}@{node['service']}" for node in detail["nodes"]}
    return {
        "type": detail["type"],
        "status": detail["status"],
        "services": sorted(detail["services"]),
        "nodes": sorted(names.values()),
        "edges": sorted((names[edge["source"]], names[edge["target"]], edge["kind"]) for edge in detail["edges"]),
    }


def http_flow_shape(client: Any, key: str) -> dict[str, Any]:
    """The flow the same choreography makes when sent over HTTP, one structured event a request."""
    for event in checkout(key):
        answer = client.post("/v1/events", event.structured(with_traceparent=True), content_type="application/cloudevents+json")
        assert answer.status_code == 202, answer.content
    return flow_shape(client, key)


def count_polls(tap: Any) -> list[int]:
    """Record what each of ``tap``'s polls handled, so a test can stop it after some batches."""
    polls: list[int] = []
    original = tap.poll

    def poll() -> int:
        polls.append(original())
        return polls[-1]

    tap.poll = poll
    return polls


@dataclass
class Restarts:
    """What the taps of ``stop_crash_and_restart`` stored: the first (stopped mid-stream) and the
    last (which finished the stream after one that died before acknowledging)."""

    first: int
    last: int


def stop_crash_and_restart(make_tap: Any, total: int) -> Restarts:
    """Against ``total`` messages waiting: a tap stopped once it stored two batches' worth (a poll
    may take fewer than a batch when the broker hands messages over in smaller groups); then one
    that commits a batch and dies before acknowledging it; then a fresh tap until idle."""
    import pytest

    from tracing.store import store_observations

    first = make_tap(batch_size=4)
    polls = count_polls(first)
    first.run(should_stop=lambda: first.stored >= 8)
    assert 8 <= first.stored < total and all(handled <= 4 for handled in polls)

    def commits_then_dies(records: Any) -> None:
        store_observations(records)
        raise ConnectionError("connection lost before the acknowledgement")

    crashed = make_tap(batch_size=4, store=commits_then_dies)
    crashed.connect()
    with pytest.raises(ConnectionError):
        crashed.poll()
    crashed.disconnect()  # what it stored was never acknowledged: the broker delivers it again

    last = make_tap()
    last.run(should_stop=lambda: False, exit_when_idle=True)
    return Restarts(first.stored, last.stored)
