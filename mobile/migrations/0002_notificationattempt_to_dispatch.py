# NotificationAttempt moves to dispatch (the chain that writes it lives there).
# State only: the table mobile_notificationattempt stays where it is.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('mobile', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name='NotificationAttempt')],
            database_operations=[],
        ),
    ]
