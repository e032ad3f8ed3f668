"""The OpenAPI document, generated from the declarations the views themselves use: each API module
lists its ``Operation``s (its ``Parameter`` rows from ``dashboard.api.params``, its response
``TypedDict``s from ``dashboard.api.serializers``), and ``json_schema`` turns those types into
JSON Schema. Nothing here is written twice, so the document cannot drift from the answers."""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints, is_typeddict

from dashboard.api.params import Parameter
from dashboard.api.serializers import Error, Schema

PRIMITIVES = {int: "integer", float: "number", str: "string", bool: "boolean"}


@dataclass(frozen=True)
class Response:
    description: str
    body: Any = None  # a TypedDict of dashboard.api.serializers


BAD_REQUEST = Response("A parameter is invalid; the message says which and why.", Error)
UNAUTHORIZED = Response("No session and no valid read token.", Error)
NOT_FOUND = Response("No such resource.", Error)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # as OpenAPI writes it: /api/flows/{id}; every {name} is an integer id
    summary: str
    responses: Mapping[int, Response]
    parameters: Sequence[Parameter] = ()


def json_schema(declared: Any, components: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a declared type; each TypedDict becomes a named component."""
    origin, args = get_origin(declared), get_args(declared)
    if origin is Annotated:
        schema = json_schema(args[0], components)
        for meta in declared.__metadata__:
            if isinstance(meta, Schema):
                schema = {**schema, **meta.keywords}
        return schema
    if is_typeddict(declared):
        return {"$ref": f"#/components/schemas/{component(declared, components)}"}
    if origin in (Union, types.UnionType):
        [declared_arm] = [arg for arg in args if arg is not type(None)]  # only "X | None" is declared
        return nullable(json_schema(declared_arm, components))
    if origin is Literal:
        return {"type": "string", "enum": list(args)}
    if origin is list:
        return {"type": "array", "items": json_schema(args[0], components)}
    if origin is dict or declared is dict:
        return {"type": "object"}
    if declared is Any:
        return {}
    if declared in PRIMITIVES:
        return {"type": PRIMITIVES[declared]}
    raise TypeError(f"No JSON Schema for {declared!r}: declare it with TypedDict, list, dict, Literal or a primitive.")


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if isinstance(schema.get("type"), str) and "enum" not in schema:
        return {**schema, "type": [schema["type"], "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def component(shape: Any, components: dict[str, Any]) -> str:
    name: str = shape.__name__
    if name not in components:
        components[name] = {}  # claimed first, so a shape that refers to itself ends
        hints = get_type_hints(shape, include_extras=True)
        components[name] = {
            "type": "object",
            "required": [key for key in hints if key in shape.__required_keys__],
            "properties": {key: json_schema(declared, components) for key, declared in hints.items()},
        }
    return name


def response_object(response: Response, components: dict[str, Any]) -> dict[str, Any]:
    described: dict[str, Any] = {"description": response.description}
    if response.body is not None:
        described["content"] = {"application/json": {"schema": json_schema(response.body, components)}}
    return described


def operation_object(operation: Operation, components: dict[str, Any]) -> dict[str, Any]:
    path_ids = [part[1:-1] for part in operation.path.split("/") if part.startswith("{")]
    parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "integer"}} for name in path_ids]
    parameters += [parameter.openapi() for parameter in operation.parameters]
    described: dict[str, Any] = {"summary": operation.summary}
    if parameters:
        described["parameters"] = parameters
    described["responses"] = {str(code): response_object(r, components) for code, r in sorted(operation.responses.items())}
    return described


INFO = {
    "title": "Choreoscope API",
    "version": "1",
    "description": "Flows rebuilt from CloudEvents and OpenTelemetry spans, the service map, and alerts. "
    "Authenticate with a logged-in session or 'Authorization: Bearer <token>' (scope read).",
}
SECURITY_SCHEMES = {
    "session": {"type": "apiKey", "in": "cookie", "name": "sessionid"},
    "bearer": {"type": "http", "scheme": "bearer"},
}


def openapi_document(operations: Iterable[Operation]) -> dict[str, Any]:
    components: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        paths.setdefault(operation.path, {})[operation.method] = operation_object(operation, components)
    return {
        "openapi": "3.1.0",
        "info": INFO,
        "security": [{"session": []}, {"bearer": []}],
        "paths": paths,
        "components": {"securitySchemes": SECURITY_SCHEMES, "schemas": dict(sorted(components.items()))},
    }
