from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("dispatch", "0002_notificationattempt"),
    ]

    operations = [
        migrations.AddField(
            model_name="incident",
            name="paid_channels",
            field=models.BooleanField(default=True, verbose_name="使用短信/语音"),
        ),
    ]
