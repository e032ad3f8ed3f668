"""Anchors and pending references keep the 128-bit digest of an anchor name instead of the name
(``tracing.models.anchor_digest``): existing rows are converted in place, then the columns become
UUIDs and an anchor's digest its primary key."""

import hashlib

from django.db import migrations, models


def names_to_digests(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("UPDATE tracing_anchor SET name = md5(name)")
            cursor.execute("UPDATE tracing_pendingref SET anchor = md5(anchor)")
            return
        for table, column in (("tracing_anchor", "name"), ("tracing_pendingref", "anchor")):
            cursor.execute(f"SELECT id, {column} FROM {table}")  # noqa: S608 - fixed names
            rows = [(hashlib.md5(name.encode(), usedforsecurity=False).hexdigest(), pk) for pk, name in cursor.fetchall()]
            cursor.executemany(f"UPDATE {table} SET {column} = %s WHERE id = %s", rows)  # noqa: S608


# The anchor's primary key moves from ``id`` to the digest; Django's operations cannot swap a
# primary key on PostgreSQL in place, so the tables are changed in SQL and the model state
# follows separately.
ANCHOR_INDEX = "tracing_anchor_observation_id_7d29afbf"
POSTGRESQL_ANCHOR = [
    "ALTER TABLE tracing_anchor DROP CONSTRAINT tracing_anchor_pkey",
    "ALTER TABLE tracing_anchor DROP COLUMN id",
    "ALTER TABLE tracing_anchor RENAME COLUMN name TO digest",
    "ALTER TABLE tracing_anchor ALTER COLUMN digest TYPE uuid USING digest::uuid",
    "ALTER TABLE tracing_anchor ADD PRIMARY KEY (digest)",
]
SQLITE_ANCHOR = [
    'CREATE TABLE "new__tracing_anchor" ("digest" char(32) NOT NULL PRIMARY KEY, "observation_id" bigint NOT NULL)',
    'INSERT INTO "new__tracing_anchor" ("digest", "observation_id") SELECT "name", "observation_id" FROM "tracing_anchor"',
    'DROP TABLE "tracing_anchor"',
    'ALTER TABLE "new__tracing_anchor" RENAME TO "tracing_anchor"',
    f'CREATE INDEX "{ANCHOR_INDEX}" ON "tracing_anchor" ("observation_id")',
]


def anchor_keyed_by_digest(apps, schema_editor):
    statements = POSTGRESQL_ANCHOR if schema_editor.connection.vendor == "postgresql" else SQLITE_ANCHOR
    for statement in statements:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("tracing", "0008_drop_stream_filter_indexes")]

    operations = [
        migrations.RemoveConstraint(model_name="anchor", name="anchor_name_unique"),
        migrations.RemoveConstraint(model_name="pendingref", name="pending_unique"),
        migrations.RunPython(names_to_digests, migrations.RunPython.noop, elidable=False),
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(anchor_keyed_by_digest, elidable=False)],
            state_operations=[
                migrations.RenameField(model_name="anchor", old_name="name", new_name="digest"),
                migrations.RemoveField(model_name="anchor", name="id"),
                migrations.AlterField(model_name="anchor", name="digest", field=models.UUIDField(primary_key=True, serialize=False)),
            ],
        ),
        migrations.AlterField(
            model_name="pendingref",
            name="anchor",
            field=models.UUIDField(help_text="The digest of the anchor name it waits for (anchor_digest)."),
        ),
        migrations.AddConstraint(
            model_name="pendingref",
            constraint=models.UniqueConstraint(fields=("anchor", "observation", "kind"), name="pending_unique"),
        ),
    ]
