"""Checking real socket messages against their declarations in ``dashboard.live_messages``.

Which declaration applies to a socket is read from its consumer's annotations: ``snapshot``
returns its snapshot message, ``coalesce`` its delta message(s) and takes its group's
publications. So the check follows the code; a consumer that sends something else fails it.
"""

from __future__ import annotations

import json
import types
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NotRequired, Union, get_args, get_origin, get_type_hints, is_typeddict

from dashboard.consumers import LiveConsumer
from dashboard.live_messages import ErrorMessage


class ShapeError(AssertionError):
    pass


def _without_annotation(hint: Any) -> Any:
    """``Annotated[T, …]`` (the API's documentation of a field) is checked as ``T``."""
    return get_args(hint)[0] if get_origin(hint) is Annotated else hint


def check(value: Any, declared: Any, where: str = "message") -> None:
    """Raise ``ShapeError`` naming the first place where ``value`` (decoded JSON) is not ``declared``."""
    declared = _without_annotation(declared)
    origin = get_origin(declared)
    if declared is Any:
        return
    if declared is None or declared is type(None):
        _expect(value is None, where, "null", value)
    elif origin is Literal:
        _expect(value in get_args(declared), where, f"one of {get_args(declared)}", value)
    elif origin is Union or origin is types.UnionType:
        _check_union(value, get_args(declared), where)
    elif is_typeddict(declared):
        _check_typeddict(value, declared, where)
    elif origin is list:
        _expect(isinstance(value, list), where, "a list", value)
        for index, item in enumerate(value):
            check(item, get_args(declared)[0], f"{where}[{index}]")
    elif origin is dict:
        _expect(isinstance(value, dict), where, "an object", value)
        key_type, value_type = get_args(declared)
        for key, item in value.items():
            check(key, key_type, f"{where} key {key!r}")
            check(item, value_type, f"{where}[{key!r}]")
    elif declared is float:
        _expect(isinstance(value, int | float) and not isinstance(value, bool), where, "a number", value)
    elif declared is int:
        _expect(isinstance(value, int) and not isinstance(value, bool), where, "an integer", value)
    elif declared in (str, bool):
        _expect(isinstance(value, declared), where, declared.__name__, value)
    else:
        raise TypeError(f"{where}: the checker does not know {declared!r}")


def _expect(ok: bool, where: str, wanted: str, value: Any) -> None:
    if not ok:
        raise ShapeError(f"{where}: expected {wanted}, got {value!r:.200}")


def _check_union(value: Any, options: tuple[Any, ...], where: str) -> None:
    problems = []
    for option in options:
        try:
            check(value, option, where)
            return
        except ShapeError as problem:
            problems.append(str(problem))
    raise ShapeError(" / ".join(problems) if len(problems) > 1 else problems[0])


def _check_typeddict(value: Any, declared: Any, where: str) -> None:
    _expect(isinstance(value, dict), where, f"an object ({declared.__name__})", value)
    # Read NotRequired from the hints: with postponed annotations, Python 3.11's
    # ``__optional_keys__`` does not see it.
    hints = get_type_hints(declared, include_extras=True)
    extra = set(value) - set(hints)
    _expect(not extra, where, f"only the fields of {declared.__name__}", sorted(extra))
    for name, hint in hints.items():
        hint = _without_annotation(hint)
        if name in declared.__optional_keys__ and get_origin(hint) is not NotRequired:
            hint = NotRequired[hint]  # a ``total=False`` class's field
        optional = get_origin(hint) is NotRequired
        if name not in value:
            _expect(optional, where, f"field {name!r} ({declared.__name__})", value)
            continue
        check(value[name], get_args(hint)[0] if optional else hint, f"{where}.{name}")


# --- Which declaration applies to which socket ---------------------------------------------------


def _without_none(hint: Any) -> Any:
    options = [option for option in get_args(hint) or (hint,) if option is not type(None)]
    return Union[tuple(options)]  # noqa: UP007 -- built from a runtime list


def sent_messages(consumer: type[LiveConsumer]) -> Any:
    """Everything ``consumer`` may send a page."""
    snapshot = get_type_hints(consumer.snapshot)["return"]
    delta = _without_none(get_type_hints(consumer.coalesce)["return"])
    return Union[snapshot, delta, ErrorMessage]  # noqa: UP007


def heard_publications(consumer: type[LiveConsumer]) -> Any:
    """The ``data`` of the group messages ``consumer`` merges into deltas."""
    return get_args(get_type_hints(consumer.coalesce)["datas"])[0]


# --- Capturing what the sockets really send and hear ---------------------------------------------


@dataclass
class Captured:
    sent: list[tuple[type[LiveConsumer], dict[str, Any]]] = field(default_factory=list)
    heard: list[tuple[type[LiveConsumer], dict[str, Any]]] = field(default_factory=list)

    def check_all(self) -> None:
        for consumer, message in self.sent:
            check(message, sent_messages(consumer), f"{consumer.__name__} sent {message.get('type')!r}")
        for consumer, data in self.heard:
            check(data, heard_publications(consumer), f"{consumer.__name__} heard")

    def kinds_sent(self, consumer: type[LiveConsumer]) -> set[str]:
        return {message["type"] for sender, message in self.sent if sender is consumer}


def capture(monkeypatch: Any) -> Captured:
    """Record every message the live consumers send (as the page decodes it) and every group
    publication they hear, from now to the end of the test."""
    captured = Captured()
    send_json, live_delta = LiveConsumer.send_json, LiveConsumer.live_delta

    async def recording_send_json(self: LiveConsumer, content: Any, close: bool = False) -> None:
        captured.sent.append((type(self), json.loads(json.dumps(content))))
        await send_json(self, content, close)

    async def recording_live_delta(self: LiveConsumer, message: dict[str, Any]) -> None:
        captured.heard.append((type(self), json.loads(json.dumps(message["data"]))))
        await live_delta(self, message)

    monkeypatch.setattr(LiveConsumer, "send_json", recording_send_json)
    monkeypatch.setattr(LiveConsumer, "live_delta", recording_live_delta)
    return captured
