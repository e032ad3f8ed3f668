"""The alerts admin's forms under hostile input, each case the smallest that once got a 500: the
answer is the form again with its error (or no such form), and nothing unreadable is stored."""

from __future__ import annotations

import pytest
from django.test import Client

from alerts.models import NotificationChannel

pytestmark = pytest.mark.django_db

CHANNEL = {"name": "ops", "kind": "webhook", "target": "http://127.0.0.1:9/hook", "enabled": "on"}
CHANNEL |= {"created_at_0": "2026-12-01", "created_at_1": "10:00:00"}
INLINE = {"deliveries-TOTAL_FORMS": "0", "deliveries-INITIAL_FORMS": "0"}


@pytest.fixture
def operator(admin_user) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    return client


def add_channel(client: Client, flow_types: str):
    return client.post("/admin/alerts/notificationchannel/add/", {**CHANNEL, **INLINE, "flow_types": flow_types})


def test_an_empty_json_box_is_an_empty_list_not_a_null_the_column_refuses(operator):
    response = add_channel(operator, "")
    assert response.status_code == 302
    assert NotificationChannel.objects.get().flow_types == []


@pytest.mark.parametrize(
    ("flow_types", "says"),
    [
        ("[" * 100_000 + "]" * 100_000, "Enter a valid JSON."),  # past the recursion limit
        ("9" * 5000, "Enter a valid JSON."),  # past int()'s digit limit
        ('["\\u0000"]', "NUL character or an unpaired surrogate"),  # jsonb refuses it
        ('["\\ud800"]', "NUL character or an unpaired surrogate"),
        ("[1e309]", "not finite"),
        ("[" * 40 + "]" * 40, "nests deeper than 32 levels"),
        (str(2**64), "beyond what a 64-bit integer holds"),
    ],
)
def test_json_the_database_or_the_pages_could_not_hold_is_a_form_error(operator, flow_types, says):
    response = add_channel(operator, flow_types)
    assert response.status_code == 200 and says in response.content.decode()
    assert not NotificationChannel.objects.exists()


@pytest.mark.parametrize("model", ["learnedmodel", "delivery"])
def test_rows_only_the_product_writes_have_no_add_form(operator, model):
    """Every field is read-only there: an add would store a row of NULLs, which the columns refuse."""
    assert operator.post(f"/admin/alerts/{model}/add/", {}).status_code == 403
