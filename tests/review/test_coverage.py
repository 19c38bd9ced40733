from __future__ import annotations

import pytest

from dispatch.ranking import rank_units
from review import selectors, services
from tests.factories import MemberFactory, UnitFactory

pytestmark = pytest.mark.django_db

# A 3 km x 3 km square district (about 0.027 x 0.029 degrees).
SQUARE = {
    "type": "Polygon",
    "coordinates": [
        [[113.30, 23.10], [113.329, 23.10], [113.329, 23.127], [113.30, 23.127], [113.30, 23.10]]
    ],
}


@pytest.fixture
def square_district(tianhe, tianhe_street):
    tianhe.boundary = SQUARE
    tianhe.save()
    return tianhe


@pytest.fixture
def ready_unit(tianhe_street):
    unit = UnitFactory(region=tianhe_street, lat=23.1035, lon=113.3035, post_min=1)
    MemberFactory.create_batch(2, unit=unit, on_duty=True)  # one to send, one stays on post
    return unit


def test_cells_near_a_ready_unit_are_covered_and_the_rest_are_gaps(square_district, ready_unit):
    snapshot = services.coverage_compute(cell_m=500, target_s=180)
    cells = snapshot.cells["cells"]
    assert snapshot.cell_count == len(cells) == 36  # 6 x 6 cells of 500 m
    covered = [c for c in cells if c[2] is not None and c[2] <= 180]
    assert len(covered) == 1 and snapshot.gap_count == 35
    lat, lon, eta, district_id = covered[0]
    assert district_id == square_district.pk
    # The same answer a real wave's ranking would give for that point.
    assert rank_units(lat=lat, lon=lon, limit=1)[0].eta_s == eta


def test_a_unit_with_nobody_to_spare_leaves_a_gap(square_district, tianhe_street):
    unit = UnitFactory(region=tianhe_street, lat=23.1035, lon=113.3035, post_min=1)
    MemberFactory(unit=unit, on_duty=True)  # must stay on its own post
    assert services.coverage_compute(cell_m=500, target_s=180).gap_count == 36


def test_a_district_reviewer_gets_only_their_districts_cells(
    square_district, ready_unit, haizhu_reviewer, tianhe_reviewer
):
    services.coverage_compute(cell_m=500, target_s=180)
    assert selectors.coverage_cells(user=haizhu_reviewer)["cells"] == []
    mine = selectors.coverage_cells(user=tianhe_reviewer)
    assert mine["cell_count"] == 36 and mine["gap_count"] == 35


def test_the_map_page_draws_outlines_gaps_and_units_without_tiles(
    client, square_district, ready_unit, tianhe_reviewer
):
    services.coverage_compute(cell_m=500, target_s=180)
    client.force_login(tianhe_reviewer)
    response = client.get("/review/map/")
    assert response.status_code == 200
    data = response.context["map_data"]
    assert data["outlines"][0]["geometry"] == SQUARE
    assert data["coverage"]["gap_count"] == 35
    assert data["units"] == [[23.1035, 113.3035]]
    assert "tile" not in response.content.decode().lower()


def test_the_celery_task_keeps_a_fresh_snapshot_and_only_a_few_old_ones(
    square_district, ready_unit
):
    from review.models import CoverageSnapshot
    from review.tasks import coverage_refresh

    for _ in range(7):
        coverage_refresh.delay()
    assert CoverageSnapshot.objects.count() == 5
