# ApiToken now belongs to the users app (users.0001 took over its state); the table is
# left in place here and renamed there.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("devices", "0003_reload_pending"),
        ("users", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="ApiToken")],
            database_operations=[],
        ),
    ]
