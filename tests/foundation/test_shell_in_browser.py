import json
import urllib.request

import pytest

from tests.conftest import TEST_SCREENSHOTS

pytestmark = pytest.mark.browser


def test_a_newcomer_logs_in_and_sees_the_dashboard_shell(page, server):
    assert page.locator("nav.mainnav a", has_text="Overview").get_attribute("aria-current") == "page"
    nav = page.locator("nav.mainnav a").all_inner_texts()
    assert nav == ["Overview", "Flows", "Live", "Alerts", "Services"]
    assert page.locator("h1").inner_text() == "Overview"
    TEST_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(TEST_SCREENSHOTS / "overview.png"), full_page=True)


def test_a_wrong_password_is_refused_with_a_message(browser, server):
    context = browser.new_context(base_url=server.url)
    page = context.new_page()
    page.goto("/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "wrong")
    page.click("button[type=submit]")
    assert "didn't match" in page.locator("[role=alert]").inner_text()
    context.close()


def test_the_server_also_listens_on_the_otlp_port(server):
    with urllib.request.urlopen(f"{server.otlp_url}/healthz") as response:
        assert json.load(response)["status"] == "ok"
