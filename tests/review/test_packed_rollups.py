"""The packed roll-ups (the districts' cumulative histograms, the city's row a
week, the daily rows, the per-unit packed counts) give the city report exactly
what the facts and the live rows give: after seeding, after the beat syncs a
live incident, and at the edges of days and weeks."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from review import packed, selectors, services
from review.models import (
    CityWeekly,
    DistrictCumulative,
    DistrictDaily,
    IncidentFact,
    UnitCumulative,
    UnitDaily,
)
from review.selectors import IncidentFilter
from review.selectors.packed import city_packed_built, units_packed_built, whole_days
from review.tasks import facts_refresh

from .conftest import dispatch_to, past_incident, seeded_city

pytestmark = pytest.mark.django_db

SH = ZoneInfo("Asia/Shanghai")
UNTIL = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)
MONDAY = dt.datetime(2024, 5, 20, tzinfo=SH)  # a local week start inside the seeded span


@pytest.fixture
def seeded(tianhe_street, haizhu_street):
    return seeded_city(tianhe_street, haizhu_street, count=500, seed=9, until=UNTIL)


def _report(user, filters, *, live=False) -> dict:
    """The city report as the page gets it; ``live``: with the facts ignored, from
    the incident tables alone (the oracle)."""
    with pytest.MonkeyPatch.context() as mp:
        if live:
            mp.setattr(selectors.rollups, "facts_watermark", lambda: 0)
            mp.setattr(selectors.stats, "facts_watermark", lambda: 0)
        return selectors.response_report(user=user, filters=filters).as_dict()


RANGES = [
    (UNTIL - dt.timedelta(days=45, hours=5), UNTIL - dt.timedelta(days=3, hours=7)),
    (UNTIL - dt.timedelta(days=90), UNTIL + dt.timedelta(days=20)),  # past either end
    (MONDAY - dt.timedelta(days=14), MONDAY),  # whole weeks, no partial day
    (MONDAY - dt.timedelta(days=9), MONDAY + dt.timedelta(days=3)),  # whole days only
    (MONDAY - dt.timedelta(days=9, seconds=1), MONDAY + dt.timedelta(days=3, seconds=1)),
    (MONDAY + dt.timedelta(hours=5), MONDAY + dt.timedelta(days=3, hours=2)),  # under a week
]


@pytest.mark.parametrize("since, until", RANGES)
def test_the_city_report_from_packed_rollups_equals_the_live_report(
    seeded, city_reviewer, tianhe_reviewer, admin_user, since, until
):
    assert city_packed_built() is not None and units_packed_built() is not None
    for user in (city_reviewer, admin_user, tianhe_reviewer):
        filters = IncidentFilter(since=since, until=until)
        expected = _report(user, filters, live=True)
        assert expected["total"]["incidents"] > 0
        assert _report(user, filters) == expected


def test_the_city_report_reads_the_packed_rows_not_the_facts_for_whole_days(seeded, city_reviewer):
    filters = IncidentFilter(since=RANGES[0][0], until=RANGES[0][1])
    with CaptureQueriesContext(connection) as ctx:
        selectors.response_report(user=city_reviewer, filters=filters)
    sql = " ".join(q["sql"] for q in ctx.captured_queries)
    for table in (CityWeekly, DistrictCumulative, DistrictDaily, UnitCumulative, UnitDaily):
        assert table._meta.db_table in sql


def _packed_rows():
    out = []
    for model in (CityWeekly, DistrictCumulative, DistrictDaily, UnitCumulative, UnitDaily):
        names = [f.attname for f in model._meta.concrete_fields if f.attname != "id"]
        rows = model.objects.values_list(*names)
        out.append(
            sorted(tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows)
        )
    return out


def _rebuilt_from_scratch():
    for model in (CityWeekly, DistrictCumulative, DistrictDaily, UnitCumulative, UnitDaily):
        model.objects.all().delete()
    services.rollups_rebuild()
    return _packed_rows()


def test_the_beat_folds_a_live_incident_into_the_packed_rollups(
    seeded, city_reviewer, tianhe_street
):
    unit, other = seeded[0], seeded[9]
    late = UNTIL - dt.timedelta(days=2, hours=3)
    incident = past_incident(region=tianhe_street, response_s=41, control_s=170, at=late)
    dispatch_to(incident, unit, accepted_s=41, on_site_s=170)
    dispatch_to(incident, other, declined=True)
    filters = IncidentFilter(since=UNTIL - dt.timedelta(days=30), until=UNTIL)
    expected = _report(city_reviewer, filters, live=True)
    # Newer than the facts: read live and merged.
    assert _report(city_reviewer, filters) == expected

    facts_refresh.delay()

    synced = _packed_rows()
    assert synced == _rebuilt_from_scratch()
    assert _report(city_reviewer, filters) == expected
    # The incident's day holds it.
    day = (int(late.timestamp()) + 8 * 3600) // 86400
    assert DistrictDaily.objects.filter(day=day, district_id=tianhe_street.parent_id).exists()


def test_incidents_either_side_of_a_local_midnight_and_a_week_start_land_in_their_days(
    tianhe_street, tianhe_unit, city_reviewer
):
    moments = [
        MONDAY - dt.timedelta(microseconds=1),  # Sunday 23:59:59.999999: the week before
        MONDAY,  # Monday 00:00: the new week
        MONDAY + dt.timedelta(days=1) - dt.timedelta(seconds=1),
        MONDAY + dt.timedelta(days=1),
        MONDAY + dt.timedelta(days=7, hours=9),
        MONDAY - dt.timedelta(days=6, hours=20),
    ]
    for i, at in enumerate(moments):
        incident = past_incident(region=tianhe_street, response_s=20 + i, at=at)
        dispatch_to(incident, tianhe_unit, accepted_s=20 + i, on_site_s=100)
    # A time 0.4 ms before a whole second: SQLite's strftime('%s') rounds it up.
    odd = past_incident(region=tianhe_street, response_s=20.9996, at=MONDAY + dt.timedelta(hours=3))
    services.facts_sync(full=True)
    assert city_packed_built() is not None
    assert IncidentFact.objects.get(incident=odd).to_response_s == 21
    week = (int(MONDAY.timestamp()) + 8 * 3600 + 3 * 86400) // (7 * 86400)
    assert IncidentFact.objects.get(discovered_at=moments[0]).week == week - 1

    monday = (int(MONDAY.timestamp()) + 8 * 3600) // 86400
    days = dict(DistrictDaily.objects.values_list("day", "n"))
    assert days[monday - 1] == 1 and days[monday] == 3 and days[monday + 1] == 1
    unit_days = {
        day: int(packed.units_unpack(units)["n"][:, 0].sum())
        for day, units in UnitDaily.objects.values_list("day", "units")
    }
    assert unit_days[monday - 1] == 1 and unit_days[monday] == 2

    edges = [
        (MONDAY, MONDAY + dt.timedelta(days=1)),
        (MONDAY + dt.timedelta(microseconds=1), MONDAY + dt.timedelta(days=8)),
        (MONDAY - dt.timedelta(microseconds=1), MONDAY + dt.timedelta(days=1, microseconds=1)),
        (MONDAY - dt.timedelta(days=7), MONDAY + dt.timedelta(days=7)),
        (MONDAY - dt.timedelta(days=7), MONDAY - dt.timedelta(microseconds=1)),
    ]
    for since, until in edges:
        filters = IncidentFilter(since=since, until=until)
        assert _report(city_reviewer, filters) == _report(city_reviewer, filters, live=True)


def test_whole_days_leave_the_partial_days_to_the_facts():
    at = dt.datetime(2024, 5, 20, 10, 30, tzinfo=SH)
    d0, d1, pieces = whole_days(at, at + dt.timedelta(days=3))
    midnight = dt.datetime(2024, 5, 21, tzinfo=SH)
    assert (d1 - d0, pieces) == (
        2,
        [(at, midnight), (midnight + dt.timedelta(days=2), at + dt.timedelta(days=3))],
    )
    assert whole_days(at, at + dt.timedelta(hours=20)) == (
        0,
        0,
        [(at, at + dt.timedelta(hours=20))],
    )


def test_packed_histograms_add_and_subtract_exactly():
    a = packed.hist_unpack(packed.hist_pack([0, 0, 2], [30, 31, 400], [2, 1, 5]))
    b = packed.hist_unpack(packed.hist_pack([0, 2], [30, 400], [2, 1]))
    diff = packed.hist_sum([packed.hist_of(a), (b["d"], b["v"], -b["c"])])
    assert diff.tolist() == [(0, 31, 1), (2, 400, 4)]
    units = packed.units_unpack(
        packed.units_pack(np.array([5, 3]), np.array([1, 1]), np.array([9, -1]), [[1] * 5, [2] * 5])
    )
    assert units["unit"].tolist() == [3, 5]
    assert packed.units_sum([(units, 1), (units, -1)]).size == 0


def test_a_range_without_incidents_lists_no_units_and_does_not_fail(seeded, city_reviewer):
    filters = IncidentFilter(
        since=UNTIL + dt.timedelta(days=30), until=UNTIL + dt.timedelta(days=60)
    )
    report = selectors.response_report(user=city_reviewer, filters=filters)
    assert report.units == [] and report.unit_count == 0 and report.total.incidents == 0
