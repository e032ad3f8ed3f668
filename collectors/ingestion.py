"""What happens to one ingestion request, from checked headers to committed rows: plain,
synchronous functions that the async views run in worker threads.

Each returns a ``Reply``; the views only turn it into an ``HttpResponse``. The order of checks is
deliberate: token, format, size, back-pressure (cheap refusals first), then decode, then one
bulk write. A 2xx is produced only after ``store_observations`` committed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from django.conf import settings
from django.db import DataError, InterfaceError, OperationalError, close_old_connections
from django.http import HttpRequest

from collectors import admission, cloudevents, otlp, otlp_logs
from collectors.bodies import BodyError, decompress, parse_media_type
from collectors.metrics import observe_ingest, observe_rejected, observe_stored, received_bytes
from tokens.auth import check_authorization
from tokens.metrics import observe_token_check
from tracing.records import ObservationRecord
from tracing.store import StoreResult, store_observations, store_span_logs

logger = logging.getLogger(__name__)
TRANSIENT_DATABASE_ERRORS = (OperationalError, InterfaceError)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)
    partial: bool = False  # a 2xx that refused part of the request (OTLP partial success)


class Refusal(Exception):
    """Stops a request early with a status and a message a person can act on."""

    def __init__(
        self,
        status: int,
        message: str,
        retry: bool = False,
        problems: list[tuple[int | None, str]] | None = None,
        problem_count: int = 0,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.retry, self.problems = status, message, retry, problems or []
        self.problem_count = max(problem_count, len(self.problems))


def check_token(request: HttpRequest) -> None:
    check_authorization_value(request.headers.get("Authorization", ""))


def check_authorization_value(authorization: str) -> None:
    """An ingest token in an ``Authorization`` header or gRPC metadata value, as settings demand."""
    check = check_authorization(authorization, "ingest", required=settings.INGEST_AUTH == "required")
    observe_token_check("ingest", check)
    if check.error:
        raise Refusal(401, check.error)


def declared_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise Refusal(400, "Content-Length is not a number.") from None


def read_body(request: HttpRequest) -> bytes:
    limit = settings.MAX_BODY_BYTES
    if declared_length(request) > limit:
        raise Refusal(413, f"The request body is larger than {limit} bytes (CHOREOSCOPE_MAX_BODY_BYTES).")
    try:
        return decompress(request.body, request.headers.get("Content-Encoding", ""), limit)
    except BodyError as error:
        raise Refusal(error.status, error.message) from None


def check_capacity() -> None:
    if admission.overloaded():
        raise Refusal(429, "Too many observations are waiting for correlation; retry later.", retry=True)


def store(records: list[ObservationRecord], kind: str) -> StoreResult:
    try:
        result = store_observations(records)
    except DataError as error:
        raise Refusal(400, f"The data cannot be stored: {str(error).strip()}") from None
    observe_stored(kind, len(records), result)
    return result


def guarded(
    endpoint: str, work: Callable[[], Reply], refusal_reply: Callable[[Refusal], Reply], request: HttpRequest | None = None
) -> Reply:
    """Run ``work``, turning refusals and transient database errors into answers, and count the
    answer (its size too, given the ``request``)."""
    close_old_connections()
    started = time.perf_counter()
    try:
        reply = work()
    except Refusal as refusal:
        reply = refusal_reply(refusal)
    except TRANSIENT_DATABASE_ERRORS as error:
        logger.warning("Ingestion unavailable (database): %s", error)
        reply = refusal_reply(Refusal(503, "The database is unavailable; retry later.", retry=True))
    size = received_bytes(request) if request else None
    observe_ingest(endpoint, reply.status, reply.partial, time.perf_counter() - started, size)
    return reply


def retry_headers(refusal: Refusal) -> dict[str, str]:
    return {"Retry-After": str(settings.RETRY_AFTER_SECONDS)} if refusal.retry else {}


# --- OTLP: traces and logs, over HTTP and gRPC -------------------------------------------------


class OtlpBatch(Protocol):
    records: list[ObservationRecord]
    rejected: int

    @property
    def error_message(self) -> str: ...


@dataclass(frozen=True, slots=True)
class OtlpSignal:
    """What differs between OTLP traces and logs; everything else is shared."""

    endpoint: str
    kind: str  # of the observations stored, for the ingestion counters
    decode: Callable[[bytes, str], OtlpBatch]
    answer: Callable[[str, int, str], bytes]  # an Export*ServiceResponse (content type, rejected, message)


TRACES = OtlpSignal("traces", "span", otlp.decode_traces, otlp.export_response)
LOGS = OtlpSignal("logs", "event", otlp_logs.decode_logs, otlp_logs.logs_export_response)


def export_otlp(signal: OtlpSignal, body: bytes, encoding: str) -> Reply:
    """Back-pressure, decode, store: the part of an OTLP export HTTP and gRPC share. Answers with
    the Export*ServiceResponse, once the records are committed."""
    check_capacity()
    try:
        batch = signal.decode(body, encoding)
    except otlp.OtlpDecodeError as error:
        raise Refusal(error.status, str(error)) from None
    store(batch.records, signal.kind)
    if isinstance(batch, otlp_logs.LogBatch) and batch.span_logs:
        store_span_logs(batch.span_logs)  # committed before the answer, like the observations
    observe_rejected(signal.kind, "invalid", batch.rejected)
    answer_type = otlp.answer_content_type(encoding)
    return Reply(200, signal.answer(answer_type, batch.rejected, batch.error_message), answer_type, partial=batch.rejected > 0)


def receive_otlp(request: HttpRequest, signal: OtlpSignal) -> Reply:
    essence = parse_media_type(request.headers.get("Content-Type", "")).essence
    answer_type = otlp.answer_content_type(essence)

    def work() -> Reply:
        check_token(request)
        if essence not in (otlp.PROTOBUF, otlp.JSON):
            raise Refusal(
                415, f"Content-Type {essence or '(none)'!r} is not supported; send application/x-protobuf or application/json."
            )
        body = read_body(request)
        return export_otlp(signal, body, essence)

    def refused(refusal: Refusal) -> Reply:
        # OTLP/HTTP: every error answer carries a google.rpc.Status in the request's encoding.
        code = {429: otlp.RESOURCE_EXHAUSTED, 503: otlp.UNAVAILABLE}.get(refusal.status, otlp.INVALID_ARGUMENT)
        if refusal.status == 401:
            code = 16  # UNAUTHENTICATED
        body = otlp.status_body(answer_type, code, refusal.message)
        return Reply(refusal.status, body, answer_type, retry_headers(refusal))

    return guarded(signal.endpoint, work, refused, request)


def receive_traces(request: HttpRequest) -> Reply:
    return receive_otlp(request, TRACES)


def receive_logs(request: HttpRequest) -> Reply:
    return receive_otlp(request, LOGS)


def receive_otlp_grpc(signal: OtlpSignal, body: bytes, authorization: str) -> Reply:
    """One gRPC Export call (the message still serialized, so that it is decoded by the very
    function OTLP/HTTP protobuf uses). A refusal comes back as its HTTP status and message, which
    ``collectors.otlp_grpc`` turns into a gRPC status."""

    def work() -> Reply:
        check_authorization_value(authorization)
        return export_otlp(signal, body, otlp.PROTOBUF)

    def refused(refusal: Refusal) -> Reply:
        return Reply(refusal.status, refusal.message.encode(), "text/plain", retry_headers(refusal))

    return guarded(f"grpc_{signal.endpoint}", work, refused)


# --- CloudEvents -------------------------------------------------------------------------------


def receive_events(request: HttpRequest) -> Reply:
    essence = parse_media_type(request.headers.get("Content-Type", "")).essence

    def work() -> Reply:
        check_token(request)
        binary = cloudevents.is_binary(request.headers)
        if essence not in (cloudevents.STRUCTURED, cloudevents.BATCH) and not binary:
            raise Refusal(
                415,
                f"Content-Type {essence or '(none)'!r} without ce-specversion is not a CloudEvents format; "
                "send application/cloudevents+json, application/cloudevents-batch+json, "
                "or binary mode (ce-* headers).",
            )
        body = read_body(request)
        check_capacity()
        try:
            records = cloudevents.decode_events(request.headers, body, essence)
        except cloudevents.CloudEventError as error:
            raise Refusal(error.status, error.message, problems=error.problems, problem_count=error.total) from None
        result = store(records, "event")
        answer = {"accepted": len(records), "stored": result.inserted, "duplicates": result.duplicates}
        return Reply(202, json.dumps(answer).encode(), "application/json")

    def refused(refusal: Refusal) -> Reply:
        answer: dict[str, object] = {"error": refusal.message}
        if refusal.problems:
            # The first CHOREOSCOPE_MAX_PROBLEMS of them, and how many there were.
            answer["problems"] = [{"index": index, "reason": reason} for index, reason in refusal.problems]
            answer["problem_count"] = refusal.problem_count
        return Reply(refusal.status, json.dumps(answer).encode(), "application/json", retry_headers(refusal))

    return guarded("events", work, refused, request)


def webhook_handshake(request: HttpRequest) -> Reply:
    """CloudEvents HTTP 1.1 Web Hooks §4.1: validate a subscription by echoing the requesting origin."""
    origin = request.headers.get("WebHook-Request-Origin")
    headers = {"Allow": "POST, OPTIONS"}
    if origin:
        headers["WebHook-Allowed-Origin"] = origin
        if request.headers.get("WebHook-Request-Rate"):
            headers["WebHook-Allowed-Rate"] = "*"
    return Reply(200, b"", "text/plain", headers)
