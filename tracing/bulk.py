"""Set-based writes for correlation's hot path, on PostgreSQL and SQLite alike.

Django's ``bulk_update`` builds one ``CASE WHEN`` expression per row and field in Python, and
``bulk_create`` one model instance per row; for correlation's batch sizes that costs more than
the database's work. These take plain tuples. On PostgreSQL each column travels as one array
parameter (``UNNEST``), so the statement text stays short whatever the row count; on SQLite, a
multi-row ``VALUES`` list in a CTE. Inserts skip rows that break a unique constraint.

The PostgreSQL statements bind their parameters on the server, in binary: Django's cursors bind
in the client, quoting every array element into the statement text, which costs three to six
times more for the arrays of a batch (``bench correlation`` measures the whole path).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, cast

import psycopg
from django.db import connection
from django.db.backends.utils import CursorWrapper
from django.db.models import BooleanField, DateTimeField, Field, JSONField, Model, UUIDField

MAX_PARAMETERS = 30_000  # under SQLite's 32,766 variables per statement
IN_CHUNK = 4000  # values per ``IN (...)`` list on SQLite; PostgreSQL takes any list as one array


def chunks(values: Sequence, size: int | None = None) -> Iterator[Sequence]:
    """``values`` in parts small enough for one ``IN`` list (``field__any``) or one statement:
    a single part on PostgreSQL unless ``size`` asks for smaller ones."""
    if size is None:
        size = max(len(values), 1) if connection.vendor == "postgresql" else IN_CHUNK
    for start in range(0, len(values), size):
        yield values[start : start + size]


def server_cursor() -> CursorWrapper:
    """A PostgreSQL cursor that binds parameters on the server (``%b`` sends them in binary),
    wrapped like Django's own so query logging, execute wrappers and error mapping still apply."""
    connection.ensure_connection()
    raw = cast(Any, psycopg.Cursor(connection.connection))  # the stubs expect Django's own cursors
    return connection.make_debug_cursor(raw) if connection.queries_logged else connection.make_cursor(raw)


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
    if isinstance(field, UUIDField):
        return "uuid"
    if field.get_internal_type() in {"CharField", "TextField"}:
        return "text"
    return "bigint"  # integers and foreign keys


def _column_values(field: Field, values: list[Any]) -> list[Any]:
    if isinstance(field, JSONField):
        return [json.dumps(value, separators=(",", ":")) for value in values]
    return values


def _postgres_source(fields: list[Field], rows: Sequence[Sequence[Any]], aliases: list[str]) -> tuple[str, list[Any]]:
    arrays = [f"%b::{_array_type(field)}[]" for field in fields]
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
    if connection.vendor == "postgresql":
        source, params = _postgres_source(fields, rows, aliases)
        with server_cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET {assignments} FROM {source} WHERE {where}", params)  # noqa: S608 - model names
        return
    with connection.cursor() as cursor:
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
    if connection.vendor == "postgresql":
        aliases = [f"c{index}" for index in range(len(fields))]
        source, params = _postgres_source(fields, rows, aliases)
        values = ", ".join(_value(alias, field) for alias, field in zip(aliases, fields, strict=True))
        with server_cursor() as cursor:
            cursor.execute(f"INSERT INTO {target} SELECT {values} FROM {source} ON CONFLICT DO NOTHING", params)  # noqa: S608
        return
    with connection.cursor() as cursor:
        size = max(1, MAX_PARAMETERS // len(fields))
        row_placeholder = "(" + ", ".join(["%s"] * len(fields)) + ")"
        for start in range(0, len(rows), size):
            part = rows[start : start + size]
            cursor.execute(
                f"INSERT INTO {target} VALUES {', '.join([row_placeholder] * len(part))} ON CONFLICT DO NOTHING",  # noqa: S608
                _sqlite_params(fields, part),
            )


def allocate_ids(model: type[Model], count: int) -> list[int]:
    """``count`` new primary keys for ``model``, so that rows can be written (and referred to)
    with their ids known in advance. On SQLite the caller must hold the write lock (correlation
    does: ``BEGIN IMMEDIATE``); the ids continue the table's AUTOINCREMENT sequence, which never
    reuses the id of a removed row."""
    if count <= 0:
        return []
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, count])
            return sorted(row[0] for row in cursor.fetchall())
        cursor.execute(
            f"SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = %s), 0), COALESCE(MAX(id), 0)) FROM {table}",  # noqa: S608
            [table],
        )
        last = cursor.fetchone()[0]
        return list(range(last + 1, last + 1 + count))


def remap_column(model: type[Model], name: str, mapping: dict[int, int]) -> None:
    """Rewrite an integer column (a foreign key) from old to new values: ``{old: new}``."""
    if not mapping:
        return
    table = connection.ops.quote_name(model._meta.db_table)
    column = _column(_fields(model, [name])[0])
    if connection.vendor == "postgresql":
        with server_cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET {column} = m.new FROM UNNEST(%b::bigint[], %b::bigint[]) AS m(old, new) "  # noqa: S608
                f"WHERE {table}.{column} = m.old",
                [list(mapping), list(mapping.values())],
            )
        return
    with connection.cursor() as cursor:
        pairs = list(mapping.items())
        for start in range(0, len(pairs), MAX_PARAMETERS // 2):
            part = pairs[start : start + MAX_PARAMETERS // 2]
            cursor.execute(
                f"WITH m(old, new) AS (VALUES {', '.join(['(%s, %s)'] * len(part))}) "  # noqa: S608
                f"UPDATE {table} SET {column} = m.new FROM m WHERE {table}.{column} = m.old",
                [value for pair in part for value in pair],
            )
