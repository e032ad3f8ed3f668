"""The live pages and ``GET /api/topology`` through Django's test client."""

import pytest
from django.contrib.auth import get_user_model

from tests.live.sockets import event, ingest

pytestmark = pytest.mark.django_db


@pytest.fixture
def viewer(client):
    client.force_login(get_user_model().objects.create_user("viewer"))
    return client


def test_the_live_page_needs_a_login(client):
    assert client.get("/live/").status_code == 302
    assert client.get("/services/").status_code == 302


def test_the_live_page_offers_filters_prefilled_from_the_address_and_known_names(viewer):
    ingest(event("OrderCreated", "checkout", "order-1"))
    page = viewer.get("/live/?service=checkout&status=error")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="lf-service" name="service" list="lf-services" value="checkout"' in html
    assert '<option value="error" selected>' in html
    assert '<option value="OrderCreated">' in html
    assert page.context["config"]["filters"] == {"service": "checkout", "type": "", "key": "", "status": "error"}


def test_the_live_page_explains_a_status_it_does_not_know(viewer):
    page = viewer.get("/live/?status=sideways")
    assert page.status_code == 400
    assert "filter &#x27;status&#x27; must be one of" in page.content.decode()


def test_the_services_page_embeds_the_map_of_the_chosen_window(viewer):
    ingest(event("OrderCreated", "checkout", "order-1", event_id="e1"), event("EmailSent", "email", "order-1", causation="e1"))
    page = viewer.get("/services/?window=1h")
    assert page.status_code == 200
    assert page.context["topology"]["window"] == "1h"
    assert {node["name"] for node in page.context["topology"]["nodes"]} == {"checkout", "email", "OrderCreated", "EmailSent"}
    assert viewer.get("/services/?window=3d").status_code == 400


def test_the_overview_shows_a_compact_map_once_there_is_data(viewer):
    ingest(event("OrderCreated", "checkout", "order-1"))
    html = viewer.get("/").content.decode()
    assert "data-service-map" in html and "service-map compact" in html


def test_api_topology_answers_the_contract_shape(viewer):
    ingest(event("OrderCreated", "checkout", "order-1", event_id="e1"), event("EmailSent", "email", "order-1", causation="e1"))
    body = viewer.get("/api/topology?window=5m").json()
    assert body["window"] == "5m"
    assert {"id": "type:OrderCreated", "kind": "event_type", "name": "OrderCreated"} in body["nodes"]
    reaction = next(e for e in body["edges"] if e["source"] == "type:OrderCreated")
    assert reaction["target"] == "service:email"
    assert set(reaction) == {"source", "target", "style", "count", "rate", "p50_ms", "p95_ms", "error_share"}
    assert reaction["style"] == "event"
    assert reaction["count"] == 1
    assert body["lag"] == [] and body["lag_unavailable"] == []  # no bus is watched here


def test_api_topology_refuses_a_bad_window_or_parameter_with_a_message(viewer):
    response = viewer.get("/api/topology?window=forever")
    assert response.status_code == 400
    assert "5m, 15m, 1h, 24h" in response.json()["error"]
    assert viewer.get("/api/topology?windw=5m").status_code == 400


def test_api_topology_needs_a_session_or_a_read_token(client):
    assert client.get("/api/topology").status_code == 401


def test_api_topology_is_described_in_the_schema(client):
    schema = client.get("/api/schema").json()
    assert "/api/topology" in schema["paths"]
    assert "Topology" in schema["components"]["schemas"]
