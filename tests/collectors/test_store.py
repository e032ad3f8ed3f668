"""The bulk writer: new rows and duplicates, in one transaction, on either database."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from collectors import otlp
from tests.collectors.payloads import json_request, json_span
from tracing.models import Observation
from tracing.store import store_observations

pytestmark = pytest.mark.django_db


def spans(count: int, prefix: str = "span") -> list:
    return otlp.decode_json(json_request([json_span(name=f"{prefix} {n}") for n in range(count)])).records


def test_it_returns_the_ids_of_new_rows_and_counts_the_rest_as_duplicates():
    first, second = spans(3, "first"), spans(2, "second")
    result = store_observations(first)
    assert result.inserted == 3 and result.duplicates == 0
    assert sorted(result.inserted_ids) == sorted(Observation.objects.values_list("id", flat=True))
    again = store_observations(first[:1] + second + second[:1])
    assert again.inserted == 2 and again.duplicates == 2
    assert set(again.inserted_ids) == set(
        Observation.objects.filter(name__in=[r.name for r in second]).values_list("id", flat=True)
    )


def test_a_request_is_a_handful_of_statements_whatever_its_size():
    with CaptureQueriesContext(connection) as small:
        store_observations(spans(2))
    with CaptureQueriesContext(connection) as large:
        store_observations(spans(300))
    assert len(large.captured_queries) == len(small.captured_queries) <= 6
    assert Observation.objects.count() == 302


def test_commits_close_together_share_one_task_publication_sent_after_the_last_of_them(monkeypatch):
    import threading

    from choreoscope import dispatch
    from tracing import store

    published = threading.Event()
    calls: list[int] = []

    def publish(name: str) -> None:
        assert name == "tracing.tasks.correlate_pending"
        calls.append(1)
        published.set()

    broker = dispatch.Dispatcher(in_process=lambda: False, publish=publish, run=print, publish_delay=0.2)
    monkeypatch.setattr(dispatch, "_dispatcher", broker)
    for _ in range(5):
        store.enqueue_correlation()
    assert published.wait(5) and calls == [1]
    published.clear()
    store.enqueue_correlation()
    assert published.wait(5) and calls == [1, 1]
