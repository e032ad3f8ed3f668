"""Signals tracing sends so that other apps can react without tracing importing them.

``observations_stored`` is sent inside the ingestion transaction, once per stored request:
- ``stored``: ``[(observation id, ObservationRecord), ...]`` of the rows it inserted (not the
  duplicates), not yet correlated;
- ``received_at``: their receipt time.
Receivers must be cheap (they run on the ingestion path) and defer anything they send with
``transaction.on_commit``.

``flows_changed`` is sent inside the correlation transaction, once per correlated batch:
- ``flow_ids``: ids of the surviving flows whose observations, edges or summary changed;
- ``observation_ids``: ids of the observations correlated in this batch;
- ``merged``: {absorbed flow id: surviving flow id} for flows merged in this batch.
Receivers that write do so in the same transaction, and only to their own app's tables (alerts
recomputes its watch over the flows; it never writes a flow); receivers that broadcast must defer
with ``transaction.on_commit``.
"""

from django.dispatch import Signal

flows_changed = Signal()
observations_stored = Signal()
