"""Query strings, cursors and path parameters that once got a 500 (on SQLite, PostgreSQL or both):
each is the smallest such input, and each now gets a 4xx naming what to fix, or a plain answer."""

from __future__ import annotations

import base64
import json

import pytest

from dashboard.api.paging import decode_cursor, encode_cursor
from dashboard.api.params import InvalidQuery
from tests.tracing.factories import checkout_flow

pytestmark = pytest.mark.django_db

OUT_OF_RANGE = ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"]
BEYOND_POSTGRESQL_OFFSETS = ["2026-01-01T00:00:00+16:00", "2026-01-01T00:00:00-23:59"]


def cursor(at: object, row_id: object) -> str:
    return base64.urlsafe_b64encode(json.dumps([at, row_id]).encode()).decode().rstrip("=")


@pytest.mark.parametrize("instant", OUT_OF_RANGE)
@pytest.mark.parametrize("name", ["since", "until"])
def test_an_instant_utc_cannot_hold_is_a_400_on_the_api_and_the_flows_page(admin_client, name, instant):
    response = admin_client.get("/api/flows", {name: instant})
    assert response.status_code == 400
    assert "outside the years 1 to 9999" in response.json()["error"]
    page = admin_client.get("/flows/", {name: instant})
    assert page.status_code == 400 and b"outside the years 1 to 9999" in page.content


@pytest.mark.parametrize("instant", BEYOND_POSTGRESQL_OFFSETS)
def test_offsets_the_database_refuses_are_searched_in_utc(admin_client, instant):
    checkout_flow()
    assert admin_client.get("/api/flows", {"since": "2000-01-01T00:00:00Z", "until": instant}).status_code == 200
    assert admin_client.get("/flows/", {"until": instant}).status_code == 200


@pytest.mark.parametrize("instant", OUT_OF_RANGE + BEYOND_POSTGRESQL_OFFSETS)
@pytest.mark.parametrize("path", ["/api/flows", "/api/alerts", "/flows/"])
def test_cursors_with_hostile_instants_are_a_400_or_read_in_utc(admin_client, path, instant):
    response = admin_client.get(path, {"cursor": cursor(instant, 1)})
    assert response.status_code == (400 if instant in OUT_OF_RANGE else 200)


@pytest.mark.parametrize("row_id", [2**63, 2**70, -(2**64), True, 1.5, "1"])
def test_cursor_ids_outside_64_bits_or_not_integers_are_refused(row_id):
    with pytest.raises(InvalidQuery, match="not one this server handed out"):
        decode_cursor(cursor("2026-01-01T00:00:00+00:00", row_id))


def test_a_handed_out_cursor_still_reads_back():
    from datetime import UTC, datetime

    at = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert decode_cursor(encode_cursor((at, 42))) == (at, 42)


@pytest.mark.parametrize("digits", [20, 5000])
def test_a_flow_id_of_many_digits_is_a_404(admin_client, digits):
    response = admin_client.get("/api/flows/" + "9" * digits)
    assert response.status_code == 404 and "is not a flow id" in response.json()["error"]
    assert admin_client.get("/flows/" + "9" * digits + "/").status_code == 404


@pytest.mark.parametrize("path", ["/api/alerts/{}/ack", "/alerts/channels/{}/test"])
def test_other_path_ids_of_many_digits_are_a_404(admin_client, path):
    assert admin_client.post(path.format("9" * 20)).status_code == 404
    assert admin_client.post(path.format("9" * 5000)).status_code == 404


def test_long_and_odd_limits_are_a_400(admin_client):
    for limit in ("9" * 5000, "-1", "1e3", "\x00"):
        assert admin_client.get("/api/flows", {"limit": limit}).status_code == 400
