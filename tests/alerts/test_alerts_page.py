"""The alerts page in Chromium: a new alert arrives live over /ws/alerts/ and is acknowledged."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from tests.http import post_cloudevents

pytestmark = [pytest.mark.browser, pytest.mark.slow]
FLOW_TYPE = "AlertsPageTestStarted"  # its own flow type, so no other test's flows are affected


def declare_expectation(server) -> None:  # type: ignore[no-untyped-def]
    create = (
        f"f, _ = DeclaredFlow.objects.get_or_create(flow_type={FLOW_TYPE!r}); "
        "f.expectations.get_or_create(after='AlertsPageTestStarted', "
        "defaults={'steps': ['AlertsPageTestDone'], 'within_seconds': 1})"
    )
    server.manage("shell", "-c", f"from alerts.models import DeclaredFlow; {create}")


def send_start_event(server, key: str) -> None:  # type: ignore[no-untyped-def]
    event = {
        "specversion": "1.0",
        "id": uuid.uuid4().hex,
        "source": "/alerts-page-test",
        "type": FLOW_TYPE,
        "time": datetime.now(UTC).isoformat(),
        "correlationid": key,
        "data": {},
    }
    assert post_cloudevents(server.url, event) in (200, 202)


def test_a_new_alert_appears_live_and_can_be_acknowledged(page, server):
    declare_expectation(server)
    page.goto("/alerts/")
    page.wait_for_selector("#alerts-live[data-state=live]")
    key = f"alerts-page-{uuid.uuid4().hex[:8]}"
    send_start_event(server, key)
    row = page.locator("#alert-rows tr", has_text=key)
    row.wait_for(timeout=40_000)  # the scan runs every 10 s by default
    assert "AlertsPageTestDone" in row.inner_text()
    assert page.locator("#incident-rows tr", has_text="AlertsPageTestDone").count() == 1
    row.get_by_role("button", name="Acknowledge").click()
    page.locator("#alert-rows tr", has_text=key).locator(".badge-alert-acknowledged").wait_for(timeout=10_000)
    alerts = page.evaluate("() => fetch('/api/alerts?state=acknowledged').then(r => r.json())")
    assert key in [alert["flow_key"] for alert in alerts["results"]]
