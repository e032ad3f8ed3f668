"""Every message a live socket sends or hears in these tests is checked against its declaration
in ``dashboard.live_messages`` (as Zulip checks its events against ``event_types.py``)."""

from collections.abc import Iterator

import pytest

from tests.live.message_shapes import Captured, capture


@pytest.fixture(autouse=True)
def socket_messages(monkeypatch: pytest.MonkeyPatch) -> Iterator[Captured]:
    captured = capture(monkeypatch)
    yield captured
    captured.check_all()
