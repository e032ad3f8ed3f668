"""The flows JSON API, through Django's test client, on flows built by the real correlation."""

from __future__ import annotations

import pytest

from tests.tracing.factories import checkout_flow
from tokens.models import ApiToken

pytestmark = pytest.mark.django_db


def test_a_checkout_becomes_one_flow_with_every_service_connected(admin_client):
    order = checkout_flow("order-1042")
    listing = admin_client.get("/api/flows", {"key": "order-1042"}).json()
    assert len(listing["results"]) == 1 and listing["next"] is None
    summary = listing["results"][0]
    assert summary["type"] == "OrderCreated" and summary["status"] == "running"
    assert summary["services"][0] == "checkout"
    assert set(summary["services"]) == {"checkout", "email", "warehouse", "rewards", "analytics"}

    detail = admin_client.get(f"/api/flows/{summary['id']}").json()
    assert len(detail["nodes"]) == len(order.records)
    ids = {node["name"] + "@" + node["service"]: node["id"] for node in detail["nodes"]}
    edges = {(edge["source"], edge["target"], edge["kind"]) for edge in detail["edges"]}
    created = ids["OrderCreated@checkout"]
    assert (ids["OrderCreated send@checkout"], created, "emitted_by") in edges
    for service, reaction in (("email", "EmailSent"), ("warehouse", "ShipmentPrepared"), ("rewards", "PointsCreated")):
        assert (created, ids[f"{reaction}@{service}"], "caused_by") in edges
        assert (created, ids[f"OrderCreated process@{service}"], "delivers") in edges
        assert (ids["OrderCreated send@checkout"], ids[f"OrderCreated process@{service}"], "follows_from") in edges
    assert detail["missing"] == []


def test_nodes_come_in_causal_order_even_when_a_consumer_clock_runs_behind(admin_client):
    order = checkout_flow()
    skewed = order.observation("EmailSent")
    skewed.start_ns -= 10_000_000_000  # ten seconds before the order existed
    skewed.save(update_fields=["start_ns"])
    nodes = admin_client.get(f"/api/flows/{order.flow().id}").json()["nodes"]
    position = {node["name"]: node["order"] for node in nodes}
    assert position["POST /checkout"] == 0
    assert position["OrderCreated"] < position["EmailSent"]
    assert [node["order"] for node in nodes] == list(range(len(nodes)))


def test_an_event_takes_the_service_of_the_span_that_emitted_it(admin_client):
    order = checkout_flow()
    assert order.observation("OrderCreated").service == "checkout"
    assert order.observation("EmailSent").service == "email"


def test_the_list_filters_by_service_event_type_status_and_type_and_pages_newest_first(admin_client):
    first = checkout_flow(start_ns=1_700_000_000_000_000_000)
    second = checkout_flow(reacting=("email",), silent=(), start_ns=1_700_000_100_000_000_000)
    third = checkout_flow(failing=True, start_ns=1_700_000_200_000_000_000)

    def keys(**params):
        return [flow["key"] for flow in admin_client.get("/api/flows", params).json()["results"]]

    assert keys() == [third.key, second.key, first.key]
    assert keys(service="warehouse") == [third.key, first.key]
    assert keys(event_type="ShipmentPrepared") == [third.key, first.key]
    assert keys(status="failed") == [third.key]
    assert keys(status="failed", service="warehouse") == [third.key]
    assert keys(status="running", service="warehouse") == [first.key]
    assert keys(service="email", event_type="ShipmentPrepared") == [third.key, first.key]
    assert keys(service="email", event_type="ShipmentPrepared", limit=1) == [third.key]
    assert keys(type="OrderCreated") == [third.key, second.key, first.key]
    assert keys(since="2023-11-14T22:15:00Z") == [third.key, second.key]
    assert keys(until="2023-11-14T22:15:00Z") == [first.key]
    assert keys(until="2023-11-14 23:15:00 01:00") == [first.key]  # an offset whose '+' was not escaped

    page = admin_client.get("/api/flows", {"limit": 2}).json()
    assert [flow["key"] for flow in page["results"]] == [third.key, second.key]
    rest = admin_client.get("/api/flows", {"limit": 2, "cursor": page["next"]}).json()
    assert [flow["key"] for flow in rest["results"]] == [first.key] and rest["next"] is None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"status": "sleeping"}, "'status' must be one of"),
        ({"since": "yesterday"}, "'since' must be an ISO 8601"),
        ({"until": "2026-13-45T00:00:00Z"}, "'until' must be an ISO 8601"),
        ({"limit": "0"}, "'limit' must be from 1"),
        ({"limit": "many"}, "'limit' must be a whole number"),
        ({"cursor": "not-a-cursor"}, "'cursor' is not one this server handed out"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "'since' must be earlier"),
        ({"colour": "blue"}, "Unknown parameter(s) colour"),
        ({"service": "email\x00"}, "'service' contains a NUL character"),
        ({"key": "k" * 256}, "'key' is longer than 255 characters"),
    ],
)
def test_a_bad_filter_gets_a_400_that_says_what_to_fix(admin_client, params, message):
    response = admin_client.get("/api/flows", params)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_the_api_needs_a_session_or_a_read_token(client):
    order = checkout_flow()
    assert client.get("/api/flows").status_code == 401
    assert "Missing token" in client.get(f"/api/flows/{order.flow().id}").json()["error"]
    _, ingest = ApiToken.issue("collector", "ingest")
    assert client.get("/api/flows", HTTP_AUTHORIZATION=f"Bearer {ingest}").status_code == 401
    _, read = ApiToken.issue("grafana", "read")
    response = client.get("/api/flows", HTTP_AUTHORIZATION=f"Bearer {read}")
    assert response.status_code == 200 and response.json()["results"][0]["key"] == order.key


def test_an_unknown_flow_is_a_404_in_json(admin_client):
    response = admin_client.get("/api/flows/987654")
    assert response.status_code == 404 and "no flow 987654" in response.json()["error"]
    for bad in ("abc", "99999999999999999999999", "-1", "4.5"):
        response = admin_client.get(f"/api/flows/{bad}")
        assert response.status_code == 404 and "flow ids are whole numbers" in response.json()["error"], bad


def test_the_schema_describes_the_flows_endpoints(client):
    schema = client.get("/api/schema").json()
    assert schema["openapi"].startswith("3.")
    assert {"/api/flows", "/api/flows/{id}"} <= set(schema["paths"])
    assert "FlowDetail" in schema["components"]["schemas"]
