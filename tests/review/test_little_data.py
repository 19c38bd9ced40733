"""With little history the index and the warning map say so, instead of ranking
and colouring areas as if their scores meant something (issue 13)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from dispatch import services as dispatch_services
from review import readiness, services
from tests.factories import MemberFactory, StaffFactory, UnitFactory
from units.models import StaffProfile

from .conftest import past_incident

pytestmark = pytest.mark.django_db

NOTE = "样本不足"


def test_index_and_warning_map_say_when_the_period_has_too_few_incidents(
    client, city_reviewer, tianhe_street, tianhe_unit
):
    client.force_login(city_reviewer)
    past_incident(region=tianhe_street, at=timezone.now() - dt.timedelta(days=3))
    assert NOTE in client.get("/review/index/").content.decode()
    assert NOTE in client.get("/review/warning/").content.decode()


def test_no_note_once_the_period_holds_enough_incidents(
    client, city_reviewer, tianhe_street, tianhe_unit, settings
):
    settings.REVIEW_INDEX_MIN_INCIDENTS = 3
    client.force_login(city_reviewer)
    for day in range(3):
        past_incident(region=tianhe_street, at=timezone.now() - dt.timedelta(days=day + 1))
    assert NOTE not in client.get("/review/index/").content.decode()
    assert NOTE not in client.get("/review/warning/").content.decode()


# --- the rule at the root: a minimum sample before a rank or a colour -------------------


@pytest.fixture
def staffed(tianhe_street):
    """Ten units of one street, each with two members on duty and nothing else."""
    units = UnitFactory.create_batch(10, region=tianhe_street, post_min=1)
    for unit in units:
        MemberFactory.create_batch(2, unit=unit, on_duty=True)
    return units


def test_one_drill_does_not_turn_the_units_that_missed_it_red(
    city_reviewer, tianhe, tianhe_street, staffed, django_capture_on_commit_callbacks
):
    """One street drill that only one unit answered turned 168 of 169 units red:
    with no incident history the drill leaves weighed 43 % of each unit's score."""
    station = StaffFactory(role=StaffProfile.Role.POLICE_STATION, region=tianhe).user
    with django_capture_on_commit_callbacks(execute=True):
        drill = services.drill_start(user=station, scope="street", code=tianhe_street.code)
    member = staffed[0].members.first()
    dispatch_services.dispatch_act(incident_id=drill.incident_id, member=member, action="accept")

    level, areas = readiness.warning_areas(user=city_reviewer, region=tianhe_street)
    assert level == "unit" and len(areas) == 10
    assert [a.colour for a in areas if a.colour == "red"] == []
    assert {a.colour for a in areas} == {"grey"}
    rows = readiness.index_scores(user=city_reviewer, level="unit", region=tianhe_street)
    assert all(r.rank is None and r.sample.drills == 1 for r in rows)


def test_a_units_drill_record_counts_once_it_holds_enough_drills(
    city_reviewer, tianhe, tianhe_street, staffed, settings, django_capture_on_commit_callbacks
):
    settings.REVIEW_INDEX_MIN_DRILL_ALERTS = 2
    station = StaffFactory(role=StaffProfile.Role.POLICE_STATION, region=tianhe).user
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            drill = services.drill_start(user=station, scope="street", code=tianhe_street.code)
        member = staffed[0].members.first()
        dispatch_services.dispatch_act(
            incident_id=drill.incident_id, member=member, action="accept"
        )
        services.drill_close(user=station, drill_id=drill.pk)
    rows = readiness.index_scores(user=city_reviewer, level="unit", region=tianhe_street)
    assert all(r.rated for r in rows)
    assert rows[0].key == staffed[0].pk and rows[0].rank == 1
    drills = next(c for c in rows[-1].tree.children if c.code == "drills")
    assert drills.score == 0.0 and drills.share is not None


def test_a_district_with_a_record_is_never_ranked_below_districts_without_one(
    city_reviewer, tianhe_street, haizhu_street, settings
):
    """天河区, the only district with real incidents, ranked last: the others were
    scored on readiness and coverage alone, the index punished having data."""
    settings.REVIEW_INDEX_MIN_INCIDENTS = 3
    for region in (tianhe_street, haizhu_street):
        unit = UnitFactory(region=region, post_min=1)
        MemberFactory.create_batch(2, unit=unit, on_duty=True)
    for day in range(3):
        past_incident(
            region=tianhe_street,
            at=timezone.now() - dt.timedelta(days=day + 1),
            response_s=90,
            control_s=300,
            handling_s=600,
        )
    rows = {r.label: r for r in readiness.index_scores(user=city_reviewer, level="district")}
    assert rows["天河区"].rank == 1 and rows["天河区"].rated
    assert rows["海珠区"].rank is None and not rows["海珠区"].rated
    colours = {a.label: a.colour for a in readiness.warning_areas(user=city_reviewer)[1]}
    assert colours["海珠区"] == "grey" and colours["天河区"] != "grey"


def test_a_fresh_city_is_grey_not_amber_and_the_pages_say_the_rule(
    client, city_reviewer, tianhe_street, haizhu_street, staffed
):
    level, areas = readiness.warning_areas(user=city_reviewer)
    assert level == "district" and areas
    assert {a.colour for a in areas} == {"grey"}
    assert all(a.reasons[0].startswith("数据不足") for a in areas)
    client.force_login(city_reviewer)
    for url in ("/review/index/", "/review/warning/"):
        page = client.get(url).content.decode()
        assert "评分规则" in page and "数据不足" in page


def test_the_explanation_shows_a_record_below_its_minimum_as_left_out_not_as_missing(
    client, city_reviewer, tianhe, tianhe_street, staffed
):
    for day in range(2):
        past_incident(region=tianhe_street, at=timezone.now() - dt.timedelta(days=day + 1))
    rows = readiness.index_scores(user=city_reviewer, level="district")
    row = next(r for r in rows if r.key == tianhe.pk)
    timing = next(c for c in row.tree.children if c.code == "timing")
    assert timing.score is None
    assert all(leaf.below_sample and leaf.raw is not None for leaf in timing.children)
    client.force_login(city_reviewer)
    page = client.get(f"/review/index/district/{tianhe.pk}/").content.decode()
    assert "样本不足，不计入" in page and "数据不足" in page and "第 None" not in page


def test_the_weekly_trend_leaves_a_week_too_small_to_rate_empty(
    city_reviewer, tianhe_street, tianhe_unit, settings
):
    """The explanation's 8-week trend plotted a score for a week of one incident
    while the index itself left that street unrated."""
    today = timezone.localdate()
    last_monday = today - dt.timedelta(days=today.weekday() + 7)
    midweek = timezone.make_aware(
        dt.datetime.combine(last_monday + dt.timedelta(days=2), dt.time(12))
    )
    past_incident(region=tianhe_street, at=midweek)

    settings.REVIEW_INDEX_MIN_INCIDENTS = 2
    trend = readiness.index_trend(user=city_reviewer, level="street", key=tianhe_street.pk)
    assert len(trend) == 8 and trend[-1][0] == last_monday.isoformat()
    assert trend[-1][1] is None

    settings.REVIEW_INDEX_MIN_INCIDENTS = 1
    trend = readiness.index_trend(user=city_reviewer, level="street", key=tianhe_street.pk)
    assert trend[-1][1] is not None
