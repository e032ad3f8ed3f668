"""OTLP/gRPC: the ``TraceService`` and ``LogsService`` Export calls, served by ``manage.py serve``
beside HTTP.

grpcio runs each call in a thread of its own pool, where Django's database access is ordinary
synchronous code; the thread's connection is closed after every call.
Requests reach us still serialized (no deserializer is registered), so they are decoded by the
same function as OTLP/HTTP protobuf bodies and go through the same checks and the same store:
``collectors.ingestion.receive_otlp_grpc``. gRPC itself undoes gzip and enforces the body limit
(``max_receive_message_length``, counted after decompression).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import grpc
from django.db import connections
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from collectors.ingestion import LOGS, TRACES, OtlpSignal, Reply, receive_otlp_grpc

TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"
# OTLP/gRPC (specification, "Failures"): overload is RESOURCE_EXHAUSTED or UNAVAILABLE with a
# RetryInfo; data that can never be accepted is INVALID_ARGUMENT, which clients do not retry.
GRPC_CODES = {
    401: grpc.StatusCode.UNAUTHENTICATED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
# Where clients find the RetryInfo: the standard rich status (grpc-status-details-bin), and the
# key the OpenTelemetry Python exporter reads.
STATUS_DETAILS_KEY = "grpc-status-details-bin"
RETRY_INFO_KEY = "google.rpc.retryinfo-bin"


def grpc_code(http_status: int) -> grpc.StatusCode:
    return GRPC_CODES.get(http_status, grpc.StatusCode.INVALID_ARGUMENT)


def refusal_metadata(code: grpc.StatusCode, message: str, retry_after_seconds: int | None) -> list[tuple[str, bytes]]:
    """Trailing metadata carrying a google.rpc.Status (with a RetryInfo when the client should retry)."""
    status = status_pb2.Status(code=code.value[0], message=message)
    metadata = []
    if retry_after_seconds is not None:
        retry_info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=retry_after_seconds))
        detail = any_pb2.Any()
        detail.Pack(retry_info)
        status.details.append(detail)
        metadata.append((RETRY_INFO_KEY, retry_info.SerializeToString()))
    metadata.append((STATUS_DETAILS_KEY, status.SerializeToString()))
    return metadata


def authorization_of(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata():
        if key.lower() == "authorization":
            return value if isinstance(value, str) else value.decode("latin-1")
    return ""


def answer(reply: Reply, context: grpc.ServicerContext) -> bytes:
    if reply.status == 200:
        return reply.body
    code = grpc_code(reply.status)
    retry = reply.headers.get("Retry-After")
    message = reply.body.decode()
    context.set_trailing_metadata(refusal_metadata(code, message, int(retry) if retry else None))
    context.abort(code, message)
    raise AssertionError("unreachable: abort raises")  # pragma: no cover


def export_handler(signal: OtlpSignal) -> Callable[[bytes, grpc.ServicerContext], bytes]:
    def export(request: bytes, context: grpc.ServicerContext) -> bytes:
        try:
            return answer(receive_otlp_grpc(signal, request, authorization_of(context)), context)
        finally:
            # A pool thread may sit idle for long: it keeps no connection between calls.
            connections.close_all()

    return export


def service_handlers() -> list[grpc.GenericRpcHandler]:
    return [
        grpc.method_handlers_generic_handler(service, {"Export": grpc.unary_unary_rpc_method_handler(export_handler(signal))})
        for service, signal in ((TRACE_SERVICE, TRACES), (LOGS_SERVICE, LOGS))
    ]


class GrpcBindError(OSError):
    """The port cannot be listened on (taken, or not an address of this machine)."""


def start_otlp_grpc(host: str, port: int, max_message_bytes: int, threads: int = 8) -> grpc.Server:
    """A started OTLP/gRPC server on ``host:port``; raises ``GrpcBindError`` when it cannot listen."""
    server = grpc.server(
        ThreadPoolExecutor(max_workers=threads, thread_name_prefix="otlp-grpc"),
        handlers=service_handlers(),
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            # grpcio shares a port with another process by default; a port in use must be an error.
            ("grpc.so_reuseport", 0),
        ],
    )
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as error:
        raise GrpcBindError(f"Cannot listen on {address}: {error}") from None
    if not bound:
        raise GrpcBindError(f"Cannot listen on {address}.")
    server.start()
    return server
