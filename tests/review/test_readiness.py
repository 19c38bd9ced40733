from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from review import readiness
from review.models import IndicatorNode
from tests.factories import MemberFactory, UnitFactory

from .conftest import past_incident

pytestmark = pytest.mark.django_db

M = IndicatorNode.Metric


@pytest.fixture(autouse=True)
def _small_samples(settings):
    # These tests score a handful of incidents: let them count as a record.
    settings.REVIEW_INDEX_MIN_INCIDENTS = 1
    settings.REVIEW_INDEX_MIN_UNIT_ALERTS = 1


def test_the_default_tree_is_seeded_as_data_with_five_level_one_indicators():
    [root] = readiness.indicator_tree()
    assert root.node.name == "就绪与响应综合指数"
    assert [c.node.code for c in root.children] == [
        "timing",
        "compliance",
        "drills",
        "readiness",
        "coverage",
    ]
    leaves = [leaf.node.metric for c in root.children for leaf in c.children]
    assert M.RESPONSE_MEDIAN in leaves and M.COVERAGE_GAP in leaves and M.KIT_COMPLETE in leaves


@pytest.mark.parametrize(
    ("value", "good", "bad", "score"),
    [
        (30, 30, 120, 100.0),
        (75, 30, 120, 50.0),
        (500, 30, 120, 0.0),
        (95, 95, 50, 100.0),
        (None, 1, 0, None),
    ],
)
def test_a_leaf_scores_linearly_between_bad_and_good_clamped(value, good, bad, score):
    assert readiness.leaf_score(value, good=good, bad=bad) == score


def test_a_leaf_without_data_is_left_out_and_its_siblings_weights_renormalised():
    [root] = readiness.indicator_tree()
    timing = root.children[0]
    scored = readiness.score_tree(timing, {M.RESPONSE_MEDIAN: 75})  # no arrival data
    assert scored.score == 50.0
    assert scored.children[0].share == 1.0 and scored.children[1].score is None


def _recent(**kw):
    return past_incident(at=timezone.now() - dt.timedelta(days=3), **kw)


def test_districts_are_ranked_and_each_score_explained_down_to_raw_values(
    city_reviewer, tianhe_street, haizhu_street
):
    for _ in range(3):
        _recent(region=tianhe_street, response_s=20, control_s=100, handling_s=200)
        _recent(region=haizhu_street, response_s=100, control_s=400, handling_s=900)
    rows = readiness.index_scores(user=city_reviewer, level="district")
    assert [r.label for r in rows] == ["天河区", "海珠区"]
    assert rows[0].rank == 1 and rows[0].score > rows[1].score
    timing = rows[1].tree.children[0]
    response = timing.children[0]
    assert (response.raw, response.score) == (100, pytest.approx(22.2))


def test_weights_are_data_an_admin_can_change(city_reviewer, tianhe_street, haizhu_street):
    _recent(region=tianhe_street, response_s=20, control_s=400, handling_s=900)
    _recent(region=haizhu_street, response_s=100, control_s=100, handling_s=200)
    before = {
        r.label: r.score for r in readiness.index_scores(user=city_reviewer, level="district")
    }
    IndicatorNode.objects.filter(code="arrival_median").update(weight=0)
    IndicatorNode.objects.filter(code="compliance").update(active=False)
    after = {r.label: r.score for r in readiness.index_scores(user=city_reviewer, level="district")}
    assert before != after
    assert after["天河区"] > after["海珠区"]


def test_units_get_duty_and_kit_scores_from_the_roster(city_reviewer, tianhe_street):
    staffed = UnitFactory(region=tianhe_street, post_min=1)
    MemberFactory.create_batch(2, unit=staffed, on_duty=True)
    empty = UnitFactory(region=tianhe_street)
    rows = {r.key: r for r in readiness.index_scores(user=city_reviewer, level="unit")}
    assert rows[staffed.pk].metrics[M.DUTY_COVERAGE] == 100.0
    assert rows[empty.pk].metrics[M.DUTY_COVERAGE] == 0.0
    assert rows[staffed.pk].score > rows[empty.pk].score


def test_a_district_reviewer_ranks_only_their_own_streets(
    tianhe_reviewer, tianhe_street, haizhu_street
):
    _recent(region=tianhe_street)
    _recent(region=haizhu_street)
    rows = readiness.index_scores(user=tianhe_reviewer, level="street")
    assert [r.label for r in rows] == ["五山街道"]


def test_the_explain_page_shows_the_tree_and_an_eight_week_trend(
    client, tianhe_reviewer, tianhe, tianhe_street, haizhu
):
    _recent(region=tianhe_street)
    client.force_login(tianhe_reviewer)
    response = client.get(f"/review/index/street/{tianhe_street.pk}/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "响应时长中位数" in page and "无数据，不计入" in page
    assert len(response.context["trend"]["labels"]) == 8
    assert client.get(f"/review/index/district/{haizhu.pk}/").status_code == 404
    assert "综合得分" in client.get("/review/index/").content.decode()
