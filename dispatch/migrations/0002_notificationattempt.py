# NotificationAttempt comes over from mobile keeping its table: state only.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("dispatch", "0001_initial"),
        ("mobile", "0002_notificationattempt_to_dispatch"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="NotificationAttempt",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("channel", models.CharField(max_length=16, verbose_name="渠道")),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("sending", "发送中"),
                                    ("sent", "已发送"),
                                    ("failed", "失败"),
                                    ("skipped", "无可用渠道"),
                                ],
                                max_length=8,
                                verbose_name="结果",
                            ),
                        ),
                        (
                            "detail",
                            models.CharField(blank=True, max_length=255, verbose_name="详情"),
                        ),
                        (
                            "created_at",
                            models.DateTimeField(auto_now_add=True, verbose_name="时间"),
                        ),
                        (
                            "delivery",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="notification_attempts",
                                to="dispatch.delivery",
                                verbose_name="送达回执",
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "提醒记录",
                        "verbose_name_plural": "提醒记录",
                        "db_table": "mobile_notificationattempt",
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("delivery", "channel"), name="notification_once_per_channel"
                            )
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
