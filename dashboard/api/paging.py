"""Cursor paging of the JSON API's lists (flows, alerts) and the pages that share them.

A list is newest first by (instant, id); a cursor is that pair for the last row of a page,
base64url-encoded JSON, opaque to clients. Selectors take the decoded position and a limit; this
module asks them for one row more than a page to learn whether another page follows.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from django.utils.dateparse import parse_datetime

from dashboard.api.params import InvalidQuery, in_utc

Row = TypeVar("Row")
Position = tuple[datetime, int]


@dataclass(frozen=True)
class Page(Generic[Row]):
    rows: list[Row]
    next_cursor: str | None  # None on the last page


def encode_cursor(position: Position) -> str:
    at, row_id = position
    raw = json.dumps([at.isoformat(), row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


MAX_ROW_ID = 2**63 - 1  # ids are 64-bit
MAX_CURSOR_LENGTH = 200  # a handed-out cursor is about 60 characters


def decode_cursor(cursor: str) -> Position:
    try:
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise ValueError(cursor)
        at_text, row_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        at = parse_datetime(at_text)
        if at is None or not isinstance(row_id, int) or isinstance(row_id, bool) or not 0 <= row_id <= MAX_ROW_ID:
            raise ValueError(cursor)
        at = in_utc("cursor", at)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, RecursionError):
        # InvalidQuery is a ValueError too: an instant UTC cannot hold lands here with the rest.
        raise InvalidQuery("'cursor' is not one this server handed out; start again without it.") from None
    return at, row_id


def paginate(
    fetch: Callable[[Position | None, int], list[Row]], position_of: Callable[[Row], Position], cursor: str | None, limit: int
) -> Page[Row]:
    """One page from ``fetch(after, limit)``, which returns up to ``limit`` rows after ``after``."""
    rows = fetch(decode_cursor(cursor) if cursor else None, limit + 1)
    if len(rows) > limit:
        return Page(rows[:limit], encode_cursor(position_of(rows[limit - 1])))
    return Page(rows, None)
