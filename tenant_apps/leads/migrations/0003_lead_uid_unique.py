from django.db import migrations, models

import public_app.ids


class Migration(migrations.Migration):
    dependencies = [("leads", "0002_lead_uid")]

    operations = [
        migrations.AlterField(
            "lead",
            "uid",
            models.CharField(default=public_app.ids.lead_uid, editable=False, max_length=40, unique=True),
        ),
    ]
