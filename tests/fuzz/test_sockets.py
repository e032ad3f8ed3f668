"""The live sockets, fuzzed with what a hostile page could send: any text, any JSON, requests with
odd filters and windows. Each message is answered (an error or a snapshot), the socket stays open,
and a plain resync afterwards still gets its snapshot."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from hypothesis import given
from hypothesis import strategies as st

from dashboard import consumers
from tests.fuzz import fuzz_settings
from tests.fuzz.strategies import ANY_JSON, TEXT, json_text
from tests.live.sockets import connect
from tests.tracing.factories import checkout_flow

pytestmark = pytest.mark.django_db(transaction=True)

# Found by this test: arrays nested past Python's recursion limit crashed the consumer, and a NUL
# in a stream filter reached PostgreSQL.
DEEP_ARRAYS = "[" * 100_000 + "]" * 100_000  # past any recursion limit (Hypothesis raises it)
NUL_FILTER = json.dumps({"type": "subscribe", "filters": {"key": "\x00"}})
REQUESTS = st.one_of(
    st.sampled_from([DEEP_ARRAYS, NUL_FILTER]),
    TEXT,
    ANY_JSON.map(json_text),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["subscribe", "snapshot"]) | TEXT},
        optional={
            "filters": st.dictionaries(st.sampled_from(["service", "type", "key", "status"]) | TEXT, TEXT | ANY_JSON) | ANY_JSON,
            "window": TEXT | ANY_JSON,
        },
    ).map(json_text),
)


@pytest.fixture(autouse=True)
def _no_request_spacing(monkeypatch):
    monkeypatch.setattr(consumers, "MIN_REQUEST_SECONDS", 0)


async def answer_to(communicator) -> dict:
    """The socket's next answer to the page, skipping live deltas (pushed whenever something is
    published: a stream batch stored just before this test can still be on its way)."""
    while True:
        message = await communicator.receive_json_from(timeout=5)
        if message["type"] != "delta":
            return message


async def exchange(path: str, messages: list[str]) -> None:
    communicator = await connect(path)
    try:
        first = await answer_to(communicator)
        assert first["type"] == "snapshot"
        for message in messages:
            if message:
                await communicator.send_to(text_data=message)
            else:  # an empty text frame cannot be sent; a binary frame stands in for it
                await communicator.send_to(bytes_data=b"\xff")
            answer = await answer_to(communicator)
            assert answer["type"] in ("error", "snapshot"), answer
            if answer["type"] == "error":
                assert answer["message"]
        await communicator.send_to(text_data=json.dumps({"type": "snapshot"}))
        assert (await answer_to(communicator))["type"] == "snapshot"
    finally:
        await communicator.disconnect()


@pytest.fixture(scope="module")
def flow_path() -> dict[str, str]:
    return {}


@fuzz_settings(40)
@given(
    path=st.sampled_from(["/ws/stream/", "/ws/topology/", "/ws/alerts/", "flow"]),
    messages=st.lists(REQUESTS, min_size=1, max_size=4),
)
def test_socket_messages_get_an_answer_and_the_socket_stays_usable(path, messages, flow_path):
    if path == "flow":
        if "flow" not in flow_path:
            flow_path["flow"] = f"/ws/flows/{checkout_flow().flow().id}/"
        path = flow_path["flow"]
    async_to_sync(exchange)(path, [message.encode("utf-8", "surrogatepass").decode("utf-8", "replace") for message in messages])


@pytest.mark.parametrize("message", [DEEP_ARRAYS, NUL_FILTER])
def test_deep_arrays_and_nul_filters_get_an_error_and_the_socket_stays_usable(message):
    async_to_sync(exchange)("/ws/stream/", [message])
