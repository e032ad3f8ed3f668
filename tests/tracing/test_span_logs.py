"""Plain log records kept on their spans: bounded per span, stored once, removed by retention."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tracing.models import SpanLog
from tracing.records import SpanLogRecord
from tracing.services import prune_expired_data
from tracing.store import span_log_room, store_span_logs

TRACE, SPAN, OTHER = "a" * 32, "b" * 16, "c" * 16


def line(number: int, span: str = SPAN, body: str = "") -> SpanLogRecord:
    return SpanLogRecord(TRACE, span, 1_000 + number, "payments", "INFO", body or f"line {number}", f"digest-{span}-{number}")


def test_room_goes_to_the_earliest_records_of_each_span_up_to_the_limit():
    records = [line(3), line(1), line(2), line(1, OTHER), line(1)]  # the last is line 1 again
    kept = span_log_room(records, stored={(TRACE, OTHER): 2}, limit=2)
    assert [(record.span_id, record.time_ns) for record in kept] == [(SPAN, 1_001), (SPAN, 1_002)]


@pytest.mark.django_db
def test_a_span_keeps_at_most_the_configured_number_of_log_records_across_exports(settings):
    settings.SPAN_LOGS_PER_SPAN = 3
    store_span_logs([line(1), line(2)])
    store_span_logs([line(2), line(3), line(4), line(5)])  # line 2 again, then more than the room left
    assert list(SpanLog.objects.order_by("time_ns").values_list("body", flat=True)) == ["line 1", "line 2", "line 3"]


@pytest.mark.django_db
def test_text_the_database_cannot_hold_is_replaced_not_refused():
    store_span_logs([SpanLogRecord(TRACE, SPAN, 1, "pay\x00ments", "WARN", "nul \x00 and \ud800", "d1", {"k\x00": "\ud800"})])
    row = SpanLog.objects.get()
    assert (row.service, row.body, row.attributes) == ("pay\ufffdments", "nul \ufffd and \ufffd", {"k\ufffd": "\ufffd"})


@pytest.mark.django_db
def test_zero_keeps_none_and_a_long_body_is_cut(settings):
    settings.SPAN_LOGS_PER_SPAN = 0
    assert store_span_logs([line(1)]) == 0
    settings.SPAN_LOGS_PER_SPAN = 5
    store_span_logs([line(1, body="x" * 10_000)])
    assert len(SpanLog.objects.get().body) == 4096


@pytest.mark.django_db
def test_retention_removes_log_records_received_before_the_cutoff(settings):
    settings.RETENTION_DAYS = 7
    store_span_logs([line(1), line(2)])
    SpanLog.objects.filter(time_ns=1_001).update(received_at=timezone.now() - timedelta(days=8))
    prune_expired_data()
    assert list(SpanLog.objects.values_list("body", flat=True)) == ["line 2"]
