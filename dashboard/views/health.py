"""``/healthz`` for load balancers and ``/metrics`` for Prometheus."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from choreoscope.metrics import CONTENT_TYPE, render_metrics
from tokens.auth import check_bearer
from tokens.metrics import observe_token_check


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return connection.vendor


def check_channel_layer() -> str:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    channel = f"healthz.{uuid.uuid4().hex}"
    async_to_sync(layer.send)(channel, {"type": "healthz"})
    message = async_to_sync(layer.receive)(channel)
    if message.get("type") != "healthz":
        raise RuntimeError("the channel layer returned a different message")
    return type(layer).__name__


def check_broker() -> str:
    if not settings.REDIS_URL:
        return "in-process"
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()
    return "redis"


CHECKS: dict[str, Callable[[], str]] = {
    "database": check_database,
    "channel_layer": check_channel_layer,
    "broker": check_broker,
}


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    results: dict[str, dict[str, object]] = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            detail = check()
            results[name] = {"ok": True, "backend": detail}
        except Exception as error:  # a health check reports every failure instead of raising
            results[name] = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        results[name]["ms"] = round((time.perf_counter() - started) * 1000, 2)
    healthy = all(result["ok"] for result in results.values())
    return JsonResponse({"status": "ok" if healthy else "unavailable", "checks": results}, status=200 if healthy else 503)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    check = check_bearer(request, "read", required=settings.METRICS_AUTH == "required")
    observe_token_check("metrics", check)
    if check.error:
        return HttpResponse(check.error + "\n", status=401, content_type="text/plain")
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE)
