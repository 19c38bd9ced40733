from __future__ import annotations

import datetime as dt
import random

import pytest
from django.db import connection

from dispatch.models import Incident
from review import selectors
from review.selectors import (
    IncidentFilter,
    OutOfScope,
    ReviewInputError,
    incident_list,
    incident_stats,
    percentile_cont,
    unit_stats,
)
from tests.factories import UnitFactory

from .conftest import T0, dispatch_to, past_incident

pytestmark = pytest.mark.django_db


def _everything(**kw) -> IncidentFilter:
    return IncidentFilter(since=T0 - dt.timedelta(days=30), until=T0 + dt.timedelta(days=30), **kw)


def _interpolated(values, p):
    s = sorted(values)
    pos = p * (len(s) - 1)
    lo, hi = int(pos // 1), -int(-pos // 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def test_percentile_cont_interpolates_between_ranks_like_postgresql():
    rng = random.Random(7)
    for n in (1, 2, 3, 10, 101):
        values = [rng.randint(0, 50) for _ in range(n)]
        hist = sorted({v: values.count(v) for v in values}.items())
        for p in (0.0, 0.5, 0.9, 1.0):
            assert percentile_cont(hist, p) == pytest.approx(_interpolated(values, p))
    assert percentile_cont([], 0.5) is None


def test_district_medians_p90_and_compliance_are_computed_in_the_database(
    city_reviewer, tianhe_street, haizhu_street
):
    responses = [10, 20, 30, 40, 70]  # one misses the 1-minute target
    for r in responses:
        past_incident(region=tianhe_street, response_s=r, control_s=r + 100, handling_s=r + 200)
    past_incident(region=haizhu_street, response_s=5, control_s=400, handling_s=500)

    qs = incident_list(user=city_reviewer, filters=_everything())
    rows = {row.label: row for row in incident_stats(qs=qs, by="district")}

    tianhe = rows["天河区"]
    assert tianhe.incidents == 5
    assert tianhe.durations["to_response_s"].median == 30
    assert tianhe.durations["to_response_s"].p90 == pytest.approx(_interpolated(responses, 0.9))
    assert tianhe.durations["to_handling_s"].median == 230
    assert tianhe.pct("responded") == 80.0
    assert tianhe.compliance_pct == 80.0
    haizhu = rows["海珠区"]
    assert haizhu.incidents == 1 and haizhu.compliance_pct == 0.0


def test_durations_round_up_to_whole_seconds_so_compliance_matches_the_exact_rule(
    city_reviewer, tianhe_street
):
    past_incident(region=tianhe_street, response_s=60.0, control_s=180.5, handling_s=300.0)
    row = incident_list(user=city_reviewer, filters=_everything()).get()
    assert (row.to_response_s, row.to_control_s, row.to_handling_s) == (60, 181, 300)
    assert (row.ok_responded, row.ok_controlled, row.ok_handled) == (1, 0, 1)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL oracle")
def test_medians_match_postgresql_percentile_cont(city_reviewer, tianhe_street):
    rng = random.Random(3)
    for _ in range(40):
        r = rng.randint(1, 200)
        past_incident(region=tianhe_street, response_s=r, control_s=r + 10, handling_s=r + 20)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY "
            "CEIL(EXTRACT(EPOCH FROM responded_at - discovered_at))), "
            "percentile_cont(0.9) WITHIN GROUP (ORDER BY "
            "CEIL(EXTRACT(EPOCH FROM responded_at - discovered_at))) FROM dispatch_incident"
        )
        median, p90 = cursor.fetchone()
    row = incident_stats(qs=incident_list(user=city_reviewer, filters=_everything()), by=None)[0]
    assert row.durations["to_response_s"].median == pytest.approx(median)
    assert row.durations["to_response_s"].p90 == pytest.approx(p90)


def test_filters_narrow_by_street_kind_time_and_compliance(city_reviewer, tianhe_street):
    fast = past_incident(region=tianhe_street, response_s=10, kind=Incident.Kind.FIRE)
    slow = past_incident(region=tianhe_street, response_s=90)
    old = past_incident(region=tianhe_street, at=T0 - dt.timedelta(days=200))

    def ids(**kw):
        return set(
            incident_list(user=city_reviewer, filters=_everything(**kw)).values_list(
                "pk", flat=True
            )
        )

    assert ids() == {fast.pk, slow.pk}
    assert old.pk not in ids()
    assert ids(kind=Incident.Kind.FIRE) == {fast.pk}
    assert ids(compliant=True) == {fast.pk}
    assert ids(compliant=False) == {slow.pk}
    assert ids(region=tianhe_street) == {fast.pk, slow.pk}


def test_drills_are_kept_out_of_incident_reports(city_reviewer, tianhe_street):
    past_incident(region=tianhe_street, is_drill=True)
    assert not incident_list(user=city_reviewer, filters=_everything()).exists()
    assert incident_list(user=city_reviewer, filters=_everything(drills=True)).count() == 1


def test_a_district_reviewer_sees_only_their_district(
    haizhu_reviewer, tianhe_street, haizhu_street
):
    mine = past_incident(region=haizhu_street)
    past_incident(region=tianhe_street)
    qs = incident_list(user=haizhu_reviewer, filters=_everything())
    assert list(qs.values_list("pk", flat=True)) == [mine.pk]
    rows = incident_stats(qs=qs, by="district")
    assert [r.label for r in rows] == ["海珠区"]


def test_asking_for_another_district_is_out_of_scope_and_an_unknown_one_is_bad_input(
    haizhu_reviewer, tianhe
):
    with pytest.raises(OutOfScope):
        selectors.region_for_review(user=haizhu_reviewer, code=tianhe.code)
    with pytest.raises(ReviewInputError) as exc:
        selectors.region_for_review(user=haizhu_reviewer, code="999999")
    assert "district" in exc.value.errors


@pytest.mark.parametrize(
    ("since", "until", "field"),
    [
        ("2024-05-10", "2024-05-01", "since"),
        ("not-a-date", None, "since"),
        (None, "2024-13-40", "until"),
        ("2000-01-01", "2024-01-01", "since"),
    ],
)
def test_bad_date_ranges_are_refused_with_the_field_named(since, until, field):
    with pytest.raises(ReviewInputError) as exc:
        selectors.time_range_parse(since=since, until=until)
    assert field in exc.value.errors


def test_until_as_a_date_includes_that_whole_day():
    start, end = selectors.time_range_parse(since="2024-05-01", until="2024-05-01")
    assert end - start == dt.timedelta(days=1)


def test_weekly_trend_groups_incidents_by_monday_weeks(city_reviewer, tianhe_street):
    past_incident(region=tianhe_street, at=T0)  # Monday 10:00
    past_incident(region=tianhe_street, at=T0 + dt.timedelta(days=6, hours=13))  # Sunday 23:00
    past_incident(region=tianhe_street, at=T0 + dt.timedelta(days=7))  # next Monday
    rows = incident_stats(qs=incident_list(user=city_reviewer, filters=_everything()), by="week")
    assert [(r.label, r.incidents) for r in rows] == [("2024-05-06", 2), ("2024-05-13", 1)]


def test_unit_stats_count_declines_and_silence_and_time_each_units_own_steps(
    city_reviewer, tianhe_street, tianhe_unit
):
    quiet = UnitFactory(region=tianhe_street)
    for response in (20, 40, 60):
        incident = past_incident(region=tianhe_street)
        dispatch_to(incident, tianhe_unit, accepted_s=response, on_site_s=response + 100)
        dispatch_to(incident, quiet, declined=response == 20)

    rows = {s.unit_id: s for s in unit_stats(user=city_reviewer, filters=_everything())}
    good, bad = rows[tianhe_unit.pk], rows[quiet.pk]
    assert (good.alerted, good.accepted, good.on_site, good.declined) == (3, 3, 3, 0)
    assert good.durations["to_response_s"].median == 40
    assert good.durations["to_control_s"].median == 140
    assert (bad.alerted, bad.accepted, bad.declined, bad.no_answer) == (3, 0, 1, 2)
    assert selectors.units_unreliable(rows.values()) == [bad]


def test_unit_stats_of_a_district_reviewer_leave_out_other_districts_units(
    haizhu_reviewer, haizhu_street, tianhe_unit
):
    incident = past_incident(region=haizhu_street)
    dispatch_to(incident, tianhe_unit, accepted_s=30)  # a Tianhe unit helped in Haizhu
    assert unit_stats(user=haizhu_reviewer, filters=_everything()) == []
