"""Set-based writes for correlation's hot path, on PostgreSQL and SQLite alike.

Django's ``bulk_update`` builds one ``CASE WHEN`` expression per row and field in Python, and
``bulk_create`` one model instance per row; for correlation's batch sizes that costs more than
the database's work. These take plain tuples. On PostgreSQL each column travels as one array
parameter (``UNNEST``), so the statement text stays short whatever the row count; on SQLite, a
multi-row ``VALUES`` list in a CTE. Inserts skip rows that break a unique constraint.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import BooleanField, DateTimeField, Field, JSONField, Model

MAX_PARAMETERS = 30_000  # under SQLite's 32,766 variables per statement


def _fields(model: type[Model], names: Sequence[str]) -> list[Field]:
    return [model._meta.get_field(name) for name in names]  # type: ignore[misc]


def _column(field: Field) -> str:
    assert field.column is not None  # concrete fields only
    return connection.ops.quote_name(field.column)


def _array_type(field: Field) -> str:
    if isinstance(field, JSONField):
        return "text"  # sent as JSON text, cast to jsonb in the statement
    if isinstance(field, DateTimeField):
        return "timestamptz"
    if isinstance(field, BooleanField):
        return "boolean"
    if field.get_internal_type() in {"CharField", "TextField"}:
        return "text"
    return "bigint"  # integers and foreign keys


def _column_values(field: Field, values: list[Any]) -> list[Any]:
    if isinstance(field, JSONField):
        return [json.dumps(value, separators=(",", ":")) for value in values]
    return values


def _postgres_source(fields: list[Field], rows: Sequence[Sequence[Any]], aliases: list[str]) -> tuple[str, list[Any]]:
    arrays = [f"%s::{_array_type(field)}[]" for field in fields]
    params = [_column_values(field, [row[index] for row in rows]) for index, field in enumerate(fields)]
    return f"UNNEST({', '.join(arrays)}) AS v({', '.join(aliases)})", params


def _value(alias: str, field: Field) -> str:
    if connection.vendor == "postgresql" and isinstance(field, JSONField):
        return f"CAST(v.{alias} AS jsonb)"
    if connection.vendor == "postgresql" and field.get_internal_type() in {"PositiveIntegerField", "IntegerField"}:
        return f"CAST(v.{alias} AS integer)"
    return f"v.{alias}"


def _sqlite_params(fields: list[Field], rows: Sequence[Sequence[Any]]) -> list[Any]:
    return [field.get_db_prep_save(value, connection) for row in rows for field, value in zip(fields, row, strict=True)]


def update_rows(model: type[Model], names: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """``UPDATE`` the named columns of rows keyed by primary key; each row is ``(pk, *values)``."""
    if not rows:
        return
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    pk = model._meta.pk
    assert pk is not None
    fields = [pk, *_fields(model, names)]
    aliases = ["pk", *(f"c{index}" for index in range(len(names)))]
    assignments = ", ".join(f"{_column(f)} = {_value(a, f)}" for f, a in zip(fields[1:], aliases[1:], strict=True))
    where = f"{table}.{_column(pk)} = v.pk"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            source, params = _postgres_source(fields, rows, aliases)
            cursor.execute(f"UPDATE {table} SET {assignments} FROM {source} WHERE {where}", params)  # noqa: S608 - model names
            return
        size = max(1, MAX_PARAMETERS // len(fields))
        row_placeholder = "(" + ", ".join(["%s"] * len(fields)) + ")"
        for start in range(0, len(rows), size):
            part = rows[start : start + size]
            cursor.execute(
                f"WITH v({', '.join(aliases)}) AS (VALUES {', '.join([row_placeholder] * len(part))}) "  # noqa: S608
                f"UPDATE {table} SET {assignments} FROM v WHERE {where}",
                _sqlite_params(fields, part),
            )


def insert_rows(model: type[Model], names: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """``INSERT`` rows, skipping those that break a unique constraint (idempotent writes)."""
    if not rows:
        return
    quote = connection.ops.quote_name
    fields = _fields(model, names)
    target = f"{quote(model._meta.db_table)} ({', '.join(_column(field) for field in fields)})"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            aliases = [f"c{index}" for index in range(len(fields))]
            source, params = _postgres_source(fields, rows, aliases)
            values = ", ".join(_value(alias, field) for alias, field in zip(aliases, fields, strict=True))
            cursor.execute(f"INSERT INTO {target} SELECT {values} FROM {source} ON CONFLICT DO NOTHING", params)  # noqa: S608
            return
        size = max(1, MAX_PARAMETERS // len(fields))
        row_placeholder = "(" + ", ".join(["%s"] * len(fields)) + ")"
        for start in range(0, len(rows), size):
            part = rows[start : start + size]
            cursor.execute(
                f"INSERT INTO {target} VALUES {', '.join([row_placeholder] * len(part))} ON CONFLICT DO NOTHING",  # noqa: S608
                _sqlite_params(fields, part),
            )


def remap_column(model: type[Model], name: str, mapping: dict[int, int]) -> None:
    """Rewrite an integer column (a foreign key) from old to new values: ``{old: new}``."""
    if not mapping:
        return
    table = connection.ops.quote_name(model._meta.db_table)
    column = _column(_fields(model, [name])[0])
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {table} SET {column} = m.new FROM UNNEST(%s::bigint[], %s::bigint[]) AS m(old, new) "  # noqa: S608
                f"WHERE {table}.{column} = m.old",
                [list(mapping), list(mapping.values())],
            )
            return
        pairs = list(mapping.items())
        for start in range(0, len(pairs), MAX_PARAMETERS // 2):
            part = pairs[start : start + MAX_PARAMETERS // 2]
            cursor.execute(
                f"WITH m(old, new) AS (VALUES {', '.join(['(%s, %s)'] * len(part))}) "  # noqa: S608
                f"UPDATE {table} SET {column} = m.new FROM m WHERE {table}.{column} = m.old",
                [value for pair in part for value in pair],
            )
