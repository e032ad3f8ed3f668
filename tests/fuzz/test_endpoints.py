"""The HTTP endpoints, fuzzed through Django's request handling: ingestion in every mode, the
query strings of the lists, path parameters and cursors. Never a 5xx; whatever is accepted can be
read back through ``GET /api/flows/<id>`` and the flow page."""

from __future__ import annotations

import gzip
from urllib.parse import quote, urlencode

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from collectors import admission
from tests.collectors.payloads import cloudevent, json_request, json_span
from tests.fuzz import fuzz_settings
from tests.fuzz.strategies import ANY_JSON, CURSORS, INSTANTS, TEXT, json_text
from tracing.models import Flow

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_back_pressure():
    admission.forget()


@pytest.fixture
def reader(admin_user) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    return client


def body_of(value) -> bytes:
    return json_text(value).encode("utf-8", "surrogatepass")


def assert_new_flows_readable(reader: Client, before: int) -> None:
    for flow_id in Flow.objects.filter(id__gt=before).values_list("id", flat=True):
        api = reader.get(f"/api/flows/{flow_id}")
        assert api.status_code == 200, api.content[:300]
        page = reader.get(f"/flows/{flow_id}/")
        assert page.status_code in (200, 302), page.content[:300]


def newest_flow() -> int:
    return Flow.objects.order_by("-id").values_list("id", flat=True).first() or 0


EVENT_FIELDS = st.sampled_from(["id", "source", "type", "time", "subject", "data", "correlationid", "causationid", "traceparent"])
MODES = st.sampled_from(["structured", "batch", "binary"])


@fuzz_settings(60)
@given(overrides=st.dictionaries(EVENT_FIELDS, TEXT | ANY_JSON, max_size=3), mode=MODES, gzipped=st.booleans())
def test_events_in_every_mode_never_get_a_5xx_and_what_is_stored_is_readable(reader, overrides, mode, gzipped):
    before = newest_flow()
    event = {**cloudevent(), **overrides}
    headers: dict[str, str] = {}
    if mode == "binary":
        data = event.pop("data", None)
        headers = {f"ce-{name}": quote(str(value).encode("utf-8", "surrogatepass")) for name, value in event.items()}
        body, content_type = body_of(data), "application/json"
    else:
        body = body_of([event, cloudevent()] if mode == "batch" else event)
        content_type = f"application/cloudevents{'-batch' if mode == 'batch' else ''}+json"
    if gzipped:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    response = reader.post("/v1/events", body, content_type=content_type, headers=headers)
    assert response.status_code < 500, response.content[:300]
    assert_new_flows_readable(reader, before)


@fuzz_settings(60)
@given(
    overrides=st.dictionaries(
        st.sampled_from(["name", "attributes", "events", "links", "traceState", "startTimeUnixNano"]), ANY_JSON, max_size=2
    ),
    attribute=ANY_JSON,
)
def test_otlp_json_never_gets_a_5xx_and_what_is_stored_is_readable(reader, overrides, attribute):
    before = newest_flow()
    span = json_span(**overrides)
    if isinstance(span.get("attributes"), list):
        span["attributes"].append(
            {
                "key": "fuzzed",
                "value": {"kvlistValue": {"values": [{"key": "k", "value": {"stringValue": json_text(attribute)}}]}},
            }
        )
    response = reader.post("/v1/traces", json_request([span]), content_type="application/json")
    assert response.status_code < 500, response.content[:300]
    assert_new_flows_readable(reader, before)


LIST_PATHS = st.sampled_from(
    [
        "/api/flows",
        "/api/alerts",
        "/flows/",
        "/alerts/",
        "/api/topology",
        "/live/",
        "/services/",
        "/services/coupling/",
        "/",
        "/api/contracts",
        "/services/contracts/",
        "/api/flows/export.ocel.json",
        "/api/correlation-health",
        "/services/health/",
    ]
)
KNOWN_PARAMETERS = [
    "key",
    "status",
    "type",
    "service",
    "event_type",
    "since",
    "until",
    "limit",
    "cursor",
    "state",
    "range",
    "window",
    "kind",
]
PARAMETER_NAMES = st.sampled_from(KNOWN_PARAMETERS) | TEXT
PARAMETER_VALUES = st.one_of(TEXT, INSTANTS, CURSORS)


@fuzz_settings(150)
@given(path=LIST_PATHS, params=st.dictionaries(PARAMETER_NAMES, PARAMETER_VALUES, max_size=4))
def test_query_strings_of_the_lists_never_get_a_5xx(reader, path, params):
    query = urlencode(
        {quote(name.encode("utf-8", "surrogatepass")): value.encode("utf-8", "surrogatepass") for name, value in params.items()}
    )
    response = reader.get(f"{path}?{query}")
    body = b"".join(response.streaming_content) if response.streaming else response.content  # an export streams
    assert response.status_code < 500, body[:300]


@fuzz_settings(40)
@given(name=TEXT, document=st.one_of(TEXT, ANY_JSON.map(json_text)), upload=st.one_of(st.none(), st.binary(max_size=300)))
def test_uploaded_asyncapi_documents_never_get_a_5xx(reader, name, document, upload):
    # A form field cannot carry a lone surrogate: the browser would have replaced it.
    form = {"name": name.encode("utf-8", "replace").decode(), "document": document.encode("utf-8", "replace").decode()}
    if upload is not None:
        form["upload"] = SimpleUploadedFile("document.yaml", upload)
    response = reader.post("/admin/tracing/contractdocument/add/", form)
    assert response.status_code in (200, 302), response.content[:300]


@fuzz_settings(100)
@given(
    template=st.sampled_from(["/api/flows/{}", "/flows/{}/", "/api/alerts/{}/ack", "/alerts/channels/{}/test"]),
    value=st.one_of(TEXT, st.integers(min_value=-(2**80), max_value=2**80).map(str), st.just("9" * 5000)),
)
def test_path_parameters_never_get_a_5xx(reader, template, value):
    path = template.format(quote(value.encode("utf-8", "surrogatepass"), safe=""))
    response = reader.post(path) if template.endswith(("ack", "test")) else reader.get(path)
    assert response.status_code < 500, response.content[:300]
