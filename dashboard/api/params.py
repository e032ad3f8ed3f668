"""Query parameters of the JSON API (and of the pages that share its filters): each endpoint's
parameters declared once, as ``Parameter`` rows that both check a request and describe it in the
OpenAPI document, and the parsers that turn their raw text into plain, valid values.

A value a person sent that we cannot use raises ``InvalidQuery`` with a message saying how to fix it;
the views answer it with a 400.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.utils.dateparse import parse_datetime

from alerts.models import Alert
from alerts.status import ShownStatus
from tracing.contracts import KINDS as DRIFT_KINDS
from tracing.health import parse_window as health_window
from tracing.selectors import FlowFilters
from tracing.topology import WINDOWS
from tracing.topology import parse_window as window_from_text

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_TEXT = 255
UNESCAPED_OFFSET = re.compile(r"(\d) (\d{2}(?::?\d{2})?)$")


class InvalidQuery(ValueError):
    """A filter or cursor a person sent that we cannot use; the message says how to fix it."""


@dataclass(frozen=True)
class Parameter:
    name: str
    description: str
    schema: Mapping[str, Any]

    def openapi(self) -> dict[str, Any]:
        return {"name": self.name, "in": "query", "required": False, "description": self.description, "schema": dict(self.schema)}


def _text(**extra: Any) -> dict[str, Any]:
    return {"type": "string", **extra}


LIMIT_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}
LIMIT = Parameter("limit", "How many per page.", LIMIT_SCHEMA)
CURSOR = Parameter("cursor", "The 'next' value of the previous page.", _text())
FLOW_PARAMETERS = (
    Parameter("key", "Exact business key, e.g. order-1042.", _text(maxLength=MAX_TEXT)),
    Parameter("status", "Flow status.", _text(enum=list(ShownStatus.values))),
    Parameter("type", "Exact flow type.", _text(maxLength=MAX_TEXT)),
    Parameter("service", "Flows that touched this service.", _text(maxLength=MAX_TEXT)),
    Parameter("event_type", "Flows holding an event of this CloudEvents type.", _text(maxLength=MAX_TEXT)),
    Parameter("since", "Flows still active at or after this instant (ISO 8601).", _text(format="date-time")),
    Parameter("until", "Flows started before this instant (ISO 8601).", _text(format="date-time")),
    LIMIT,
    CURSOR,
)
FLOW_FILTER_NAMES = tuple(p.name for p in FLOW_PARAMETERS if p not in (LIMIT, CURSOR))
ALERT_PARAMETERS = (Parameter("state", "Alert state.", _text(enum=list(Alert.State.values))), LIMIT, CURSOR)
TOPOLOGY_PARAMETERS = (Parameter("window", "5m, 15m (default), 1h or 24h.", _text(enum=list(WINDOWS))),)
CONTRACT_PARAMETERS = (
    Parameter("kind", "Only rows of this kind.", _text(enum=list(DRIFT_KINDS))),
    Parameter("service", "Rows naming this service as producer, consumer or party.", _text(maxLength=MAX_TEXT)),
    *TOPOLOGY_PARAMETERS,
    LIMIT,
    CURSOR,
)
# The flows list's filters, without its paging: an export is one bounded document.
EXPORT_PARAMETERS = tuple(p for p in FLOW_PARAMETERS if p not in (LIMIT, CURSOR))
HEALTH_PARAMETERS = (
    Parameter("window", "5m, 15m, 1h (default) or 24h.", _text(enum=list(WINDOWS))),
    Parameter("service", "Only this service's rows (and the clock pairs it is an end of).", _text(maxLength=MAX_TEXT)),
)


def reject_unknown(names: Iterable[str], declared: Sequence[Parameter]) -> None:
    known = sorted(p.name for p in declared)
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise InvalidQuery(f"Unknown parameter(s) {', '.join(unknown)}; use {', '.join(known)}.")


def parse_limit(raw: str | None) -> int:
    if not raw:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise InvalidQuery(f"'limit' must be a whole number from 1 to {MAX_LIMIT}, not {raw[:40]!r}.") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidQuery(f"'limit' must be from 1 to {MAX_LIMIT}, not {limit}.")
    return limit


def parse_choice(name: str, raw: str | None, choices: Sequence[str]) -> str | None:
    if not raw:
        return None
    if raw not in choices:
        raise InvalidQuery(f"'{name}' must be one of {', '.join(choices)}, not {raw[:60]!r}.")
    return raw


def parse_text(name: str, raw: str | None) -> str | None:
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_TEXT:
        raise InvalidQuery(f"'{name}' is longer than {MAX_TEXT} characters.")
    if "\x00" in raw:
        raise InvalidQuery(f"'{name}' contains a NUL character, which no stored value holds.")
    return raw


def parse_instant(name: str, raw: str | None) -> datetime | None:
    """An ISO 8601 instant; a naive one is taken as UTC."""
    if not raw:
        return None
    # An unescaped '+' of a UTC offset arrives as a space: "12:00:00 02:00" means "12:00:00+02:00".
    try:
        value = parse_datetime(UNESCAPED_OFFSET.sub(r"\1+\2", raw.strip()))
    except ValueError:  # well formed but impossible, such as month 13
        value = None
    if value is None:
        raise InvalidQuery(f"'{name}' must be an ISO 8601 date-time such as 2026-01-31T12:00:00Z, not {raw[:60]!r}.")
    return in_utc(name, value)


def in_utc(name: str, value: datetime) -> datetime:
    """``value`` as UTC (a naive one taken as UTC). Databases differ in the offsets they take
    (PostgreSQL refuses ±16:00 and more) and Python's dates end at the years 1 and 9999, so an
    instant is handed on only in UTC, and one that UTC cannot express is refused."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InvalidQuery(f"'{name}' lies outside the years 1 to 9999 (UTC) that can be searched.") from None


@dataclass(frozen=True)
class FlowQuery:
    """What a flows list asks for: tracing's filters, and the displayed status (not tracing's to
    filter on: see ``alerts.status``)."""

    filters: FlowFilters
    status: str | None = None


def parse_flow_query(params: Mapping[str, str]) -> FlowQuery:
    texts = {name: parse_text(name, params.get(name)) for name in ("key", "type", "service", "event_type")}
    status = parse_choice("status", params.get("status"), ShownStatus.values)
    since, until = parse_instant("since", params.get("since")), parse_instant("until", params.get("until"))
    if since is not None and until is not None and since >= until:
        raise InvalidQuery("'since' must be earlier than 'until'.")
    return FlowQuery(FlowFilters(**texts, since=since, until=until), status)


@dataclass(frozen=True)
class ContractQuery:
    window: str
    seconds: int
    kind: str | None = None
    service: str | None = None


def parse_contract_query(params: Mapping[str, str]) -> ContractQuery:
    window, seconds = parse_window(params.get("window"))
    kind = parse_choice("kind", params.get("kind"), DRIFT_KINDS)
    return ContractQuery(window, seconds, kind, parse_text("service", params.get("service")))


def parse_alert_state(raw: str | None) -> str | None:
    return parse_choice("state", raw, Alert.State.values)


def parse_window(raw: str | None) -> tuple[str, int]:
    try:
        return window_from_text(raw)
    except ValueError as error:
        raise InvalidQuery(str(error)) from None


@dataclass(frozen=True)
class HealthQuery:
    """What a correlation-health report asks for: a window, and perhaps one service."""

    window: str
    seconds: int
    service: str | None = None


def parse_health_query(params: Mapping[str, str]) -> HealthQuery:
    try:
        window, seconds = health_window(params.get("window"))
    except ValueError as error:
        raise InvalidQuery(str(error)) from None
    return HealthQuery(window, seconds, parse_text("service", params.get("service")))
