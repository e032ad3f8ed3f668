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


@pytest.fixture(autouse=True)
def _stored_observations_published_by_the_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process, the sockets run on the test's event loop and the in-memory channel layer is
    not thread-safe: the stored stage is published by the test (``tests.live.sockets``), from the
    loop's own threads, rather than by the publisher's background thread. Real servers (the
    end-to-end and browser tests) publish from that thread."""
    from dashboard import live_feed

    monkeypatch.setattr(live_feed, "stored_stream", live_feed.StoredStream(background=False))
