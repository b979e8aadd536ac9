from django.db import migrations, models

import public_app.ids


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_auditentry_uid")]

    operations = [
        migrations.AlterField(
            "auditentry",
            "uid",
            models.CharField(default=public_app.ids.audit_entry_uid, editable=False, max_length=40, unique=True),
        ),
    ]
