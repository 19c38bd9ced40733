"""The readiness index stored by beat answers the default period exactly as the
live computation would, for every scope that can read it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from review import readiness, services
from review.models import IndexSnapshot
from tests.factories import MemberFactory, UnitFactory

from .conftest import dispatch_to, past_incident

pytestmark = pytest.mark.django_db


@pytest.fixture
def busy_city(tianhe_street, haizhu_street):
    units = []
    for i, street in enumerate([tianhe_street, haizhu_street] * 3):
        unit = UnitFactory(region=street, post_min=1)
        MemberFactory.create_batch(i % 3, unit=unit, on_duty=True)
        units.append(unit)
    now = timezone.now()
    for i in range(12):
        street = tianhe_street if i % 3 else haizhu_street
        incident = past_incident(
            region=street, at=now - dt.timedelta(days=1 + 6 * i), response_s=20 + 9 * i,
            control_s=100 + 20 * i, handling_s=300 + 30 * i,
        )  # fmt: skip
        dispatch_to(incident, units[i % 6], accepted_s=20 + 9 * i, on_site_s=100 + 20 * i)
        dispatch_to(incident, units[(i + 1) % 6], declined=True)
    services.facts_sync()
    return units


def _rows(rows):
    return [(r.key, r.label, r.code, r.score, r.rank, r.metrics, r.tree.as_dict()) for r in rows]


def _both(user, level, region=None, now=None):
    until = now or timezone.now()
    since = until - dt.timedelta(days=90)
    kw = {"user": user, "level": level, "region": region, "since": since, "until": until}
    return readiness.index_scores(**kw), readiness.index_scores(**kw, stored=False)


@pytest.mark.parametrize("level", ["district", "street", "unit"])
def test_the_stored_index_equals_the_live_one_for_the_city(busy_city, city_reviewer, level):
    now = timezone.now()
    services.index_snapshots_refresh(now=now)

    stored, live = _both(city_reviewer, level, now=now)

    assert stored and _rows(stored) == _rows(live)


@pytest.mark.parametrize("level", ["street", "unit"])
def test_a_district_reviewer_and_a_district_filter_read_their_districts_snapshot(
    busy_city, city_reviewer, tianhe_reviewer, tianhe, level
):
    now = timezone.now()
    services.index_snapshots_refresh(now=now)

    for user, region in ((tianhe_reviewer, None), (city_reviewer, tianhe)):
        stored, live = _both(user, level, region, now=now)
        assert stored and _rows(stored) == _rows(live)


def test_the_stored_index_is_read_without_scoring_every_unit(
    busy_city, city_reviewer, django_assert_max_num_queries
):
    now = timezone.now()
    services.index_snapshots_refresh(now=now)
    until = now + dt.timedelta(seconds=30)  # a page a moment later

    with django_assert_max_num_queries(4):
        rows = readiness.index_scores(
            user=city_reviewer, level="unit", since=until - dt.timedelta(days=90), until=until
        )
    assert len(rows) == len(busy_city)


def test_another_period_or_a_stale_snapshot_is_computed_live(busy_city, city_reviewer, settings):
    now = timezone.now()
    services.index_snapshots_refresh(now=now)
    IndexSnapshot.objects.update(rows=[])  # what a stored read would return: nothing

    week = readiness.index_scores(
        user=city_reviewer, level="unit", since=now - dt.timedelta(days=7), until=now
    )
    later = now + dt.timedelta(seconds=settings.REVIEW_INDEX_STALE_S + 1)
    stale = readiness.index_scores(
        user=city_reviewer, level="unit", since=later - dt.timedelta(days=90), until=later
    )

    assert len(week) == len(stale) == len(busy_city)
    assert (
        readiness.index_scores(
            user=city_reviewer, level="unit", since=now - dt.timedelta(days=90), until=now
        )
        == []
    )


@pytest.mark.parametrize("limit", [2, 300])
def test_the_index_page_reads_the_snapshots_head_as_the_whole_list_ranks_it(
    busy_city, city_reviewer, monkeypatch, limit
):
    now = timezone.now()
    monkeypatch.setattr(readiness, "INDEX_HEAD_ROWS", 3)
    services.index_snapshots_refresh(now=now)
    kw = {
        "user": city_reviewer,
        "level": "unit",
        "since": now - dt.timedelta(days=90),
        "until": now,
    }
    whole = readiness.index_scores(**kw)

    page, count = readiness.index_page(**kw, limit=limit)

    assert count == len(whole) == len(busy_city)
    if limit <= 3:  # the head answers: the rows themselves are never read
        IndexSnapshot.objects.update(rows=[])
        page, count = readiness.index_page(**kw, limit=limit)
    assert _rows(page) == _rows(whole[:limit])
    assert count == len(busy_city)


def test_a_snapshot_without_a_head_is_read_whole(busy_city, city_reviewer):
    now = timezone.now()
    services.index_snapshots_refresh(now=now)
    IndexSnapshot.objects.update(head=[], row_count=None)  # stored before heads were kept
    kw = {
        "user": city_reviewer,
        "level": "unit",
        "since": now - dt.timedelta(days=90),
        "until": now,
    }

    page, count = readiness.index_page(**kw, limit=2)

    assert count == len(busy_city)
    assert _rows(page) == _rows(readiness.index_scores(**kw)[:2])
