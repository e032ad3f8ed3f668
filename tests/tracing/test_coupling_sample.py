"""Reading the coupling page's sample: attributes decide what span kinds leave open, and the map
classifies the same way."""

from __future__ import annotations

import time

import pytest

from tests.tracing.factories import new_trace_id, span
from tracing.coupling import coupling_by_type, entry_styles, recent_flow_samples
from tracing.services import correlate_pending_observations
from tracing.store import store_observations
from tracing.topology import observed_topology

pytestmark = pytest.mark.django_db


def test_spans_of_unspecified_kind_are_classified_by_their_attributes() -> None:
    now = time.time_ns()
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


def test_an_empty_window_has_no_sample() -> None:
    assert recent_flow_samples(300) == []
    assert coupling_by_type([]) == []
