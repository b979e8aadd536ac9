from django.db import migrations, models

import public_app.ids


class Migration(migrations.Migration):
    dependencies = [("agents", "0002_agent_uid")]

    operations = [
        migrations.AlterField(
            "agent",
            "uid",
            models.CharField(default=public_app.ids.agent_uid, editable=False, max_length=40, unique=True),
        ),
    ]
