# The token table takes this app's name, now that devices no longer claims the model.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("users", "0001_initial"),
        ("devices", "0004_apitoken_moved_to_users"),
    ]

    operations = [
        migrations.AlterModelTable(name="apitoken", table=None),
    ]
