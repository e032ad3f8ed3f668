"""Form fields of the alerts admin."""

from __future__ import annotations

import math
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput

INT64 = 2**63


def unstorable(value: Any, max_depth: int) -> str | None:
    """Why a parsed JSON value cannot be stored and shown again, or None. PostgreSQL's jsonb
    refuses NUL and unpaired surrogates in strings and numbers that are not finite; the pages'
    and the API's encoders refuse integers past 64 bits and nesting past 255 levels. Walked with
    an explicit stack: no recursion."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item or (not item.isascii() and _has_surrogate(item)):
                return "A string holds a NUL character or an unpaired surrogate."
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not -INT64 <= item < INT64:
                return "A number is beyond what a 64-bit integer holds."
        elif isinstance(item, float):
            if not math.isfinite(item):
                return "A number is not finite."
        elif depth >= max_depth:
            return f"The value nests deeper than {max_depth} levels."
        elif isinstance(item, dict):
            stack.extend((child, depth + 1) for pair in item.items() for child in pair)
        else:
            stack.extend((child, depth + 1) for child in item)
    return None


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class StoredJSONField(forms.JSONField):
    """JSON typed into the admin. An empty box is an empty list: the columns are lists and NOT
    NULL, and Django's own field would turn it into NULL (an IntegrityError, a 500). Text that
    ``json`` cannot parse without going past its recursion or digit limits, and values the
    database or the pages could not hold (see ``unstorable``), are form errors."""

    def to_python(self, value: Any) -> Any:
        if value in self.empty_values:
            return []
        try:
            converted = super().to_python(value)
        except (RecursionError, ValueError):  # nesting past the recursion limit, 4,300+ digits
            raise ValidationError(self.error_messages["invalid"], code="invalid") from None
        problem = unstorable(converted, settings.MAX_DEPTH)
        if problem:
            raise ValidationError(problem, code="unstorable")
        return converted

    def bound_data(self, data: Any, initial: Any) -> Any:
        """The box's text shown again as it was typed when it is not a value that can be stored."""
        try:
            value = super().bound_data(data, initial)
        except (RecursionError, ValueError):
            return InvalidJSONInput(data)
        if not isinstance(value, InvalidJSONInput) and unstorable(value, settings.MAX_DEPTH):
            return InvalidJSONInput(data)
        return value
