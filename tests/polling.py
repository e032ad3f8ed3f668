"""Waiting for something a real server, worker or browser does in its own time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def eventually(
    what: str, check: Callable[[], T | None], timeout: float = 30.0, every: float = 0.2, explain: Callable[[], Any] | None = None
) -> T:
    """Call ``check`` until it returns something truthy, and return that; fail naming ``what``
    (and what ``explain()`` says about the state reached) once ``timeout`` seconds have passed.
    ``check`` may raise to stop waiting at once (a server that exited will never answer)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}" + (f": {explain()}" if explain else ""))
        time.sleep(every)
