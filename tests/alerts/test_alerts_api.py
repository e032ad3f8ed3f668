"""GET /api/alerts, GET /api/alerts/groups, POST /api/alerts/<id>/ack, GET /api/flow-models."""

from __future__ import annotations

import pytest
from django.test import Client

from alerts.models import DeclaredFlow
from alerts.services import scan_stuck_flows
from tokens.models import ApiToken

from .test_stuck_flows import NOW, learned_history, order_without_rewards

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def small(settings):  # type: ignore[no-untyped-def]
    settings.FLOWS_FILE = None
    settings.MODEL_MIN_FLOWS = 5
    settings.QUIET_SECONDS = 120


def three_alerts() -> list[int]:
    DeclaredFlow.objects.create(flow_type="OrderCreated").expectations.create(
        after="OrderCreated", steps=["PointsCreated"], within_seconds=5
    )
    for _ in range(3):
        order_without_rewards()
    return scan_stuck_flows(NOW)


def test_alerts_are_listed_newest_first_with_what_is_missing(admin_client):
    ids = three_alerts()
    body = admin_client.get("/api/alerts").json()
    assert [a["id"] for a in body["results"]] == sorted(ids, reverse=True)
    assert body["next"] is None
    first = body["results"][0]
    assert (first["state"], first["step"], first["after"], first["missing"][0]["step"]) == (
        "open",
        "PointsCreated",
        "OrderCreated",
        "PointsCreated",
    )


def test_alerts_page_through_a_cursor(admin_client):
    ids = three_alerts()
    first = admin_client.get("/api/alerts?limit=2").json()
    second = admin_client.get(f"/api/alerts?limit=2&cursor={first['next']}").json()
    assert [a["id"] for a in first["results"] + second["results"]] == sorted(ids, reverse=True)
    assert second["next"] is None


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("state=closed", "'state' must be one of open, acknowledged, resolved"),
        ("limit=0", "'limit' must be from 1 to 500"),
        ("cursor=nonsense", "'cursor' is not one this server handed out"),
        ("colour=red", "Unknown parameter(s) colour"),
    ],
)
def test_a_bad_query_gets_a_400_that_says_what_to_fix(admin_client, query, message):
    response = admin_client.get(f"/api/alerts?{query}")
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_acknowledging_moves_an_open_alert_out_of_the_open_list(admin_client):
    alert_id = three_alerts()[0]
    response = admin_client.post(f"/api/alerts/{alert_id}/ack")
    assert response.status_code == 200
    assert response.json()["state"] == "acknowledged"
    assert admin_client.post(f"/api/alerts/{alert_id}/ack").status_code == 200  # twice is harmless
    assert alert_id not in [a["id"] for a in admin_client.get("/api/alerts?state=open").json()["results"]]
    assert [a["id"] for a in admin_client.get("/api/alerts?state=acknowledged").json()["results"]] == [alert_id]


def test_acknowledging_an_unknown_alert_is_a_404_and_a_resolved_one_a_409(admin_client):
    assert admin_client.post("/api/alerts/999999/ack").status_code == 404
    alert_id = three_alerts()[0]
    from alerts.models import Alert

    Alert.objects.filter(id=alert_id).update(state="resolved")
    response = admin_client.post(f"/api/alerts/{alert_id}/ack")
    assert response.status_code == 409
    assert "already resolved" in response.json()["error"]


def test_a_session_must_send_its_csrf_token_but_a_bearer_token_need_not(admin_user):
    alert_id = three_alerts()[0]
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_user)
    assert browser.post(f"/api/alerts/{alert_id}/ack").status_code == 403
    _, raw = ApiToken.issue("ops", "read")
    response = Client(enforce_csrf_checks=True).post(f"/api/alerts/{alert_id}/ack", headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 200


def test_without_a_session_or_token_the_api_answers_401(client):
    assert client.get("/api/alerts").status_code == 401
    assert client.post("/api/alerts/1/ack").status_code == 401


def test_incidents_group_alerts_by_flow_type_and_missing_step_with_counts(admin_client):
    three_alerts()
    [group] = admin_client.get("/api/alerts/groups").json()["results"]
    assert (group["flow_type"], group["step"], group["count"], group["open"]) == ("OrderCreated", "PointsCreated", 3, 3)


def test_learned_models_show_each_transition_with_its_share_latency_and_deadline(admin_client):
    learned_history()
    [model] = admin_client.get("/api/flow-models").json()["results"]
    assert model["flow_type"] == "OrderCreated" and model["flow_count"] == 6
    points = next(t for t in model["graph"]["transitions"] if t["target"]["name"] == "PointsCreated")
    assert (points["share"], points["expected"], points["deadline_seconds"]) == (1.0, True, 30.0)
    assert {"p50", "p95", "p99", "flows"} <= set(points)


def test_the_pages_render(admin_client):
    three_alerts()
    learned_history()
    alerts_page = admin_client.get("/alerts/").content.decode()
    assert "PointsCreated" in alerts_page and 'id="alerts-data"' in alerts_page
    assert "model-graph" in admin_client.get("/alerts/models/").content.decode()


def test_the_openapi_document_describes_the_alerts_api(client):
    document = client.get("/api/schema").json()
    assert {"/api/alerts", "/api/alerts/{id}/ack", "/api/flow-models"} <= set(document["paths"])
    assert "MissingStep" in document["components"]["schemas"]
