from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import F, Q

from dispatch.models import Dispatch, Incident, IncidentEvent
from review import seeding, selectors, services
from review.models import (
    DispatchFact,
    DistrictWeekly,
    IncidentFact,
    SetAsideIndex,
    UnitWeekly,
    WeeklyRollup,
)
from review.seeding import incidents_seed
from tests.factories import MemberFactory, UnitFactory

pytestmark = pytest.mark.django_db

UNTIL = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def small_city(tianhe_street, haizhu_street):
    units = [UnitFactory(region=tianhe_street, lat=23.13 + i * 0.002, lon=113.32) for i in range(6)]
    units += [
        UnitFactory(region=haizhu_street, lat=23.09 + i * 0.002, lon=113.33) for i in range(6)
    ]
    for u in units:
        MemberFactory(unit=u)
    return units


def _snapshot():
    return list(
        Incident.objects.order_by("pk").values_list(
            "kind", "lat", "region_id", "discovered_at", "responded_at", "handled_at"
        )
    )


def test_seeding_is_deterministic_for_a_seed(small_city):
    incidents_seed(count=50, seed=5, until=UNTIL, days=30)
    first = _snapshot()
    Incident.objects.all().delete()
    IncidentFact.objects.all().delete()
    incidents_seed(count=50, seed=5, until=UNTIL, days=30)
    assert _snapshot() == first


def test_seeded_incidents_keep_the_dispatch_rules(small_city):
    result = incidents_seed(count=200, seed=1, until=UNTIL, days=30)
    assert result.incidents == Incident.objects.count() == 200
    # The four firsts in order; every event seq runs 1..last_seq.
    assert not Incident.objects.filter(responded_at__lt=F("discovered_at")).exists()
    assert not Incident.objects.filter(
        Q(handled_at__isnull=False) & Q(controlled_at__isnull=True)
    ).exists()
    for incident in Incident.objects.all()[:20]:
        seqs = list(incident.events.order_by("seq").values_list("seq", flat=True))
        assert seqs == list(range(1, incident.last_seq + 1))
    # The first accepting unit's dispatch carries the incident's first times.
    first = Dispatch.objects.filter(accepted_at__isnull=False).select_related("incident")[0]
    assert first.accepted_at == first.incident.responded_at
    assert IncidentEvent.objects.filter(type=IncidentEvent.Type.ON_SITE).exclude(data={}).exists()


def test_seeded_facts_equal_the_facts_the_celery_task_computes(small_city, city_reviewer):
    incidents_seed(count=150, seed=3, until=UNTIL, days=20)
    filters = selectors.IncidentFilter(since=UNTIL - dt.timedelta(days=30), until=UNTIL)
    seeded = {
        by: [r.as_dict() for r in selectors.area_stats(user=city_reviewer, filters=filters, by=by)]
        for by in ("district", "week")
    }
    seeded_units = [s.as_dict() for s in selectors.unit_stats(user=city_reviewer, filters=filters)]
    assert DispatchFact.objects.exists()
    services.facts_sync(full=True)
    for by, rows in seeded.items():
        assert [
            r.as_dict() for r in selectors.area_stats(user=city_reviewer, filters=filters, by=by)
        ] == rows
    assert [
        s.as_dict() for s in selectors.unit_stats(user=city_reviewer, filters=filters)
    ] == seeded_units


def test_the_command_refuses_a_bad_count_and_an_empty_roster(db):
    with pytest.raises(CommandError, match="count"):
        call_command("seed_incidents", "--count", "0", "--no-progress")
    with pytest.raises(CommandError, match="no active units"):
        call_command("seed_incidents", "--count", "5", "--no-progress")


def _rollup_rows():
    def canon(values):
        return tuple(json.dumps(v, sort_keys=True) if isinstance(v, dict) else v for v in values)

    weekly = WeeklyRollup.objects.values_list(
        "week", "region_id", "street_id", "district_id", "kind", "n", "ok_responded",
        "ok_controlled", "ok_handled", "ok_all", "hist",
    )  # fmt: skip
    units = UnitWeekly.objects.values_list(
        "week", "unit_id", "unit_street_id", "unit_district_id", "district_id", "alerted",
        "accepted", "declined", "no_answer", "on_site",
    )  # fmt: skip
    districts = DistrictWeekly.objects.values_list(
        "week", "district_id", "located", "n", "ok_responded", "ok_controlled", "ok_handled",
        "ok_all", "hist",
    )  # fmt: skip
    return sorted(map(canon, weekly)), sorted(units), sorted(map(canon, districts))


def test_seeded_rollups_equal_the_rollups_rebuilt_from_the_facts(small_city):
    incidents_seed(count=300, seed=4, until=UNTIL, days=40)
    seeded = _rollup_rows()
    assert seeded[0] and seeded[1] and seeded[2]

    WeeklyRollup.objects.all().delete()
    DistrictWeekly.objects.all().delete()
    UnitWeekly.objects.all().delete()
    services.rollups_rebuild()

    assert _rollup_rows() == seeded


def test_seeding_on_top_of_seeded_facts_rebuilds_the_weeks_it_touched(small_city):
    incidents_seed(count=100, seed=4, until=UNTIL, days=40)
    incidents_seed(count=100, seed=5, until=UNTIL, days=40)
    seeded = _rollup_rows()

    WeeklyRollup.objects.all().delete()
    DistrictWeekly.objects.all().delete()
    UnitWeekly.objects.all().delete()
    services.rollups_rebuild()

    assert _rollup_rows() == seeded


def _index_names():
    return {name for name, _sql in seeding._secondary_indexes(seeding._SEEDED_TABLES)}


def test_a_bulk_seed_sets_indexes_aside_and_builds_them_again(small_city):
    before = _index_names()
    assert before

    incidents_seed(count=120, seed=6, until=UNTIL, days=20, bulk=True)

    assert _index_names() == before
    assert not SetAsideIndex.objects.exists()
    assert Incident.objects.count() == 120


def test_indexes_a_killed_bulk_seed_left_dropped_are_built_by_the_next_run(small_city):
    name, sql = sorted(seeding._secondary_indexes(["review_dispatchfact"]))[0]
    SetAsideIndex.objects.create(name=name, sql=sql)
    with connection.cursor() as cur:
        cur.execute(f"DROP INDEX {connection.ops.quote_name(name)}")
    assert name not in _index_names()

    incidents_seed(count=10, seed=6, until=UNTIL, days=20)

    assert name in _index_names()
    assert not SetAsideIndex.objects.exists()
