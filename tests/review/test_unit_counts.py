"""Per-unit counts of a range from the cumulative weekly roll-up (two stored rows
per unit) equal the live counts, and the report's unit lists equal the lists
made by sorting every unit."""

from __future__ import annotations

import datetime as dt

import pytest

from review import selectors, services
from review.models import UnitCumulative, UnitWeekly
from review.selectors import IncidentFilter, report
from tests.review.conftest import seeded_city

pytestmark = pytest.mark.django_db

UNTIL = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def seeded(tianhe_street, haizhu_street):
    return seeded_city(tianhe_street, haizhu_street, count=400, seed=7, until=UNTIL)


def _counts(rows):
    return [
        (s.unit_id, s.alerted, s.accepted, s.declined, s.no_answer, s.on_site)
        for s in sorted(rows, key=lambda s: s.unit_id)
    ]


def _live_counts(user, filters):
    # compliant=False is not a unit filter: it only stops the facts from answering.
    live = IncidentFilter(
        region=filters.region, since=filters.since, until=filters.until, kind=filters.kind
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(selectors.stats, "facts_watermark", lambda: 0)
        return _counts(selectors.unit_stats(user=user, filters=live, durations=False))


RANGES = [
    (UNTIL - dt.timedelta(days=45, hours=5), UNTIL - dt.timedelta(days=3, hours=7)),
    (UNTIL - dt.timedelta(days=90), UNTIL + dt.timedelta(days=20)),  # past either end
    (UNTIL - dt.timedelta(days=20, hours=1), UNTIL - dt.timedelta(days=12)),
]


@pytest.mark.parametrize("since, until", RANGES)
def test_unit_counts_from_the_cumulative_roll_up_equal_the_live_counts(
    seeded, city_reviewer, tianhe_reviewer, tianhe, since, until
):
    assert UnitCumulative.objects.exists()
    for user, region in ((city_reviewer, None), (city_reviewer, tianhe), (tianhe_reviewer, None)):
        filters = IncidentFilter(region=region, since=since, until=until)
        got = [tuple(map(int, r)) for r in selectors.unit_counts(user=user, filters=filters)]
        live = _live_counts(user, filters)
        assert got == live and live


def test_unit_counts_sum_the_weekly_roll_up_until_the_cumulative_one_is_built(
    seeded, city_reviewer
):
    filters = IncidentFilter(since=RANGES[0][0], until=RANGES[0][1])
    expected = _live_counts(city_reviewer, filters)
    UnitCumulative.objects.all().delete()  # a database that predates it

    assert [
        tuple(map(int, r)) for r in selectors.unit_counts(user=city_reviewer, filters=filters)
    ] == expected

    # The next roll-up of one late week builds it all, from the first week.
    last = UnitWeekly.objects.order_by("-week").values_list("week", flat=True)[0]
    services.rollups_rebuild(weeks={last})
    first = UnitWeekly.objects.order_by("week").values_list("week", flat=True)[0]
    assert UnitCumulative.objects.filter(week=first).exists()
    assert [
        tuple(map(int, r)) for r in selectors.unit_counts(user=city_reviewer, filters=filters)
    ] == expected


@pytest.mark.parametrize("shown, unreliable", [(3, 2), (5, 4), (200, 20)])
def test_the_reports_unit_lists_equal_sorting_every_unit(
    seeded, city_reviewer, monkeypatch, shown, unreliable
):
    monkeypatch.setattr(report, "UNITS_SHOWN", shown)
    monkeypatch.setattr(report, "UNRELIABLE_SHOWN", unreliable)
    filters = IncidentFilter(since=RANGES[0][0], until=RANGES[0][1])
    every = selectors.unit_stats(user=city_reviewer, filters=filters, durations=False)
    expect_shown = sorted(every, key=lambda u: (-u.alerted, u.code))[:shown]
    expect_unreliable = selectors.units_unreliable(every, limit=unreliable)
    assert expect_unreliable and (len(every) > shown or shown == 200)

    got = selectors.response_report(user=city_reviewer, filters=filters)

    assert [u.unit_id for u in got.units] == [u.unit_id for u in expect_shown]
    assert [u.unit_id for u in got.unreliable] == [u.unit_id for u in expect_unreliable]
    assert got.unit_count == len(every)
    assert _counts(got.units) == _counts(expect_shown)
    assert all(u.code and u.durations for u in got.units)


def test_hist_percentiles_equal_percentile_cont():
    import random

    from review.selectors.common import hist_percentiles, percentile_cont

    rng = random.Random(3)
    for size in (1, 2, 3, 10, 400):
        hist = {rng.randint(0, 900): rng.randint(1, 5) for _ in range(size)}
        pairs = sorted(hist.items())
        count, got = hist_percentiles(hist, (0.5, 0.9, 0.0, 1.0))
        assert count == sum(hist.values())
        assert got == [percentile_cont(pairs, p) for p in (0.5, 0.9, 0.0, 1.0)]
    assert hist_percentiles({}, (0.5,)) == (0, [None])
