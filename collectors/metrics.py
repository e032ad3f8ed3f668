"""What ingestion counts, exposed on ``/metrics``."""

from __future__ import annotations

from choreoscope.metrics import Counter

INGEST_REQUESTS = Counter("choreoscope_ingest_requests_total", "Ingestion requests answered, by endpoint and HTTP status.")
INGESTED_OBSERVATIONS = Counter(
    "choreoscope_ingested_observations_total", "Observations accepted by ingestion (before de-duplication), by kind."
)
