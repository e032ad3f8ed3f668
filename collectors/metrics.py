"""What ingestion counts, and the lag of the watched queues, on ``/metrics``.

Requests and observations are counted in memory as they are answered (a tap's batch as a
request of endpoint ``tap_<kind>``); queue lag is read at scrape time from
``tracing.queue_lag``, where ``collectors.queue_watch`` registers the buses settings name.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.http import HttpRequest
from prometheus_client.metrics_core import Metric

from choreoscope.metrics import counter, gauge_family, histogram
from tracing.queue_lag import LagReadings, current_lag
from tracing.store import StoreResult

INGEST_REQUESTS = counter(
    "choreoscope_ingest_requests_total", "Ingestion requests answered, by endpoint and HTTP status.", ["endpoint", "status"]
)
INGESTED_OBSERVATIONS = counter(
    "choreoscope_ingested_observations_total", "Observations accepted by ingestion (before de-duplication), by kind.", ["kind"]
)
INGEST_SECONDS = histogram(
    "choreoscope_ingest_request_seconds",
    "Time from a request's arrival at ingestion to its answer (after commit), by endpoint and outcome.",
    ["endpoint", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
INGEST_BYTES = histogram(
    "choreoscope_ingest_request_bytes",
    "Size of an ingestion request's body as sent (before decompression), by endpoint and outcome.",
    ["endpoint", "outcome"],
    buckets=(256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864),
)
STORED_OBSERVATIONS = counter("choreoscope_observations_stored_total", "Observations stored as new rows, by kind.", ["kind"])
REJECTED_OBSERVATIONS = counter(
    "choreoscope_observations_rejected_total",
    "Observations not stored from requests that were answered 2xx, by kind and reason "
    "(duplicate: already stored; invalid: refused by the decoder, as OTLP partial success says).",
    ["kind", "reason"],
)

OUTCOME_OF_STATUS = {401: "unauthorized", 429: "throttled", 503: "unavailable"}


def ingest_outcome(status: int, partial: bool = False) -> str:
    """accepted, partial, rejected (bad input), unauthorized, throttled (429) or unavailable (503)."""
    if status < 300:
        return "partial" if partial else "accepted"
    return OUTCOME_OF_STATUS.get(status, "rejected")


def received_bytes(request: HttpRequest) -> int | None:
    """The body's size on the wire: its Content-Length, else the body already read."""
    try:
        declared = request.META.get("CONTENT_LENGTH")
        return int(declared) if declared else len(request.body)
    except Exception:  # a body that cannot be read or a bad header was already answered with a 4xx
        return None


def observe_ingest(endpoint: str, status: int, partial: bool, seconds: float, size: int | None) -> None:
    outcome = ingest_outcome(status, partial)
    INGEST_REQUESTS.labels(endpoint, str(status)).inc()
    INGEST_SECONDS.labels(endpoint, outcome).observe(seconds)
    if size is not None:
        INGEST_BYTES.labels(endpoint, outcome).observe(size)


def observe_stored(kind: str, accepted: int, result: StoreResult) -> None:
    INGESTED_OBSERVATIONS.labels(kind).inc(accepted)
    STORED_OBSERVATIONS.labels(kind).inc(result.inserted)
    if result.duplicates:
        REJECTED_OBSERVATIONS.labels(kind, "duplicate").inc(result.duplicates)


def observe_rejected(kind: str, reason: str, count: int) -> None:
    if count:
        REJECTED_OBSERVATIONS.labels(kind, reason).inc(count)


TAP_MESSAGES = counter(
    "choreoscope_tap_messages_total",
    "Messages an event-bus tap settled, by tap (redis-stream, rabbitmq, nats) and outcome: stored (committed, "
    "then acknowledged) or rejected (not a valid CloudEvent; logged with why, and not redelivered).",
    ["tap", "outcome"],
)


def observe_tap_batch(tap: str, outcome: str, seconds: float, size: int) -> None:
    """A tap's batch in the same series as an HTTP or gRPC request, as endpoint ``tap_<tap>``:
    from decoding to commit, and the bytes of its messages."""
    INGEST_SECONDS.labels(f"tap_{tap}", outcome).observe(seconds)
    INGEST_BYTES.labels(f"tap_{tap}", outcome).observe(size)


def observe_tap_messages(tap: str, outcome: str, number: int) -> None:
    if number:
        TAP_MESSAGES.labels(tap, outcome).inc(number)


# --- queue lag -----------------------------------------------------------------------------------


def queue_lag_samples(lag: LagReadings) -> Iterator[tuple[tuple[str, str, str, str], float]]:
    for reading in lag.readings:
        yield (reading.bus, reading.destination, reading.consumer, "waiting"), float(reading.waiting)
        if reading.unacknowledged is not None:
            yield (reading.bus, reading.destination, reading.consumer, "unacknowledged"), float(reading.unacknowledged)


def gauges() -> Iterator[Metric]:
    lag = current_lag()
    yield gauge_family(
        "choreoscope_queue_lag_messages",
        "Messages a watched stream or queue holds for a consumer: waiting (not yet delivered) or unacknowledged "
        "(delivered, not yet acknowledged; RabbitMQ does not say without its management plugin).",
        ["bus", "destination", "consumer", "state"],
        queue_lag_samples(lag),
    )
    yield gauge_family(
        "choreoscope_queue_lag_source_failed",
        "1 when a watched bus did not answer for its lag at the last reading.",
        ["bus"],
        (((source,), float(source in lag.unavailable)) for source in lag.sources),
    )
