"""AsyncAPI 3.0 documents, parsed here and nowhere else: one document describes one application
(a service), what it sends and what it receives, on which channels, with which payloads.

A document is validated against the official AsyncAPI 3.0.0 JSON Schema (``asyncapi_schema/``,
from the AsyncAPI Initiative's ``@asyncapi/specs`` 6.11.1, Apache-2.0) with ``jsonschema``;
local ``$ref``s (``#/components/...``) are followed, external ones are refused. What comes out
is plain data (``Application``): the service, its sent and received messages, each message's
channel, payload schema and ``correlationId`` location.

The service is ``info.x-service`` when given, else ``info.title`` (the name its spans carry as
``service.name`` and its CloudEvents as ``source``). A message is known by its ``name``, else by
the key of the component or channel entry that declares it: the CloudEvents ``type`` its events
carry. Errors raise ``ImproperlyConfigured`` naming the source and the path in the document.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from django.core.exceptions import ImproperlyConfigured
from jsonschema import Draft7Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

SCHEMA_FILE = Path(__file__).parent / "asyncapi_schema" / "asyncapi-3.0.0.json"
MAX_REF_HOPS = 32  # a chain of $refs longer than this is a loop
JSON_SCHEMA_FORMATS = ("application/vnd.aai.asyncapi", "application/schema+json")


@dataclass(frozen=True)
class Message:
    """One message of one application's operations."""

    name: str
    channel: str  # the channel's address, else its key
    payload_pointer: str = ""  # JSON pointer of the payload schema in the document, '' if none
    correlation_path: str = ""  # as a flow definition's key path: data.order_id, or an attribute


@dataclass(frozen=True)
class Receive:
    """``service`` receives ``message``; ``replies`` are what it sends in reaction, if declared."""

    message: Message
    replies: tuple[str, ...] = ()
    within: Any = None  # the operation's x-within, a duration as flow definitions write it


@dataclass(frozen=True)
class Application:
    source: str  # where the document came from, for messages
    service: str
    sends: tuple[Message, ...] = ()
    receives: tuple[Receive, ...] = ()
    document: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


# --- The official schema -------------------------------------------------------------------------


@cache
def asyncapi_validator() -> Draft7Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    # The bundle carries every definition under its own $id; register them so refs resolve offline.
    resources = [(schema["$id"], DRAFT7.create_resource(schema))]
    resources += [(d["$id"], DRAFT7.create_resource(d)) for d in schema["definitions"].values() if "$id" in d]
    return Draft7Validator(schema, registry=Registry().with_resources(resources))


def _pointer(parts: list[str | int]) -> str:
    return "".join(f"/{str(p).replace('~', '~0').replace('/', '~1')}" for p in parts)


def _schema_error(document: dict[str, Any], source: str) -> str | None:
    error = best_match(asyncapi_validator().iter_errors(document))
    if error is None:
        return None
    where = _pointer(list(error.absolute_path)) or "/"
    return f"{source}, {where}: {error.message[:300]}"


# --- Following $refs -----------------------------------------------------------------------------


def _unescape(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


def _at_pointer(document: Any, pointer: str, source: str) -> Any:
    node = document
    for raw in pointer.split("/")[1:] if pointer else []:
        part = _unescape(raw)
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise ImproperlyConfigured(f"{source}: $ref '#{pointer}' points at nothing in the document.")
    return node


def resolve(document: dict[str, Any], node: Any, pointer: str, source: str) -> tuple[Any, str]:
    """``node`` (at ``pointer``) with its ``$ref`` chain followed: the target and its pointer."""
    for _ in range(MAX_REF_HOPS):
        if not isinstance(node, dict) or "$ref" not in node:
            return node, pointer
        ref = node["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#"):
            where = pointer or "/"
            raise ImproperlyConfigured(f"{source}, {where}: only local $refs ('#/components/...') are read, not {ref!r}.")
        pointer = ref[1:]
        node = _at_pointer(document, pointer, source)
    raise ImproperlyConfigured(f"{source}, {pointer}: the $refs form a loop.")


# --- Reading the parts -----------------------------------------------------------------------------


def correlation_path(location: str) -> str:
    """A runtime expression as a key path: ``$message.payload#/order/id`` → ``data.order.id``,
    ``$message.header#/correlationid`` → ``correlationid`` (a CloudEvents extension attribute)."""
    head, _, pointer = location.partition("#")
    parts = [_unescape(p) for p in pointer.split("/")[1:]]
    if not parts or not all(parts):
        return ""
    if head == "$message.payload":
        return "data." + ".".join(parts)
    if head == "$message.header":
        return ".".join(parts)
    return ""


def _message(document: dict[str, Any], entry: Any, key: str, pointer: str, channel: str, source: str) -> Message:
    ref = entry.get("$ref", "") if isinstance(entry, dict) else ""
    node, at = resolve(document, entry, pointer, source)
    if not isinstance(node, dict):
        raise ImproperlyConfigured(f"{source}, {at}: a message must be an object.")
    # A message in components is named by its key there; one declared inline by its channel key.
    named_by = _unescape(ref.rsplit("/", 1)[-1]) if ref else key
    name: str = node["name"] if isinstance(node.get("name"), str) and node["name"] else named_by
    payload_pointer = ""
    if "payload" in node:
        payload, payload_at = resolve(document, node["payload"], f"{at}/payload", source)
        if isinstance(payload, dict) and "schemaFormat" in payload:  # a Multi Format Schema Object
            schema_format = str(payload.get("schemaFormat", ""))
            if schema_format.startswith(JSON_SCHEMA_FORMATS):
                payload_pointer = resolve(document, payload.get("schema"), f"{payload_at}/schema", source)[1]
        elif isinstance(payload, dict | bool):
            payload_pointer = payload_at
    location = ""
    if "correlationId" in node:
        correlation, _ = resolve(document, node["correlationId"], f"{at}/correlationId", source)
        location = correlation.get("location", "") if isinstance(correlation, dict) else ""
    return Message(name, channel, payload_pointer, correlation_path(location) if isinstance(location, str) else "")


def _channel(document: dict[str, Any], ref_holder: Any, where: str, source: str) -> tuple[dict[str, Any], str, str]:
    node, at = resolve(document, ref_holder, where, source)
    if not isinstance(node, dict):
        raise ImproperlyConfigured(f"{source}, {where}: 'channel' must refer to a channel ('$ref: #/channels/...').")
    address = node.get("address")
    name = address if isinstance(address, str) and address else _unescape(at.rsplit("/", 1)[-1])
    return node, at, name


def _operation_messages(document: dict[str, Any], operation: dict[str, Any], where: str, source: str) -> tuple[Message, ...]:
    listed = operation.get("messages")
    channel_name = ""
    if "channel" in operation or listed is None:
        channel, channel_at, channel_name = _channel(document, operation.get("channel"), f"{where}/channel", source)
    if listed is None:  # AsyncAPI 3: an operation without 'messages' covers all of its channel's
        entries = channel.get("messages") or {}
        return tuple(
            _message(document, entry, key, f"{channel_at}/messages/{_pointer([key])[1:]}", channel_name, source)
            for key, entry in entries.items()
        )
    return tuple(
        _message(document, entry, "", f"{where}/messages/{index}", channel_name, source) for index, entry in enumerate(listed)
    )


def _replies(document: dict[str, Any], operation: dict[str, Any], where: str, source: str) -> tuple[str, ...]:
    """What the operation's ``reply`` sends: the service's declared reaction to what it receives."""
    if "reply" not in operation:
        return ()
    reply, at = resolve(document, operation["reply"], f"{where}/reply", source)
    if not isinstance(reply, dict) or not ("channel" in reply or "messages" in reply):
        return ()
    return tuple(m.name for m in _operation_messages(document, reply, at, source))


def _service(document: dict[str, Any], source: str) -> str:
    info = document.get("info") or {}
    service = info.get("x-service") or info.get("title")
    if not isinstance(service, str) or not service.strip():
        raise ImproperlyConfigured(f"{source}, /info: name the application's service in 'x-service' or 'title'.")
    return service.strip()


def application_from(document: Any, source: str) -> Application:
    """The application a parsed document describes; ``ImproperlyConfigured`` if it is not a valid
    AsyncAPI 3 document."""
    if not isinstance(document, dict):
        raise ImproperlyConfigured(f"{source}: expected an AsyncAPI document (a mapping starting 'asyncapi: 3.0.0').")
    version = document.get("asyncapi")
    if not isinstance(version, str) or not version.startswith("3."):
        raise ImproperlyConfigured(f"{source}, /asyncapi: only AsyncAPI 3 documents are read, not version {version!r}.")
    problem = _schema_error(document, source)
    if problem:
        raise ImproperlyConfigured(problem)
    sends: list[Message] = []
    receives: list[Receive] = []
    for key, entry in (document.get("operations") or {}).items():
        where = f"/operations/{_pointer([key])[1:]}"
        operation, at = resolve(document, entry, where, source)
        messages = _operation_messages(document, operation, at, source)
        if operation.get("action") == "send":
            sends += messages
        else:
            replies = _replies(document, operation, at, source)
            receives += [Receive(message, replies, operation.get("x-within")) for message in messages]
    return Application(source, _service(document, source), tuple(sends), tuple(receives), document)


def load_document(text: str | bytes, source: str) -> Any:
    """YAML or JSON (JSON is YAML) text, safely loaded."""
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f", line {mark.line + 1}" if mark else ""
        raise ImproperlyConfigured(f"{source}{line}: not valid YAML or JSON: {error.problem or error.context}.") from None
    except (yaml.YAMLError, ValueError, RecursionError) as error:
        raise ImproperlyConfigured(f"{source}: not valid YAML or JSON ({type(error).__name__}).") from None


def parse_asyncapi(text: str | bytes, source: str) -> Application:
    try:
        return application_from(load_document(text, source), source)
    except RecursionError:
        raise ImproperlyConfigured(f"{source}: the document is nested too deeply to read.") from None


def payload_validator(application: Application, message: Message) -> Draft7Validator | None:
    """A validator of ``message``'s payload schema, resolving refs within its document."""
    if not message.payload_pointer:
        return None
    uri = f"urn:choreoscope:asyncapi:{id(application)}"
    resource = Resource.from_contents(application.document, default_specification=DRAFT7)
    registry: Registry[Any] = Registry().with_resource(uri, resource)
    return Draft7Validator({"$ref": f"{uri}#{message.payload_pointer}"}, registry=registry)
