from django.db import migrations, models

import public_app.ids


class Migration(migrations.Migration):
    dependencies = [("phone_numbers", "0002_phonenumber_uid")]

    operations = [
        migrations.AlterField(
            "phonenumber",
            "uid",
            models.CharField(default=public_app.ids.phone_number_uid, editable=False, max_length=40, unique=True),
        ),
    ]
