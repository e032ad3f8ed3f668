import pytest

pytestmark = pytest.mark.django_db


def test_healthz_reports_each_dependency_and_answers_200_when_all_are_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "channel_layer", "broker"}
    assert all(check["ok"] for check in body["checks"].values())


def test_healthz_answers_503_and_names_the_broker_when_redis_is_unreachable(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["broker"]["ok"] is False
    assert "ConnectionError" in body["checks"]["broker"]["error"]
    assert body["checks"]["database"]["ok"] is True


def test_metrics_speak_prometheus_text_format(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    text = response.content.decode()
    assert "# TYPE choreoscope_flows gauge" in text
    assert 'choreoscope_flows{status="running"} 0' in text
    assert "choreoscope_uncorrelated_observations 0" in text


def test_metrics_can_require_a_read_token(client, settings):
    settings.METRICS_AUTH = "required"
    assert client.get("/metrics").status_code == 401


def test_pages_need_a_login_and_every_response_carries_a_strict_csp(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    csp = client.get("/login/")["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_the_overview_tells_a_newcomer_how_to_send_data(admin_client):
    page = admin_client.get("/").content.decode()
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://testserver:4318" in page
    assert "http://testserver/v1/events" in page
    assert "curl -X POST" in page
