"""Indexes of the big dispatch tables that no query needs (``seed_incidents``
builds each again after a bulk load: at a million incidents these were ~49
million of the ~111 million index entries it sorted):

- the foreign key indexes on ``incident`` of events, waves, dispatches and
  member locations: each table's unique constraint (``event_unique_seq``,
  ``wave_unique_number``, ``dispatch_unique_unit``) or ``location_trail``
  starts with ``incident`` and answers the same lookups (and the cascades);
- ``IncidentEvent.created_at``: no query reads events by time (they are read
  by incident, and by id, the replay cursor);
- the mostly-NULL foreign keys (an event's member and staff user, an
  incident's reporting member and console user, a dispatch's accepting
  member) indexed only where set: the deletion of a user or member still
  finds its rows through them.

The old indexes are dropped by name: Django's ``AlterField`` would rebuild each
SQLite table (three times for the events) to drop one index.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


# (table, column, index): the indexes Django made for these fields.
DROPPED = [
    ("dispatch_dispatch", "accepted_by_id", "dispatch_dispatch_accepted_by_id_c4304a22"),
    ("dispatch_dispatch", "incident_id", "dispatch_dispatch_incident_id_3a752c60"),
    ("dispatch_incident", "created_by_id", "dispatch_incident_created_by_id_8338ead3"),
    ("dispatch_incident", "reported_by_id", "dispatch_incident_reported_by_id_e20e8c86"),
    ("dispatch_incidentevent", "created_at", "dispatch_incidentevent_created_at_d41543cb"),
    ("dispatch_incidentevent", "incident_id", "dispatch_incidentevent_incident_id_e6df0bcc"),
    ("dispatch_incidentevent", "member_id", "dispatch_incidentevent_member_id_cc6344c3"),
    ("dispatch_incidentevent", "user_id", "dispatch_incidentevent_user_id_f751d4ba"),
    ("dispatch_memberlocation", "incident_id", "dispatch_memberlocation_incident_id_80c73082"),
    ("dispatch_wave", "incident_id", "dispatch_wave_incident_id_44a33c74"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("dispatch", "0008_incidentevent_replay_index"),
        ("units", "0002_roster_admin"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{name}"',
                    f'CREATE INDEX "{name}" ON "{table}" ("{column}")',
                )
                for table, column, name in DROPPED
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="dispatch",
                    name="accepted_by",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="units.member",
                    ),
                ),
                migrations.AlterField(
                    model_name="dispatch",
                    name="incident",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="dispatches",
                        to="dispatch.incident",
                    ),
                ),
                migrations.AlterField(
                    model_name="incident",
                    name="created_by",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="录入人",
                    ),
                ),
                migrations.AlterField(
                    model_name="incident",
                    name="reported_by",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="reported_incidents",
                        to="units.member",
                        verbose_name="报警队员",
                    ),
                ),
                migrations.AlterField(
                    model_name="incidentevent",
                    name="created_at",
                    field=models.DateTimeField(auto_now_add=True, verbose_name="时间"),
                ),
                migrations.AlterField(
                    model_name="incidentevent",
                    name="incident",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="events",
                        to="dispatch.incident",
                        verbose_name="警情",
                    ),
                ),
                migrations.AlterField(
                    model_name="incidentevent",
                    name="member",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="units.member",
                        verbose_name="队员",
                    ),
                ),
                migrations.AlterField(
                    model_name="incidentevent",
                    name="user",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="操作人",
                    ),
                ),
                migrations.AlterField(
                    model_name="memberlocation",
                    name="incident",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="locations",
                        to="dispatch.incident",
                    ),
                ),
                migrations.AlterField(
                    model_name="wave",
                    name="incident",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="waves",
                        to="dispatch.incident",
                    ),
                ),
            ],
        ),
        migrations.AddIndex(
            model_name="dispatch",
            index=models.Index(
                condition=models.Q(("accepted_by__isnull", False)),
                fields=["accepted_by"],
                name="dispatch_accepted_by",
            ),
        ),
        migrations.AddIndex(
            model_name="incident",
            index=models.Index(
                condition=models.Q(("reported_by__isnull", False)),
                fields=["reported_by"],
                name="incident_reported_by",
            ),
        ),
        migrations.AddIndex(
            model_name="incident",
            index=models.Index(
                condition=models.Q(("created_by__isnull", False)),
                fields=["created_by"],
                name="incident_created_by",
            ),
        ),
        migrations.AddIndex(
            model_name="incidentevent",
            index=models.Index(
                condition=models.Q(("member__isnull", False)),
                fields=["member"],
                name="event_member",
            ),
        ),
        migrations.AddIndex(
            model_name="incidentevent",
            index=models.Index(
                condition=models.Q(("user__isnull", False)), fields=["user"], name="event_user"
            ),
        ),
    ]
