"""The facts kept by Celery give exactly the live answers (on SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from dispatch.models import Incident
from review import selectors, services
from review.models import DispatchFact, IncidentFact
from review.selectors import IncidentFilter
from review.tasks import facts_refresh
from tests.factories import UnitFactory

from .conftest import T0, dispatch_to, past_incident

pytestmark = pytest.mark.django_db

WINDOW = {"since": T0 - dt.timedelta(days=30), "until": T0 + dt.timedelta(days=30)}


@pytest.fixture
def history(tianhe_street, haizhu_street, tianhe_unit):
    rng = random.Random(11)
    other = UnitFactory(region=haizhu_street)
    for i in range(40):
        r = rng.randint(5, 120)
        c = r + rng.randint(20, 250)
        incident = past_incident(
            region=rng.choice([tianhe_street, haizhu_street]),
            response_s=r + rng.random(),
            control_s=c,
            handling_s=c + rng.randint(10, 500),
            at=T0 + dt.timedelta(days=rng.randint(0, 20), seconds=rng.randint(0, 86399)),
            kind=rng.choice([Incident.Kind.FIGHT, Incident.Kind.FIRE]),
        )
        dispatch_to(incident, tianhe_unit, accepted_s=r + 0.5, on_site_s=r + 60)
        dispatch_to(incident, other, declined=i % 3 == 0)


def _live(user, filters, by):
    return [
        r.as_dict()
        for r in selectors.incident_stats(
            qs=selectors.incident_list(user=user, filters=filters), by=by
        )
    ]


@pytest.mark.parametrize("by", [None, "district", "street", "week"])
@pytest.mark.parametrize(
    "extra", [{}, {"kind": Incident.Kind.FIRE}, {"compliant": True}, {"compliant": False}]
)
def test_area_stats_from_facts_plus_newer_live_rows_equal_the_live_answer(
    history, city_reviewer, tianhe_street, by, extra
):
    services.facts_sync(full=True)
    past_incident(
        region=tianhe_street, response_s=77, at=T0 + dt.timedelta(days=3)
    )  # after the sync
    filters = IncidentFilter(**WINDOW, **extra)
    assert selectors.facts_watermark() > 0
    expected = _live(city_reviewer, filters, by)
    assert [
        r.as_dict() for r in selectors.area_stats(user=city_reviewer, filters=filters, by=by)
    ] == expected
    assert expected and expected[0]["incidents"] > 0


def test_a_district_reviewer_gets_the_same_from_facts_as_live(history, tianhe_reviewer, tianhe):
    services.facts_sync(full=True)
    for region in (None, tianhe):
        filters = IncidentFilter(region=region, **WINDOW)
        assert [
            r.as_dict()
            for r in selectors.area_stats(user=tianhe_reviewer, filters=filters, by="street")
        ] == _live(tianhe_reviewer, filters, "street")


def test_unit_stats_from_dispatch_facts_equal_the_live_answer(
    history, city_reviewer, haizhu_reviewer
):
    filters = IncidentFilter(**WINDOW)
    live = {
        u: [s.as_dict() for s in selectors.unit_stats(user=u, filters=filters)]
        for u in (city_reviewer, haizhu_reviewer)
    }
    services.facts_sync(full=True)
    assert DispatchFact.objects.count() == 80
    for user, expected in live.items():
        assert [s.as_dict() for s in selectors.unit_stats(user=user, filters=filters)] == expected


def test_the_beat_task_adds_new_incidents_and_rereads_recent_ones(history, tianhe_street):
    facts_refresh.delay()
    assert IncidentFact.objects.count() == 40
    fresh = past_incident(
        region=tianhe_street, response_s=None, control_s=None, handling_s=None, at=T0
    )
    now = dt.datetime.now(dt.UTC)
    Incident.objects.filter(pk=fresh.pk).update(discovered_at=now)
    facts_refresh.delay()
    assert IncidentFact.objects.get(incident=fresh).to_response_s is None
    Incident.objects.filter(pk=fresh.pk).update(responded_at=now + dt.timedelta(seconds=30))
    facts_refresh.delay()
    assert IncidentFact.objects.get(incident=fresh).to_response_s == 30


def test_drills_are_not_facts(tianhe_street):
    past_incident(region=tianhe_street, is_drill=True)
    services.facts_sync(full=True)
    assert not IncidentFact.objects.exists()


def test_unit_counts_from_the_weekly_roll_up_equal_the_live_counts(history, city_reviewer):
    filters = IncidentFilter(**WINDOW)

    def counts(user):
        return [
            (s.unit_id, s.alerted, s.accepted, s.declined, s.no_answer, s.on_site)
            for s in selectors.unit_stats(user=user, filters=filters, durations=False)
        ]

    live = counts(city_reviewer)
    services.facts_sync(full=True)
    assert counts(city_reviewer) == live and live


def test_the_report_lists_units_with_medians_from_the_roll_ups(history, city_reviewer):
    filters = IncidentFilter(**WINDOW)
    before = selectors.response_report(user=city_reviewer, filters=filters)
    services.facts_sync(full=True)
    after = selectors.response_report(user=city_reviewer, filters=filters)
    assert [u.as_dict() for u in after.units] == [u.as_dict() for u in before.units]
    assert after.unit_count == before.unit_count == 2
    assert after.units[0].durations["to_response_s"].median is not None


@pytest.mark.parametrize("extra", [{}, {"compliant": True}, {"kind": Incident.Kind.FIRE}])
def test_the_incident_count_from_facts_equals_the_live_count(
    history, city_reviewer, tianhe, tianhe_street, extra
):
    services.facts_sync(full=True)
    past_incident(region=tianhe_street, response_s=10, at=T0 + dt.timedelta(days=1))
    for region in (None, tianhe):
        filters = IncidentFilter(region=region, **WINDOW, **extra)
        live = selectors.incident_list(user=city_reviewer, filters=filters).count()
        assert selectors.incident_count(user=city_reviewer, filters=filters) == live


def test_the_report_runs_a_fixed_number_of_queries_however_many_streets_and_units(
    city_reviewer, tianhe
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.factories import RegionFactory

    def queries_for(n_streets: int) -> int:
        for i in range(n_streets):
            street = RegionFactory(parent=tianhe, code=f"9{n_streets}{i:04d}")
            unit = UnitFactory(region=street)
            incident = past_incident(region=street, at=T0 + dt.timedelta(days=1, hours=i))
            dispatch_to(incident, unit, accepted_s=20, on_site_s=90)
        services.facts_sync(full=True)
        filters = IncidentFilter(region=tianhe, **WINDOW)
        with CaptureQueriesContext(connection) as ctx:
            selectors.response_report(user=city_reviewer, filters=filters)
        return len(ctx.captured_queries)

    assert queries_for(2) == queries_for(12)
