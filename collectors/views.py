"""Ingestion endpoints: ``POST /v1/traces`` and ``POST /v1/logs`` (OTLP/HTTP) and
``POST``/``OPTIONS /v1/events`` (CloudEvents over HTTP).

The views are async so that under ASGI they do not queue behind the single thread Django gives
sync views; decoding and the bulk write run in worker threads, many requests at once.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from collectors.ingestion import Reply, receive_events, receive_logs, receive_traces, webhook_handshake


def respond(reply: Reply) -> HttpResponse:
    response = HttpResponse(reply.body, status=reply.status, content_type=reply.content_type)
    for name, value in reply.headers.items():
        response[name] = value
    return response


def method_not_allowed(allowed: str) -> HttpResponse:
    response = HttpResponse(f"Use {allowed}.", status=405, content_type="text/plain")
    response["Allow"] = allowed
    return response


@csrf_exempt
async def traces(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return method_not_allowed("POST")
    return respond(await sync_to_async(receive_traces, thread_sensitive=False)(request))


@csrf_exempt
async def logs(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return method_not_allowed("POST")
    return respond(await sync_to_async(receive_logs, thread_sensitive=False)(request))


@csrf_exempt
async def events(request: HttpRequest) -> HttpResponse:
    if request.method == "OPTIONS":
        return respond(webhook_handshake(request))
    if request.method != "POST":
        return method_not_allowed("POST, OPTIONS")
    return respond(await sync_to_async(receive_events, thread_sensitive=False)(request))
