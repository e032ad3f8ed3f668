"""Every form the product serves, fuzzed as a browser posts it: the log-in pages (site and admin),
the admin's add and change forms of every registered model with their inline rows, the admin's
list actions, and the demo's faults panel. Each form is read from its page (its fields, hidden
ones and inline management fields included) and posted back with hostile values: huge, NUL, lone
surrogates (as the invalid UTF-8 a client can send), JSON nested past every limit, wrong types,
numbers past what the databases hold, fields left out. The answer is a 4xx or the form again
with its errors, never a 5xx; whatever was stored can be shown by the admin, the pages and the
API, and the declared flows still load. A post without the CSRF token is refused and stores
nothing."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import quote

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Model
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from alerts.models import Alert, DeclaredFlow, Delivery, LearnedModel, NotificationChannel
from alerts.selectors import declared_rules
from tests.collectors.payloads import cloudevent
from tests.fuzz import fuzz_settings
from tests.fuzz.strategies import ANY_JSON, TEXT, json_text
from tokens.models import ApiToken
from tracing.models import Flow, Observation

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "a-long-enough-password"
PRODUCT_PAGES = ["/", "/alerts/", "/alerts/models/", "/api/alerts", "/flows/"]

NUMBERS = st.sampled_from(["9" * 5000, "-1", "1e309", "NaN", "2147483648", "9223372036854775808", "-9223372036854775809", "0.5"])
FIELD_VALUES = st.one_of(
    TEXT,
    NUMBERS,
    st.sampled_from(["x" * 100_000, "on", "true", "[]", "{}", '["a", 1, null]', '"\\ud800"', '["\\u0000"]']),
    st.builds(json_text, ANY_JSON),
)


# --- forms as a browser sees them ------------------------------------------------------------------


@dataclass
class Form:
    action: str
    fields: list[tuple[str, str]] = field(default_factory=list)


class FormParser(HTMLParser):
    """The POST forms of a page: where each posts, and each named field with its value as sent."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url, self.forms, self.select, self.textarea = url, list[Form](), "", ""
        self.current: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = {key: value or "" for key, value in attrs}
        if tag == "form" and named.get("method", "get").lower() == "post":
            self.current = Form(named.get("action") or self.url)
            self.forms.append(self.current)
        elif self.current is None:
            return
        elif tag == "input" and named.get("name") and named.get("type") not in ("submit", "button", "file"):
            if named.get("type") not in ("checkbox", "radio") or "checked" in named:
                self.current.fields.append((named["name"], named.get("value", "")))
        elif tag == "select" and named.get("name"):
            self.select = named["name"]
            self.current.fields.append((self.select, ""))
        elif tag == "option" and self.select and ("selected" in named or self.current.fields[-1][1] == ""):
            self.current.fields[-1] = (self.select, named.get("value", ""))
        elif tag == "textarea" and named.get("name"):
            self.textarea = named["name"]
            self.current.fields.append((self.textarea, ""))

    def handle_data(self, data: str) -> None:
        if self.textarea and self.current is not None:
            self.current.fields[-1] = (self.textarea, self.current.fields[-1][1] + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.current = None
        elif tag == "select":
            self.select = ""
        elif tag == "textarea":
            self.textarea = ""


def forms_on(client: Client, url: str) -> list[Form]:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    parser = FormParser(url)
    parser.feed(response.content.decode())
    return [form for form in parser.forms if "logout" not in form.action]  # no fields but the token


def encoded(fields: list[tuple[str, str]]) -> bytes:
    """A form body as a client that does not care about Unicode sends it (surrogates become
    invalid UTF-8)."""
    return "&".join(
        f"{quote(name.encode('utf-8', 'surrogatepass'))}={quote(value.encode('utf-8', 'surrogatepass'))}"
        for name, value in fields
    ).encode()


def post(client: Client, form: Form, fields: list[tuple[str, str]]):
    return client.post(form.action, encoded(fields), content_type="application/x-www-form-urlencoded")


def hostile(data: st.DataObject, form: Form) -> list[tuple[str, str]]:
    """The form's fields, each kept, left out or replaced by a hostile value."""
    fields = []
    for name, value in form.fields:
        choice = data.draw(st.sampled_from(["keep", "keep", "omit", "hostile", "hostile"]), label=name)
        if choice == "keep" or name == "csrfmiddlewaretoken":
            fields.append((name, value))
        elif choice == "hostile":
            fields.append((name, data.draw(FIELD_VALUES, label=name)))
    return fields


# --- what there is to post -------------------------------------------------------------------------


@pytest.fixture
def rows(admin_user, django_user_model):
    """One row of every model the admin edits, so that each change form exists."""
    flow = Flow.objects.create(key="order-1", type="order", started_at=timezone.now(), last_seen_at=timezone.now())
    declared = DeclaredFlow.objects.create(flow_type="order", end_steps=["ShipmentPrepared"], deadline_seconds=600)
    declared.expectations.create(after="OrderCreated", steps=["EmailSent"], within_seconds=60)
    alert = Alert.objects.create(flow=flow, flow_key="order-1", flow_type="order", step="EmailSent", due_at=timezone.now())
    channel = NotificationChannel.objects.create(name="ops", kind="webhook", target="http://127.0.0.1:9/hook")
    Delivery.objects.create(channel=channel, alert=alert, event="opened")
    LearnedModel.objects.create(flow_type="order", flow_count=3, graph={})
    ApiToken.issue("collector", "ingest")
    Group.objects.create(name="operators")
    django_user_model.objects.create_user("someone", password=PASSWORD)
    admin_user.set_password(PASSWORD)
    admin_user.save()
    return admin_user


@pytest.fixture
def operator(rows) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(rows)
    return client


def admin_form_pages(user) -> list[tuple[str, type[Model]]]:
    """Every add and change page of the admin, and every list page (its actions form), with the
    model each edits."""
    request = RequestFactory().get("/admin/")
    request.user = user
    pages = []
    for model, model_admin in admin.site._registry.items():
        name = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        pages.append((reverse(f"{name}_changelist"), model))
        if model_admin.has_add_permission(request):
            pages.append((reverse(f"{name}_add"), model))
        # The newest row: for users, another one than the operator's, whom a change would log out.
        newest = model._default_manager.order_by("-pk").first()
        if newest is not None:
            pages.append((reverse(f"{name}_change", args=[newest.pk]), model))
    return pages


def everything_stored_is_readable(client: Client, model: type[Model]) -> None:
    name = f"admin:{model._meta.app_label}_{model._meta.model_name}"
    listing = client.get(reverse(f"{name}_changelist"))
    assert listing.status_code == 200, (name, listing.content[:300])
    for pk in model._default_manager.values_list("pk", flat=True)[:5]:
        change = client.get(reverse(f"{name}_change", args=[pk]))
        assert change.status_code == 200, (name, pk, change.content[:300])
    for page in PRODUCT_PAGES:
        response = client.get(page)
        assert response.status_code == 200, (page, response.content[:300])
    declared_rules()  # the admin's flow definitions still load


def overview_shows_its_panels(client: Client) -> None:
    """The overview shows its panels once there is data, the demo's faults once it has services."""
    from demo.fault_settings import register_services

    register_services(("checkout", "email", "warehouse", "rewards"), reset=True)
    if not Observation.objects.exists():
        event = json.dumps(cloudevent())
        assert client.post("/v1/events", event, content_type="application/cloudevents+json").status_code == 202


@contextmanager
def each_example_from_the_same_rows() -> Iterator[None]:
    """What one example stores is rolled back, so the next one reads the same pages."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


# --- the tests -------------------------------------------------------------------------------------


def test_every_admin_model_has_its_forms_fuzzed(rows, operator):
    pages = admin_form_pages(rows)
    assert len(pages) >= 20  # list, add and change pages of ten models
    for page, _ in pages:
        assert forms_on(operator, page), page


@fuzz_settings(50)
@given(data=st.data())
def test_admin_forms_never_get_a_5xx_and_store_nothing_unreadable(rows, operator, data):
    with each_example_from_the_same_rows():
        page, model = data.draw(st.sampled_from(admin_form_pages(rows)), label="page")
        form = data.draw(st.sampled_from(forms_on(operator, page)), label="form")
        response = post(operator, form, hostile(data, form))
        assert response.status_code < 500, (page, response.content[:500])
        everything_stored_is_readable(operator, model)


_addresses = itertools.count()


@fuzz_settings(30)
@given(page=st.sampled_from(["/login/", "/admin/login/"]), username=FIELD_VALUES, password=FIELD_VALUES | st.just(PASSWORD))
def test_log_in_forms_never_get_a_5xx(rows, page, username, password):
    # An address of its own per example: the throttle counts by address too, in a cache that
    # other tests share (Redis in the second phase), so neither may lock the other out.
    n = next(_addresses)
    client = Client(raise_request_exception=False, REMOTE_ADDR=f"198.18.{n // 250}.{n % 250 + 1}")
    form = forms_on(client, page)[0]
    fields = [
        (name, username if name == "username" else password if name == "password" else value) for name, value in form.fields
    ]
    response = post(client, form, fields)
    assert response.status_code in (200, 429), response.content[:300]  # the form again, or the throttle
    assert "_auth_user_id" not in client.session


@fuzz_settings(30)
@given(data=st.data())
def test_the_faults_panel_never_gets_a_5xx(operator, data):
    overview_shows_its_panels(operator)
    with each_example_from_the_same_rows():
        form = next(form for form in forms_on(operator, "/") if form.action.endswith("/demo/faults/"))
        response = post(operator, form, hostile(data, form))
        assert response.status_code in (302, 400), response.content[:300]
        assert operator.get("/demo/faults/").status_code == 200
        assert operator.get("/").status_code == 200


def test_every_form_refuses_a_post_without_its_csrf_token(rows, operator):
    strict = Client(enforce_csrf_checks=True, raise_request_exception=False)
    strict.force_login(rows)
    overview_shows_its_panels(operator)
    pages = [page for page, _ in admin_form_pages(rows)] + ["/"]
    before = {model: model._default_manager.count() for model in admin.site._registry}
    posted = 0
    for page in pages:
        for form in forms_on(operator, page):
            fields = [(name, value) for name, value in form.fields if name != "csrfmiddlewaretoken"]
            response = strict.post(form.action, encoded(fields), content_type="application/x-www-form-urlencoded")
            assert response.status_code == 403, (page, form.action, response.status_code)
            posted += 1
    logged_out = Client(enforce_csrf_checks=True, raise_request_exception=False)
    for page in ("/login/", "/admin/login/"):
        response = logged_out.post(
            page, encoded([("username", "admin"), ("password", PASSWORD)]), content_type="application/x-www-form-urlencoded"
        )
        assert response.status_code == 403 and "_auth_user_id" not in logged_out.session
    assert posted >= 25  # the admin's forms and the overview's faults panel
    assert before == {model: model._default_manager.count() for model in admin.site._registry}
