"""Tenant ids (issue 16): the column, nullable, and an id for every existing row; 0003 makes it required and unique.
Two migrations, not one: on PostgreSQL the ALTER of 0003 must not share a migration with the rows this one updates."""

from django.db import migrations, models

from tenant_apps.migration_ops import uid_backfill


class Migration(migrations.Migration):
    dependencies = [("agents", "0001_initial")]

    operations = [
        migrations.AddField("agent", "uid", models.CharField(max_length=40, null=True, editable=False)),
        migrations.RunPython(uid_backfill("agents", "Agent", "agt"), migrations.RunPython.noop),
    ]
