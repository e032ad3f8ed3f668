"""Log-in throttling through a real server: the message in Chromium, and client addresses taken
from X-Forwarded-For only when the proxy sending it is trusted."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from tests.conftest import ADMIN_PASSWORD, TEST_SCREENSHOTS, RunningServer, start_server, stop_server


@pytest.fixture(scope="module")
def throttled_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server of its own (its lock-outs must not reach other tests' log-ins), behind a
    pretend proxy on 127.0.0.1, with 3 failures allowed per account and 4 per address."""
    running = start_server(
        tmp_path_factory.mktemp("throttled"),
        {
            "CHOREOSCOPE_TRUSTED_PROXIES": "127.0.0.1",
            "CHOREOSCOPE_LOGIN_FAILURES": "3",
            "CHOREOSCOPE_LOGIN_ADDRESS_FAILURES": "4",
            "DATABASE_URL": "",
            "REDIS_URL": "",
        },
        worker=False,
    )
    yield running
    stop_server(running)


def post_login(server: RunningServer, username: str, password: str, forwarded_for: str) -> tuple[int, str]:
    """One log-in through the form (with its CSRF cookie), as sent by the proxy for ``forwarded_for``."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    headers = {"X-Forwarded-For": forwarded_for}
    page = opener.open(urllib.request.Request(f"{server.url}/login/", headers=headers), timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token is not None
    form = urllib.parse.urlencode({"username": username, "password": password, "csrfmiddlewaretoken": token[1]}).encode()
    request = urllib.request.Request(f"{server.url}/login/", data=form, headers={**headers, "Referer": f"{server.url}/login/"})
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.mark.browser
def test_the_log_in_page_says_how_long_to_wait_after_too_many_failures(browser, throttled_server):
    context = browser.new_context(base_url=throttled_server.url, viewport={"width": 1000, "height": 700})
    page = context.new_page()
    for _ in range(3):
        page.goto("/login/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", "not-the-password")
        page.click("button[type=submit]")
    page.fill("#id_password", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    alert = page.locator("[role=alert]")
    assert alert.inner_text() == "Too many failed log-ins for this account; try again in 15 minutes."
    assert page.url == f"{throttled_server.url}/login/"
    TEST_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(TEST_SCREENSHOTS / "login-throttled.png"))
    context.close()


def test_an_address_from_a_trusted_proxy_is_throttled_on_its_own(throttled_server):
    for guess in range(3):
        assert post_login(throttled_server, f"guess-{guess}", "password1", "203.0.113.7")[0] == 200
    # The fourth failure locks the address out, whichever account is tried next.
    for username in ("guess-3", "guess-4"):
        status, page = post_login(throttled_server, username, ADMIN_PASSWORD, "203.0.113.7")
        assert status == 429 and "Too many failed log-ins from your network address" in page
    # Another client behind the same proxy is not locked out with it.
    assert post_login(throttled_server, "guess-6", "password1", "203.0.113.8")[0] == 200
