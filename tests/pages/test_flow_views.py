"""The flows pages through Django's test client: what the server renders and how it refuses bad
requests, plus the small pure functions behind the rows."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.http import QueryDict
from django.utils import timezone

from dashboard.api.params import InvalidQuery
from dashboard.selectors import with_linked_flows
from dashboard.views.flows import filter_params, human_duration, waiting_text
from tests.pages.scenarios import seed
from tracing.models import Flow, Observation
from tracing.records import span_identity


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0042, "4 ms"), (4.25, "4.2 s"), (192.4, "3 m 12 s"), (7500, "2 h 05 m"), (3 * 86_400 + 4 * 3600, "3 d 4 h")],
)
def test_durations_read_like_a_person_would_say_them(seconds, text):
    assert human_duration(seconds) == text


def test_a_stuck_flow_says_what_it_waits_for_and_from_whom():
    missing = [{"step": "PointsCreated", "service": "rewards"}, {"step": "EmailSent", "service": "email"}]
    assert waiting_text(missing) == "waiting for PointsCreated from rewards (+1 more)"
    assert waiting_text([]) == ""


def test_a_range_preset_sets_since_unless_since_is_given():
    now = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    assert filter_params(QueryDict("range=1h"), now)["since"] == (now - timedelta(hours=1)).isoformat()
    assert filter_params(QueryDict("range=1h&since=2026-01-01T00:00:00"), now)["since"] == "2026-01-01T00:00:00"
    with pytest.raises(InvalidQuery, match="'range' must be one of"):
        filter_params(QueryDict("range=forever"), now)


@pytest.mark.django_db
def test_the_pages_need_a_login(client):
    assert client.get("/flows/").status_code == 302
    assert client.get("/flows/1/").status_code == 302


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=lost", "&#x27;status&#x27; must be one of"),
        ("range=forever", "&#x27;range&#x27; must be one of"),
        ("since=yesterday", "ISO 8601"),
        ("cursor=not-a-cursor", "start again without it"),
    ],
)
def test_bad_filters_get_a_400_that_says_how_to_fix_them(admin_client, query, message):
    response = admin_client.get(f"/flows/?{query}")
    assert response.status_code == 400
    assert message in response.content.decode()


@pytest.mark.django_db
def test_an_unknown_flow_is_a_404(admin_client):
    assert admin_client.get("/flows/987654/").status_code == 404


@pytest.mark.django_db
def test_the_flow_page_embeds_the_flow_as_json_not_as_markup(admin_client):
    flow = seed("xss", "<script>alert(1)</script>")
    html = admin_client.get(f"/flows/{flow['flow_id']}/").content.decode()
    embedded = re.search(r'<script id="flow-data" type="application/json">(.*?)</script>', html, re.S)
    assert embedded is not None
    assert json.loads(embedded.group(1))["key"] == "<script>alert(1)</script>"
    assert "<script>alert(1)</script>" not in html.replace(embedded.group(0), "")


@pytest.mark.django_db
def test_the_list_pages_with_a_cursor_newest_first(admin_client):
    now = timezone.now()
    for n in range(55):
        started = now - timedelta(minutes=n)
        Flow.objects.create(key=f"page-{n:02d}", type="order", started_at=started, last_seen_at=started)
    first = admin_client.get("/flows/?type=order").content.decode()
    keys = re.findall(r'class="flow-key"[^>]*>(page-\d+)<', first)
    assert keys[:3] == ["page-00", "page-01", "page-02"] and len(keys) == 50
    next_link = re.search(r'href="([^"]+)" rel="next"', first)
    assert next_link is not None
    older = next_link.group(1).replace("&amp;", "&")
    second = admin_client.get(older).content.decode()
    assert re.findall(r'class="flow-key"[^>]*>(page-\d+)<', second) == [f"page-{n}" for n in range(50, 55)]
    assert 'rel="next"' not in second


@pytest.mark.django_db
def test_span_links_into_another_flow_carry_that_flows_id_and_key():
    now = timezone.now()
    here = Flow.objects.create(key="order-1", started_at=now, last_seen_at=now)
    there = Flow.objects.create(key="order-2", started_at=now, last_seen_at=now)
    Observation.objects.create(
        kind="span",
        identity=span_identity("a" * 32, "b" * 16),
        flow=there,
        name="send",
        service="x",
        start_ns=1,
        trace_id="a" * 32,
        span_id="b" * 16,
    )
    detail: Any = {  # only the fields the marking reads
        "id": here.id,
        "nodes": [{"links": [{"trace_id": "a" * 32, "span_id": "b" * 16}, {"trace_id": "c" * 32, "span_id": "d" * 16}]}],
    }
    links = with_linked_flows(detail)["nodes"][0]["links"]
    assert links[0]["flow_id"] == there.id and links[0]["flow_key"] == "order-2"
    assert "flow_id" not in links[1]
