"""Notification delivery: signed webhooks with retries and a log, e-mail, the test button, and
detection that does not wait for any of it."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from alerts.delivery import backoff_seconds, deliver_due_notifications
from alerts.models import Alert, DeclaredFlow, Delivery, NotificationChannel
from alerts.notifiers.webhook import signature
from alerts.services import scan_stuck_flows

from .test_end_to_end import WebhookReceiver
from .test_stuck_flows import NOW, order_without_rewards

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver():  # type: ignore[no-untyped-def]
    hook = WebhookReceiver()
    yield hook
    hook.close()


@pytest.fixture(autouse=True)
def declared(settings):  # type: ignore[no-untyped-def]
    settings.FLOWS_FILE = None
    settings.WEBHOOK_SECRET = "s3cret"
    DeclaredFlow.objects.create(flow_type="OrderCreated").expectations.create(
        after="OrderCreated", steps=["rewards/PointsCreated"], within_seconds=5
    )


def test_the_signature_is_the_hmac_sha256_of_the_exact_body():
    body = b'{"event":"alert.opened"}'
    assert signature("s3cret", body) == "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()


def test_backoff_grows_threefold_from_ten_seconds():
    assert [backoff_seconds(n) for n in range(1, 6)] == [10, 30, 90, 270, 810]


def test_a_webhook_carries_the_alert_as_signed_json(receiver):
    NotificationChannel.objects.create(name="hook", kind="webhook", target=receiver.url)
    order_without_rewards()
    scan_stuck_flows(NOW)
    assert deliver_due_notifications() == 1
    [(headers, body)] = receiver.received
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Choreoscope-Signature"] == signature("s3cret", body)
    payload = json.loads(body)
    assert payload["event"] == "alert.opened"
    assert (payload["alert"]["step"], payload["alert"]["service"]) == ("PointsCreated", "rewards")
    assert headers["X-Choreoscope-Delivery"] == str(Delivery.objects.get().id)


def test_an_unreachable_webhook_does_not_stop_detection_and_is_retried_with_backoff():
    channel = NotificationChannel.objects.create(name="down", kind="webhook", target="http://127.0.0.1:9/hook")
    order_without_rewards()
    assert len(scan_stuck_flows(NOW)) == 1
    assert Alert.objects.filter(state="open").count() == 1
    before = timezone.now()
    assert deliver_due_notifications() == 1
    delivery = channel.deliveries.get()
    assert (delivery.state, delivery.attempts) == ("pending", 1)
    assert delivery.next_attempt_at >= before + timedelta(seconds=10)
    assert delivery.log[0]["ok"] is False and "unreachable" in delivery.log[0]["detail"]
    assert deliver_due_notifications() == 0  # not due yet
    assert deliver_due_notifications(now=delivery.next_attempt_at + timedelta(seconds=1)) == 1
    delivery.refresh_from_db()
    assert (delivery.attempts, len(delivery.log), delivery.next_attempt_at > before + timedelta(seconds=30)) == (2, 2, True)


def test_a_delivery_that_keeps_failing_gives_up_after_six_attempts():
    channel = NotificationChannel.objects.create(name="down", kind="webhook", target="http://127.0.0.1:9/hook")
    order_without_rewards()
    scan_stuck_flows(NOW)
    later = timezone.now()
    for _ in range(8):
        later += timedelta(hours=1)
        deliver_due_notifications(now=later)
    delivery = channel.deliveries.get()
    assert (delivery.state, delivery.attempts, len(delivery.log)) == ("failed", 6, 6)


def test_an_email_names_the_missing_step_and_whose_move_it_is(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    NotificationChannel.objects.create(name="ops", kind="email", target="ops@example.com, oncall@example.com")
    order = order_without_rewards()
    scan_stuck_flows(NOW)
    deliver_due_notifications()
    [message] = mail.outbox
    assert message.to == ["ops@example.com", "oncall@example.com"]
    assert message.subject == f"[stuck] OrderCreated {order.key}: PointsCreated by rewards expected after OrderCreated"
    assert "- missing PointsCreated (rewards) after OrderCreated" in message.body


def test_the_test_button_sends_one_logged_test_notification(admin_client, receiver):
    channel = NotificationChannel.objects.create(name="hook", kind="webhook", target=receiver.url)
    response = admin_client.post(f"/alerts/channels/{channel.id}/test", follow=True)
    assert response.status_code == 200
    assert "Test notification to hook delivered (HTTP 200)" in response.content.decode()
    assert receiver.events() == ["alert.test"]
    assert channel.deliveries.get().state == "delivered"


def test_the_test_button_reports_a_failure_in_words(admin_client):
    channel = NotificationChannel.objects.create(name="bad", kind="webhook", target="ftp://example.com")
    response = admin_client.post(f"/alerts/channels/{channel.id}/test", follow=True)
    assert "Test notification to bad failed: not an http(s) URL" in response.content.decode()
    assert channel.deliveries.get().state == "failed"
