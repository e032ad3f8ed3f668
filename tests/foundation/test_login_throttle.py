"""Log-in throttling on the site's and the admin's log-in pages (Django's test client).

Each test uses user names and client addresses of its own, so the throttle's records (kept in
the cache, which outlives a test) never leak from one test into another."""

from __future__ import annotations

import time
import uuid

import pytest
from django.contrib.auth import get_user_model

from dashboard.login_throttle import lockout_seconds, wait_in_words

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-and-proper-password"
SITE, ADMIN = "/login/", "/admin/login/"


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.LOGIN_FAILURES_PER_ACCOUNT = 5
    settings.LOGIN_FAILURES_PER_ADDRESS = 20
    settings.LOGIN_WINDOW_SECONDS = 900
    settings.LOGIN_LOCKOUT_SECONDS = 900


def a_user(staff: bool = False) -> str:
    username = f"user-{uuid.uuid4().hex[:10]}"
    get_user_model().objects.create_user(username, password=PASSWORD, is_staff=staff)
    return username


def an_address() -> str:
    return "10.{}.{}.{}".format(*uuid.uuid4().bytes[:3])


def log_in(client, page: str, username: str, password: str, address: str):
    return client.post(page, {"username": username, "password": password}, REMOTE_ADDR=address)


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.parametrize("page", [SITE, ADMIN])
def test_fifty_wrong_passwords_then_the_right_one_is_refused_with_the_time_to_wait(client, page):
    username, address = a_user(staff=True), an_address()
    answers = [log_in(client, page, username, "wrong", address) for _ in range(50)]
    assert [answer.status_code for answer in answers[:4]] == [200] * 4
    assert all(answer.status_code == 429 for answer in answers[4:])
    response = log_in(client, page, username, PASSWORD, address)
    assert response.status_code == 429 and 850 <= int(response["Retry-After"]) <= 900
    assert "Too many failed log-ins for this account; try again in 15 minutes." in response.content.decode()
    assert not logged_in(client)


def test_the_first_failures_say_the_password_did_not_match(client):
    response = log_in(client, SITE, a_user(), "wrong", an_address())
    assert response.status_code == 200 and "didn&#x27;t match" in response.content.decode()


def test_a_locked_account_is_refused_from_any_address(client):
    username = a_user()
    for _ in range(5):
        log_in(client, SITE, username, "wrong", an_address())
    response = log_in(client, SITE, username, PASSWORD, an_address())
    assert response.status_code == 429 and "for this account" in response.content.decode()
    assert not logged_in(client)


def test_another_account_from_the_same_address_still_logs_in(client):
    address, locked, other = an_address(), a_user(), a_user()
    for _ in range(5):
        log_in(client, SITE, locked, "wrong", address)
    assert log_in(client, SITE, other, PASSWORD, address).status_code == 302
    assert logged_in(client)


def test_an_address_that_tries_many_accounts_is_locked_out_but_other_addresses_are_not(client, settings):
    settings.LOGIN_FAILURES_PER_ADDRESS = 3
    sprayer, username = an_address(), a_user()
    for _ in range(3):
        log_in(client, SITE, f"guess-{uuid.uuid4().hex[:6]}", "password1", sprayer)
    response = log_in(client, SITE, username, PASSWORD, sprayer)
    assert response.status_code == 429
    assert "Too many failed log-ins from your network address; try again in 15 minutes." in response.content.decode()
    assert log_in(client, SITE, username, PASSWORD, an_address()).status_code == 302


def test_an_account_that_does_not_exist_gets_the_same_answers(client):
    address, missing = an_address(), f"nobody-{uuid.uuid4().hex[:6]}"
    existing = a_user()
    for username in (missing, existing):
        answers = [log_in(client, SITE, username, "wrong", address) for _ in range(6)]
        assert [answer.status_code for answer in answers] == [200] * 4 + [429] * 2
        assert "for this account; try again in 15 minutes" in answers[-1].content.decode()


def test_a_successful_log_in_clears_the_account_failures(client):
    username, address = a_user(), an_address()
    for _ in range(2):
        for _ in range(4):
            assert log_in(client, SITE, username, "wrong", address).status_code == 200
        assert log_in(client, SITE, username, PASSWORD, address).status_code == 302
        client.post("/logout/")


def test_the_right_password_logs_in_once_the_lock_out_is_over(client, settings):
    settings.LOGIN_LOCKOUT_SECONDS = 1
    username, address = a_user(), an_address()
    for _ in range(5):
        log_in(client, SITE, username, "wrong", address)
    assert log_in(client, SITE, username, PASSWORD, address).status_code == 429
    time.sleep(1.2)
    assert log_in(client, SITE, username, PASSWORD, address).status_code == 302
    assert logged_in(client)


def test_a_lock_out_that_recurs_lasts_twice_as_long(client, settings):
    settings.LOGIN_LOCKOUT_SECONDS = 1
    username, address = a_user(), an_address()
    for _ in range(5):
        log_in(client, SITE, username, "wrong", address)
    time.sleep(1.2)
    answers = [log_in(client, SITE, username, "wrong", address) for _ in range(5)]
    assert answers[-1].status_code == 429 and answers[-1]["Retry-After"] == "2"


def test_the_admin_log_in_page_shows_the_message(client):
    username, address = a_user(staff=True), an_address()
    for _ in range(5):
        log_in(client, ADMIN, username, "wrong", address)
    response = log_in(client, ADMIN, username, PASSWORD, address)
    assert response.status_code == 429 and 'class="errornote"' in response.content.decode()
    assert "Too many failed log-ins for this account" in response.content.decode()


def test_a_form_without_a_password_is_not_counted_and_says_what_is_missing(client):
    username, address = a_user(), an_address()
    for _ in range(10):
        response = client.post(SITE, {"username": username}, REMOTE_ADDR=address)
        assert response.status_code == 200 and "Enter both your user name and your password." in response.content.decode()
    assert log_in(client, SITE, username, PASSWORD, address).status_code == 302


def test_lockouts_double_up_to_a_day_and_waits_are_rounded_up_to_minutes():
    assert [lockout_seconds(900, strikes) for strikes in (1, 2, 3)] == [900, 1800, 3600]
    assert lockout_seconds(900, 40) == 86400
    assert lockout_seconds(200_000, 3) == 200_000
    assert [wait_in_words(s) for s in (1, 60, 61, 900)] == ["1 minute", "1 minute", "2 minutes", "15 minutes"]


def test_failed_refused_and_locked_out_log_ins_are_counted_on_metrics(client):
    from choreoscope.metrics import REGISTRY

    def count(outcome: str) -> float:
        return REGISTRY.get_sample_value("choreoscope_login_attempts_total", {"outcome": outcome}) or 0.0

    before = {outcome: count(outcome) for outcome in ("failed", "refused", "lockout")}
    username, address = a_user(), an_address()
    for _ in range(7):
        log_in(client, SITE, username, "wrong", address)
    after = {outcome: count(outcome) - before[outcome] for outcome in before}
    assert after == {"failed": 5, "refused": 2, "lockout": 1}
