"""``dispatch.sql.rows_insert``: the rows ``bulk_create`` writes, byte for byte
(on PostgreSQL sent as one JSON parameter, elsewhere ``bulk_create`` itself),
each object given its primary key in order."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from dispatch.models import Dispatch, Incident, IncidentEvent, Wave
from dispatch.sql import rows_insert
from tests.factories import MemberFactory, UnitFactory

pytestmark = pytest.mark.django_db

DATA = [
    {},
    {"wave": 1, "rank": 3, "distance_m": 812, "eta_s": 95, "drill": True},
    {"text": "天河城商场 \"B1\" 入口\\北侧 'x'\n", "list": [1, 2.5, None, {"a": []}]},
    {"big": 2**53 + 1, "neg": -1, "float": 1e-7},
]


def _incident() -> Incident:
    return Incident.objects.create(
        kind="knife", lat=23.13, lon=113.32, policy={}, discovered_at=timezone.now()
    )


def _columns(model, ids):
    names = [f.attname for f in model._meta.concrete_fields if not f.primary_key]
    rows = model.objects.filter(pk__in=ids).order_by("pk").values_list(*names)
    return list(rows)


def _events(incident, unit, member, start):
    return [
        IncidentEvent(
            incident_id=incident.pk,
            seq=start + i,
            type=IncidentEvent.Type.ALERTED if i % 2 else IncidentEvent.Type.DELIVERED,
            unit=unit if i != 1 else None,
            member_id=member.pk if i == 2 else None,
            data=data,
        )
        for i, data in enumerate(DATA)
    ]


def test_events_are_the_rows_bulk_create_writes(near_unit):
    incident = _incident()
    member = MemberFactory(unit=near_unit)
    made = _events(incident, near_unit, member, 1)
    got = rows_insert(IncidentEvent, made)
    assert got == made and [e.pk for e in made] == sorted(e.pk for e in made)
    assert all(e.pk is not None and not e._state.adding for e in made)
    assert all(e.created_at is not None for e in made)
    reference = IncidentEvent.objects.bulk_create(_events(incident, near_unit, member, 10))
    mine = _columns(IncidentEvent, [e.pk for e in made])
    theirs = _columns(IncidentEvent, [e.pk for e in reference])

    def without_seq_and_time(rows):
        return [(r[0], *r[2:-1]) for r in rows]

    assert without_seq_and_time(mine) == without_seq_and_time(theirs)
    assert [r[1] for r in mine] == [1, 2, 3, 4]
    # The time is the object's own, to the microsecond.
    assert [r[-1] for r in mine] == [e.created_at for e in made]
    assert IncidentEvent.objects.get(pk=made[2].pk).data == DATA[2]


def test_dispatches_with_defaults_and_nulls(near_unit):
    incident = _incident()
    wave = Wave.objects.create(incident=incident, number=1, radius_m=1500, reason="intake")
    units = [near_unit, UnitFactory(region=near_unit.region)]
    made = rows_insert(
        Dispatch,
        [
            Dispatch(incident=incident, wave=wave, unit=u, rank=i + 1, distance_m=10, eta_s=20)
            for i, u in enumerate(units)
        ],
    )
    rows = Dispatch.objects.filter(incident=incident).order_by("rank")
    assert [(d.pk, d.unit_id, d.status, d.accepted_at) for d in rows] == [
        (m.pk, u.pk, Dispatch.Status.ALERTED, None) for m, u in zip(made, units, strict=True)
    ]
    assert abs(rows[0].created_at - timezone.now()) < dt.timedelta(minutes=1)


def test_nothing_to_insert_is_no_statement(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert rows_insert(IncidentEvent, []) == []


def test_data_that_is_not_json_is_refused_as_django_refuses_it(near_unit):
    """Not turned into a string on PostgreSQL while SQLite raises."""
    incident = _incident()
    events = _events(incident, near_unit, MemberFactory(unit=near_unit), 1)
    events[1].data = {"at": timezone.now()}
    with pytest.raises(TypeError):
        rows_insert(IncidentEvent, events)


def test_a_unit_saved_after_it_was_assigned_is_named_by_its_id(near_unit):
    incident = _incident()
    events = _events(incident, near_unit, MemberFactory(unit=near_unit), 1)
    later = UnitFactory.build(region=near_unit.region)
    events[0].unit = later
    later.save()
    rows_insert(IncidentEvent, events)
    assert IncidentEvent.objects.get(pk=events[0].pk).unit_id == later.pk
    never_saved = UnitFactory.build(region=near_unit.region)
    again = _events(incident, near_unit, MemberFactory(unit=near_unit), 10)
    again[0].unit = never_saved
    with pytest.raises(ValueError):
        rows_insert(IncidentEvent, again)
