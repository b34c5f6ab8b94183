"""PostgreSQL: the sequence every config write advances, so each replica knows when the
configs it cached are stale (devices/generation.py). SQLite keeps its counter in a file."""

from django.db import migrations

from devices.generation import SEQUENCE


def create_sequence(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"CREATE SEQUENCE IF NOT EXISTS {SEQUENCE}")


def drop_sequence(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP SEQUENCE IF EXISTS {SEQUENCE}")


class Migration(migrations.Migration):
    dependencies = [("devices", "0004_apitoken_moved_to_users")]

    operations = [migrations.RunPython(create_sequence, drop_sequence, elidable=False)]
