# ApiToken moves here from the devices app. Its table and rows stay as they are; this
# migration only takes over the model's state (devices.0004 drops it there), and the
# content type is relabelled so that permissions granted on tokens keep working.

from django.db import migrations, models


def relabel_content_type(apps, schema_editor):
    types = apps.get_model("contenttypes", "ContentType").objects.using(
        schema_editor.connection.alias
    )
    if not types.filter(app_label="users", model="apitoken").exists():
        types.filter(app_label="devices", model="apitoken").update(app_label="users")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("devices", "0003_reload_pending"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ApiToken",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("name", models.CharField(max_length=100)),
                        ("kind", models.CharField(choices=[("operator", "Operator"), ("device", "Device")], max_length=16)),
                        ("device_id", models.CharField(blank=True, default="", help_text="Device tokens: the only id they may use", max_length=253)),
                        ("prefix", models.CharField(help_text="First characters, to recognise a token", max_length=16)),
                        ("digest", models.CharField(max_length=64, unique=True)),
                        ("created_by", models.CharField(blank=True, default="", max_length=200)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("last_used_at", models.DateTimeField(blank=True, null=True)),
                        ("revoked_at", models.DateTimeField(blank=True, null=True)),
                    ],
                    options={
                        "verbose_name": "API token",
                        "ordering": ["-created_at"],
                        "db_table": "devices_apitoken",
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(relabel_content_type, migrations.RunPython.noop),
    ]
