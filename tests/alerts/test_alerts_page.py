"""The alerts page in Chromium: a new alert arrives live over /ws/alerts/ and is acknowledged; a
logged-out tab stops its socket instead of reconnecting forever."""

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


# Counts the sockets the page opens, and keeps them so that a test can drop one.
COUNT_SOCKETS = """
window.openedSockets = [];
window.WebSocket = class extends window.WebSocket {
  constructor(...args) {
    super(...args);
    window.openedSockets.push(this);
  }
};
"""


def open_alerts_page_counting_sockets(page):  # type: ignore[no-untyped-def]
    page.add_init_script(COUNT_SOCKETS)
    page.goto("/alerts/")
    page.wait_for_selector("#alerts-live[data-state=live]")
    assert page.evaluate("window.openedSockets.length") == 1


def test_logging_out_in_another_tab_closes_the_alerts_tab_for_good(page, server):
    open_alerts_page_counting_sockets(page)
    other_tab = page.context.new_page()
    other_tab.goto("/")
    other_tab.locator("form.logout button").click()
    other_tab.wait_for_url("**/login/")
    status = page.locator("#alerts-live[data-state=closed]")
    status.wait_for(timeout=5_000)
    assert "session has ended" in (status.get_attribute("title") or "")
    page.wait_for_timeout(3_000)
    assert page.evaluate("window.openedSockets.length") == 1, "a logged-out tab does not reconnect"


def test_an_alerts_tab_whose_session_is_gone_stops_after_one_reconnect(page, server):
    open_alerts_page_counting_sockets(page)
    page.context.clear_cookies()  # the session expired, or was deleted
    page.evaluate("window.openedSockets[0].close()")  # and the connection dropped
    page.locator("#alerts-live[data-state=closed]").wait_for(timeout=5_000)
    page.wait_for_timeout(4_000)
    assert page.evaluate("window.openedSockets.length") == 2, "one reconnect, refused with 4401, and no more"
