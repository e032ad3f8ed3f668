"""Reads for the pages and the JSON API."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count

from tracing.models import Flow, Observation


@dataclass(frozen=True)
class OverviewSummary:
    has_data: bool
    flows_by_status: dict[str, int]
    recent_flows: list[Flow]


def overview_summary() -> OverviewSummary:
    has_data = Observation.objects.exists()
    by_status = dict(Flow.objects.filter(merged_into__isnull=True).values_list("status").annotate(n=Count("id")))
    recent = list(Flow.objects.filter(merged_into__isnull=True).order_by("-started_at", "-id")[:8]) if has_data else []
    return OverviewSummary(
        has_data=has_data,
        flows_by_status={status: by_status.get(status, 0) for status in Flow.Status.values},
        recent_flows=recent,
    )
