"""Keep PostgreSQL's statistics and visibility maps current on the tables correlation writes.

These tables grow by thousands of rows a second, and every observation is updated once (when it
is correlated). With the default thresholds (20% of the table), statistics taken while a table
was small lag far behind it: the planner then picks sequential scans for the batch's id lookups
(a fresh install, minutes after the demo starts, showed 90 ms instead of 2 ms per lookup). 2%
keeps each table within a minute or two of its statistics. SQLite has no such settings.
"""

from django.db import migrations

TABLES = (
    "tracing_observation",
    "tracing_edge",
    "tracing_anchor",
    "tracing_pendingref",
    "tracing_flow",
    "tracing_flowfacet",
)
SETTINGS = "autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.05"
RESET = "autovacuum_analyze_scale_factor, autovacuum_vacuum_scale_factor"


def tune(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"ALTER TABLE {table} SET ({SETTINGS})")


def untune(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"ALTER TABLE {table} RESET ({RESET})")


class Migration(migrations.Migration):
    dependencies = [
        ("tracing", "0004_flow_filter_indexes_with_id"),
    ]

    operations = [migrations.RunPython(tune, untune, elidable=False)]
