"""``field__any=[...]``: membership in a long list of values, cheap to build and to send.

Django's ``__in`` renders one placeholder per value and resolves each one through the ORM; for
the thousands of ids of a correlated batch that costs more than the query. On PostgreSQL this
sends the list as one array parameter (``= ANY(%s::bigint[])``), so the statement text is the same
whatever the length (and the planner sees one shape). Elsewhere it is an ordinary ``IN`` list,
so callers still keep lists under SQLite's limit on parameters (``tracing.bulk.chunks``).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Field, ForeignObject, Lookup
from django.db.models.lookups import In


class AnyOf(Lookup):
    lookup_name = "any"
    prepare_rhs = False

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, Any]:
        return In(self.lhs, list(self.rhs)).as_sql(compiler, connection)

    def as_postgresql(self, compiler: Any, connection: Any) -> tuple[str, Any]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        field = self.lhs.output_field
        values = [field.get_db_prep_value(value, connection, prepared=False) for value in self.rhs]
        return f"{lhs} = ANY(%s::{field.cast_db_type(connection)}[])", (*lhs_params, values)


Field.register_lookup(AnyOf)
ForeignObject.register_lookup(AnyOf)  # related fields look their lookups up from ForeignObject down
