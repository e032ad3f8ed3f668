"""``GET /api/correlation-health`` through Django's test client, on observations stored and
correlated by the real pipeline; every answer is checked against the OpenAPI document."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.api.test_contract import response_validator
from tests.tracing.factories import MS, checkout_flow, event, new_trace_id, span
from tokens.models import ApiToken
from tracing.records import SPAN_KIND_CONSUMER
from tracing.services import correlate_pending_observations
from tracing.store import store_observations

pytestmark = pytest.mark.django_db
S = 1000 * MS


def matches_schema(client, answer: dict[str, Any], status: int = 200) -> None:
    document = client.get("/api/schema").json()
    validator = response_validator(document, "get", "/api/correlation-health", status)
    assert [error.message for error in validator.iter_errors(answer)] == []


def row(answer: dict[str, Any], kind: str, service: str) -> dict[str, Any]:
    [found] = [r for r in answer["findings"] if r["kind"] == kind and r["service"] == service]
    return found


def store(*records) -> None:
    store_observations(list(records))
    correlate_pending_observations()


@pytest.fixture
def troubled(settings) -> dict[str, Any]:
    """Six ordinary orders; one whose e-mail host's clock runs 2 s behind; a consumer that keeps
    no context; an event with neither traceparent, causation nor key; one key used for an hour."""
    settings.FLOWS_FILE = None
    now = time.time_ns()
    orders = [checkout_flow(start_ns=now - (60 + i) * S) for i in range(6)]
    skewed = checkout_flow(start_ns=now - 30 * S)
    email = skewed.observation("email: OrderCreated process")
    email.start_ns -= 2 * S
    email.save(update_fields=["start_ns"])
    lost = span("ledger", "process payments", new_trace_id(), now - 20 * S, kind=SPAN_KIND_CONSUMER)
    lost.attributes["messaging.operation.type"] = "process"
    store(lost, event("/email", "EmailSent", now - 10 * S))  # a reaction type, sent bare
    reused = [
        event("/checkout", "OrderCreated", now - minutes * 60 * S, correlation_id="order-test") for minutes in range(50, 0, -5)
    ]
    store(*reused)
    return {"orders": orders, "skewed": skewed}


def test_it_names_per_service_what_is_missing_with_an_example_flow(admin_client, troubled):
    answer = admin_client.get("/api/correlation-health").json()
    matches_schema(admin_client, answer)
    assert answer["window"] == "1h" and answer["service"] is None and not answer["sampled"]

    behind = row(answer, "clock_behind", "email")
    assert (behind["detail"], behind["severity"], behind["example_flow_id"]) == (
        "checkout",
        "check",
        troubled["skewed"].flow().id,
    )
    assert behind["example_flow_url"] == f"/flows/{troubled['skewed'].flow().id}/"
    [skew] = [r for r in answer["clock_skew"] if (r["cause_service"], r["effect_service"]) == ("checkout", "email")]
    assert skew["behind"] == 1 and 1900 <= skew["median_ms"] <= skew["max_ms"] <= 2000

    nothing = row(answer, "consumer_points_at_nothing", "ledger")
    assert (nothing["affected"], nothing["out_of"], nothing["severity"], nothing["detail"]) == (1, 1, "fix", "process payments")
    assert admin_client.get(nothing["example_flow_url"]).status_code == 200

    for kind in ("event_without_traceparent", "event_without_causation", "event_without_key"):
        assert row(answer, kind, "/email")["affected"] == 1
    assert row(answer, "single_observation_flow", "/email")["example_flow_id"] is not None
    assert row(answer, "unkeyed_observation", "ledger")["affected"] == 1

    [reused] = answer["reused_keys"]
    usual = len(troubled["orders"][0].records)
    assert (reused["key"], reused["observations"], reused["usual_observations"]) == ("order-test", 10, usual)
    assert reused["span_seconds"] == 45 * 60 and reused["usual_span_seconds"] < 1
    assert row(answer, "reused_key", "/checkout")["detail"] == "order-test"

    coverage = {r["service"]: r for r in answer["coverage"]}
    assert coverage["email"]["consumer_share"] == coverage["email"]["causation_share"] == 1.0
    assert coverage["ledger"]["consumer_share"] == 0.0 and coverage["ledger"]["traceparent_share"] is None
    severities = [r["severity"] for r in answer["findings"]]
    assert severities == sorted(severities, key=["fix", "check", "info"].index)


def test_a_service_narrows_the_report_to_its_rows(admin_client, troubled):
    answer = admin_client.get("/api/correlation-health", {"service": "email", "window": "24h"}).json()
    matches_schema(admin_client, answer)
    assert answer["service"] == "email" and answer["window"] == "24h"
    assert {r["service"] for r in answer["findings"]} == {"email"}
    assert [r["service"] for r in answer["coverage"]] == ["email"]
    assert all("email" in (r["cause_service"], r["effect_service"]) for r in answer["clock_skew"])


def test_observations_received_before_the_window_are_left_out(admin_client, troubled):
    from datetime import timedelta

    from django.utils import timezone

    from tracing.models import Observation

    Observation.objects.update(received_at=timezone.now() - timedelta(minutes=10))
    assert admin_client.get("/api/correlation-health", {"window": "15m"}).json()["observations_read"] > 0
    empty = admin_client.get("/api/correlation-health", {"window": "5m"}).json()
    assert (empty["observations_read"], empty["findings"], empty["coverage"]) == (0, [], [])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"window": "forever"}, "window must be one of 5m, 15m, 1h, 24h"),
        ({"windows": "1h"}, "Unknown parameter(s) windows; use service, window."),
        ({"service": "x" * 256}, "'service' is longer than 255 characters."),
        ({"service": "a\x00b"}, "'service' contains a NUL character"),
    ],
)
def test_a_bad_parameter_is_a_400_that_says_how_to_fix_it(admin_client, params, message):
    response = admin_client.get("/api/correlation-health", params)
    assert response.status_code == 400
    assert message in response.json()["error"]
    matches_schema(admin_client, response.json(), 400)


def test_it_needs_a_session_or_a_read_token(client, db):
    assert client.get("/api/correlation-health").status_code == 401
    _, secret = ApiToken.issue("reader", ApiToken.Scope.READ)
    answer = client.get("/api/correlation-health", headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 200 and answer.json()["findings"] == []
