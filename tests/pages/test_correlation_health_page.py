"""Correlation health against a running Choreoscope fed by unmodified clients: the OpenTelemetry
SDK's OTLP exporter and the CloudEvents SDK. A consumer host whose clock runs 2 s behind, and a
consumer that keeps no trace context; the API names both, and so does the page in Chromium."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from cloudevents.v1.conversion import to_structured
from cloudevents.v1.http import CloudEvent
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanKind

from tests.http import get_json, post, read_token
from tests.polling import eventually

pytestmark = [pytest.mark.slow, pytest.mark.browser]
S = 1_000_000_000


def tracer(server: Any, service: str) -> tuple[Any, TracerProvider]:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{server.otlp_url}/v1/traces")))
    return provider.get_tracer("shop"), provider


def send_event(server: Any, attributes: dict[str, Any], data: dict[str, Any]) -> None:
    headers, body = to_structured(CloudEvent({"specversion": "1.0", "datacontenttype": "application/json", **attributes}, data))
    assert post(f"{server.url}/v1/events", body, dict(headers)) == 202


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat()


def traceparent(span: Any) -> str:
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-01"


def place_orders(server: Any, suffix: str, orders: int = 3) -> None:
    """checkout publishes OrderCreated; email (its host 2 s behind) consumes it with a link to the
    producer and reacts; legacy consumes it keeping no context at all."""
    checkout, checkout_provider = tracer(server, f"checkout-{suffix}")
    email, email_provider = tracer(server, f"email-{suffix}")
    legacy, legacy_provider = tracer(server, f"legacy-{suffix}")
    for number in range(orders):
        key, event_id = f"order-{suffix}-{number}", f"evt-{uuid.uuid4().hex}"
        at = time.time_ns()
        sent = checkout.start_span(
            "send orders",
            kind=SpanKind.PRODUCER,
            start_time=at,
            attributes={"messaging.operation.type": "send", "messaging.message.id": event_id, "order.id": key},
        )
        sent.end(end_time=at + 2_000_000)
        created = {"id": event_id, "source": f"checkout-{suffix}", "type": "OrderCreated", "correlationid": key}
        send_event(
            server,
            {**created, "traceparent": traceparent(sent), "time": iso(at)},
            {"order_id": key},
        )
        behind = at + 40_000_000 - 2 * S  # 40 ms later, by a clock 2 s behind
        processed = email.start_span(
            "process orders",
            kind=SpanKind.CONSUMER,
            start_time=behind,
            links=[Link(sent.get_span_context())],
            attributes={"messaging.operation.type": "process", "messaging.message.id": event_id, "order.id": key},
        )
        processed.end(end_time=behind + 5_000_000)
        sent_mail = {"id": f"evt-{uuid.uuid4().hex}", "source": f"email-{suffix}", "type": "EmailSent", "correlationid": key}
        sent_mail |= {
            "causationid": event_id,
            "traceparent": traceparent(processed),
            "time": iso(behind),
        }
        send_event(server, sent_mail, {"order_id": key})
        blind = legacy.start_span("process orders", kind=SpanKind.CONSUMER, start_time=at + 50_000_000)
        blind.set_attribute("messaging.operation.type", "process")
        blind.end(end_time=at + 60_000_000)
    for provider in (checkout_provider, email_provider, legacy_provider):
        provider.shutdown()


@pytest.fixture(scope="module")
def suffix(server) -> str:
    suffix = uuid.uuid4().hex[:6]
    place_orders(server, suffix)
    return suffix


def health(server: Any, token: str, service: str) -> dict[str, Any]:
    return get_json(f"{server.url}/api/correlation-health?window=15m&service={service}", token=token)


def finding(answer: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((row for row in answer["findings"] if row["kind"] == kind), None)


def test_the_api_finds_the_clock_behind_and_the_consumer_that_points_at_nothing(server, suffix):
    token = read_token(server)
    email = f"email-{suffix}"
    behind = eventually(
        "email's clock is found behind", lambda: finding(health(server, token, email), "clock_behind"), 30, explain=server.log
    )
    # Each order: email's consumer span and its EmailSent event, both stamped before checkout's OrderCreated.
    assert (behind["service"], behind["detail"], behind["affected"], behind["out_of"]) == (email, f"checkout-{suffix}", 6, 6)
    [skew] = [row for row in health(server, token, email)["clock_skew"] if row["effect_service"] == email]
    assert 1900 <= skew["median_ms"] <= skew["max_ms"] <= 2000

    legacy = health(server, token, f"legacy-{suffix}")
    nothing = finding(legacy, "consumer_points_at_nothing")
    assert nothing is not None and (nothing["affected"], nothing["out_of"]) == (3, 3)
    assert legacy["coverage"][0]["consumer_share"] == 0.0
    email_coverage = health(server, token, email)["coverage"][0]
    assert (email_coverage["consumer_share"], email_coverage["causation_share"], email_coverage["key_share"]) == (1.0, 1.0, 1.0)


def test_the_page_lists_what_to_fix_and_links_to_an_example_flow(page, server, suffix):
    token = read_token(server)
    eventually("legacy is reported", lambda: finding(health(server, token, f"legacy-{suffix}"), "consumer_points_at_nothing"), 30)
    page.goto("/services/")
    page.click("text=Correlation health")
    page.wait_for_url("**/services/health/")
    page.click("a:text('15m')")
    row = page.locator(f'tr[data-kind="consumer_points_at_nothing"][data-service="legacy-{suffix}"]')
    assert "no link, parent or message id" in row.inner_text() and "3 of 3" in row.inner_text()
    skew = page.locator(f'tr[data-kind="clock_behind"][data-service="email-{suffix}"]')
    assert f"checkout-{suffix}" in skew.inner_text()
    assert page.locator("table.skews").inner_text().count(f"email-{suffix}") == 1
    row.locator("a", has_text="flow #").click()
    page.wait_for_url("**/flows/*/")
    assert f"legacy-{suffix}" in page.locator("#flow-data").text_content()
    page.go_back()
    page.locator(f"td.service a:text('legacy-{suffix}')").first.click()
    assert page.locator("table.findings tbody tr").count() >= 1
    assert {cell.inner_text() for cell in page.locator("table.findings td.service").all()} == {f"legacy-{suffix}"}
