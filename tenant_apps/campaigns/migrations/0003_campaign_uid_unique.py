from django.db import migrations, models

import public_app.ids


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0002_campaign_uid")]

    operations = [
        migrations.AlterField(
            "campaign",
            "uid",
            models.CharField(default=public_app.ids.campaign_uid, editable=False, max_length=40, unique=True),
        ),
    ]
