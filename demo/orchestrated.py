"""The orchestrated part of the shop: before an order exists, checkout calls fraud-screening and
then payment over HTTP and waits for each answer; only then does it emit OrderCreated, and the
rest (email, warehouse, rewards, fraud-check) reacts to events. A hybrid, as most shops are:
the steps that must succeed before the customer gets an answer are orchestrated, the
consequences are choreographed.

fraud-screening and payment are real HTTP servers on the loopback interface, each instrumented
as a service would be with its own tracer provider: a SERVER span per request, its parent taken
from the W3C ``traceparent`` header, HTTP semantic-convention attributes. Checkout's side is a
CLIENT span around a real ``urllib`` request that carries the header.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from demo.latency import LatencyProfile, sample_latency_ms
from demo.telemetry import ServiceClock

logger = logging.getLogger("demo.shop")

FRAUD_SCREENING, PAYMENT = "fraud-screening", "payment"
ORCHESTRATED_SERVICES: tuple[str, ...] = (FRAUD_SCREENING, PAYMENT)
CALL_TIMEOUT_SECONDS = 5.0
PROPAGATOR = TraceContextTextMapPropagator()


@dataclass(frozen=True, slots=True)
class Endpoint:
    service: str
    route: str  # e.g. /payments
    work: str  # the name of the span of the work it does
    latency: LatencyProfile
    refuse_share: float  # share of requests answered 4xx (a declined card, a risky order)
    refusal_status: int


# The demo approves every order (refuse_share 0) so that every order reaches the choreography.
ENDPOINTS = {
    FRAUD_SCREENING: Endpoint(FRAUD_SCREENING, "/screenings", "score the order", LatencyProfile(70, spread=0.4), 0.0, 403),
    PAYMENT: Endpoint(PAYMENT, "/payments", "authorise the card", LatencyProfile(160, spread=0.35), 0.0, 402),
}

# How a calling service opens a span: ``ShopService.span`` (its tracer and its clock).
OpenSpan = Callable[..., AbstractContextManager[Span]]


class HttpService:
    """One service answering HTTP requests on 127.0.0.1 (a free port), one SERVER span each."""

    def __init__(
        self, endpoint: Endpoint, provider: TracerProvider, clock: ServiceClock, rng: random.Random, scale: float
    ) -> None:
        self.endpoint = endpoint
        self.provider = provider
        self.tracer = provider.get_tracer("shop." + endpoint.service.replace("-", "_"), "1.4.2")
        self.clock = clock
        self.rng = rng
        self.scale = scale
        self.stopping = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name=f"{endpoint.service}-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.endpoint.route}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.provider.shutdown()

    def answer(self, headers: dict[str, str], body: dict[str, Any], port: int) -> tuple[int, dict[str, Any]]:
        """Handle one request inside a SERVER span continuing the caller's trace."""
        endpoint = self.endpoint
        order_id = str(body.get("order_id", ""))
        attributes: dict[str, Any] = {
            "http.request.method": "POST",
            "http.route": endpoint.route,
            "url.path": endpoint.route,
            "url.scheme": "http",
            "server.address": "127.0.0.1",
            "server.port": port,
            "network.protocol.version": "1.1",
            "order.id": order_id,
        }
        parent = PROPAGATOR.extract(headers)
        options: dict[str, Any] = {"kind": SpanKind.SERVER, "attributes": attributes, "end_on_exit": False}
        with self.tracer.start_as_current_span(
            f"POST {endpoint.route}", context=parent, start_time=self.clock.now_ns(), **options
        ) as span:
            try:
                latency_ms = sample_latency_ms(endpoint.latency, self.rng) * self.scale
                with self.tracer.start_as_current_span(endpoint.work, start_time=self.clock.now_ns(), end_on_exit=False) as work:
                    self.stopping.wait(latency_ms / 1000.0)
                    work.set_attribute("order.id", order_id)
                    work.end(end_time=self.clock.now_ns())
                status = endpoint.refusal_status if self.rng.random() < endpoint.refuse_share else 200
                span.set_attribute("http.response.status_code", status)
                return status, {"order_id": order_id, "approved": status == 200}
            finally:
                span.end(end_time=self.clock.now_ns())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length") or 0), 65_536)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    body = {}
                body = body if isinstance(body, dict) else {}
                # Header names are case-insensitive (urllib sends "Traceparent"); the propagator looks up "traceparent".
                headers = {name.lower(): value for name, value in self.headers.items()}
                status, answer = service.answer(headers, body, service.port)
                payload = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the caller gave up (timed out, or the shop is stopping): nobody to answer

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


def call(open_span: OpenSpan, url: str, route: str, order_id: str) -> bool:
    """POST the order to ``url`` from the caller's side: a CLIENT span around a real HTTP request
    that carries the span's context; True when the callee approved."""
    host, _, port = url.split("/")[2].partition(":")
    attributes = {
        "http.request.method": "POST",
        "url.full": url,
        "server.address": host,
        "server.port": int(port or 80),
        "network.protocol.version": "1.1",
        "order.id": order_id,
    }
    with open_span(f"POST {route}", SpanKind.CLIENT, attributes) as span:
        headers = {"Content-Type": "application/json"}
        PROPAGATOR.inject(headers)
        request = urllib.request.Request(url, json.dumps({"order_id": order_id}).encode(), headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=CALL_TIMEOUT_SECONDS) as response:
                status = response.status
        except urllib.error.HTTPError as refused:
            status = refused.code
        except OSError as error:
            span.set_attribute("error.type", type(error).__name__)
            span.set_status(Status(StatusCode.ERROR, str(error)))
            return False
        span.set_attribute("http.response.status_code", status)
        if status >= 400:
            # HTTP semantic conventions: a client span is an error for any 4xx or 5xx answer.
            span.set_attribute("error.type", str(status))
            span.set_status(Status(StatusCode.ERROR))
        return status < 400


class OrderChecks:
    """What checkout asks before it creates an order: fraud-screening, then payment."""

    def __init__(self, services: dict[str, HttpService]) -> None:
        self.services = services

    def approve(self, open_span: OpenSpan, order_id: str) -> bool:
        for name in ORCHESTRATED_SERVICES:
            service = self.services[name]
            if not call(open_span, service.url, service.endpoint.route, order_id):
                logger.debug("%s refused %s", name, order_id)
                return False
        return True

    def stop(self) -> None:
        for service in self.services.values():
            service.stop()


def start_order_checks(make_provider: Callable[[str], TracerProvider], rng: random.Random, latency_scale: float) -> OrderChecks:
    services = {
        name: HttpService(ENDPOINTS[name], make_provider(name), ServiceClock(), random.Random(rng.random()), latency_scale)
        for name in ORCHESTRATED_SERVICES
    }
    for service in services.values():
        service.start()
    return OrderChecks(services)
