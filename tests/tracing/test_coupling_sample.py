"""Reading the coupling page's sample: attributes decide what span kinds leave open, and the map
classifies the same way."""

from __future__ import annotations

import time

import pytest

from tests.tracing.factories import new_trace_id, span
from tracing.coupling import coupling_by_type, entry_styles, recent_flow_samples
from tracing.models import Observation
from tracing.services import correlate_pending_observations
from tracing.store import store_observations
from tracing.topology import batch_pulses, observed_topology

pytestmark = pytest.mark.django_db


def test_spans_of_unspecified_kind_are_classified_by_their_attributes() -> None:
    now = time.time_ns() - 60 * 10**9
    trace = new_trace_id()
    root = span("gateway", "handle", trace, now, 50)
    fetch = span("gateway", "GET /stock", trace, now + 1_000, 20, parent=root.span_id, attributes={"http.request.method": "GET"})
    served = span("inventory", "stock lookup", trace, now + 2_000, 10, parent=fetch.span_id)
    sent = span("gateway", "publish", trace, now + 30_000, 5, parent=root.span_id, attributes={"messaging.system": "kafka"})
    handled = span("billing", "on order", trace, now + 40_000, 5, parent=sent.span_id)
    store_observations([root, fetch, served, sent, handled])
    correlate_pending_observations()

    (sample,) = recent_flow_samples(3600)
    names = {step.id: step.service for step in sample.steps}
    entries = {names[node]: style for node, style in entry_styles(sample.steps, sample.edges).items()}
    assert entries == {"inventory": "call", "billing": "event"}
    (summary,) = coupling_by_type([sample])
    assert summary.deepest_chain == ["gateway", "inventory"]
    assert [service for service, _ in summary.single_points] == ["inventory"]

    calls = [edge for edge in observed_topology(3600)["edges"] if edge["style"] == "call"]
    assert [(edge["source"], edge["target"]) for edge in calls] == [("service:gateway", "service:inventory")]


def test_a_flow_heard_from_in_the_last_seconds_waits_until_it_settles() -> None:
    store_observations([span("checkout", "POST /checkout", new_trace_id(), time.time_ns(), 5)])
    correlate_pending_observations()
    assert recent_flow_samples(3600) == []


def test_an_empty_window_has_no_sample() -> None:
    assert recent_flow_samples(300) == []
    assert coupling_by_type([]) == []


@pytest.mark.parametrize("callee_first", [False, True])
def test_a_call_pulses_on_the_map_in_the_batch_that_completes_it(callee_first: bool) -> None:
    now = time.time_ns()
    trace = new_trace_id()
    client = span("checkout", "POST /payments", trace, now, 20, kind=3)
    server = span("payment", "POST /payments", trace, now + 1_000, 18, parent=client.span_id, kind=2)
    first, second = (server, client) if callee_first else (client, server)
    store_observations([first])
    correlate_pending_observations()
    assert batch_pulses(list(Observation.objects.values_list("id", flat=True))) == []
    store_observations([second])
    correlate_pending_observations()
    latest = Observation.objects.get(identity=second.identity).id
    assert batch_pulses([latest]) == [{"source": "service:checkout", "target": "service:payment", "count": 1}]
