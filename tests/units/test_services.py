from __future__ import annotations

import json
import math
import random

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from tests.factories import EquipmentFactory, MemberFactory, RegionFactory, UnitFactory
from units import geo, services
from units.models import Member, Region, RosterChange, Unit
from units.services import location_validate, member_set_duty, unit_create

pytestmark = pytest.mark.django_db

# A box around central Tianhe, GeoJSON order (lon, lat).
TIANHE_BOX = {
    "type": "Polygon",
    "coordinates": [
        [[113.30, 23.10], [113.40, 23.10], [113.40, 23.20], [113.30, 23.20], [113.30, 23.10]]
    ],
}


@pytest.fixture(autouse=True)
def _fresh_district_shapes():
    """The outlines are cached per process: never let one test's leak into another."""
    services.district_shapes_reset()
    yield
    services.district_shapes_reset()


@pytest.fixture
def tianhe_with_boundary(tianhe) -> Region:
    Region.objects.filter(pk=tianhe.pk).update(boundary=TIANHE_BOX)
    services.district_shapes_reset()
    return tianhe


def create(region: Region, **overrides) -> Unit:
    fields = {"code": "GZ-TH-0001", "name": "天河城", "lat": 23.13, "lon": 113.32}
    return unit_create(region=region, **{**fields, **overrides})


# --- unit_create -------------------------------------------------------------


def test_unit_create_saves_a_valid_unit(tianhe_street):
    unit = create(tianhe_street, kind=Unit.Kind.MALL)

    unit.refresh_from_db()
    assert (unit.code, unit.kind, unit.region_id) == ("GZ-TH-0001", "mall", tianhe_street.pk)


@pytest.mark.parametrize(
    ("lat", "lon", "field"),
    [
        (91.0, 113.32, "lat"),
        (-90.5, 113.32, "lat"),
        (math.nan, 113.32, "lat"),
        (23.13, 180.01, "lon"),
        (23.13, -200.0, "lon"),
        (23.13, math.inf, "lon"),
    ],
)
def test_unit_create_rejects_coordinates_out_of_range_naming_the_field(
    tianhe_street, lat, lon, field
):
    with pytest.raises(ValidationError) as exc:
        create(tianhe_street, lat=lat, lon=lon)

    assert set(exc.value.message_dict) == {field}
    assert not Unit.objects.exists()


def test_unit_create_rejects_a_point_outside_the_service_area(tianhe_with_boundary, tianhe_street):
    with pytest.raises(ValidationError) as exc:
        create(tianhe_street, lat=23.05, lon=113.32)  # south of the box

    assert {"lat", "lon"} <= set(exc.value.message_dict)
    assert "服务区域" in exc.value.message_dict["lat"][0]
    assert not Unit.objects.exists()


def test_unit_create_accepts_a_point_inside_the_service_area(tianhe_with_boundary, tianhe_street):
    assert create(tianhe_street, lat=23.15, lon=113.35).pk is not None


def test_service_area_loaded_after_a_first_check_is_still_enforced(tianhe, tianhe_street):
    """An empty outline table is not cached: outlines seeded later take effect."""
    location_validate(lat=23.05, lon=113.32)  # no outlines yet: anything valid goes

    Region.objects.filter(pk=tianhe.pk).update(boundary=TIANHE_BOX)

    with pytest.raises(ValidationError):
        location_validate(lat=23.05, lon=113.32)


def test_location_validate_prefixes_field_names():
    with pytest.raises(ValidationError) as exc:
        location_validate(lat=None, lon=113.0, field_prefix="location_")

    assert set(exc.value.message_dict) == {"location_lat"}


def test_unit_create_rejects_a_duplicate_code_naming_code(tianhe_street):
    create(tianhe_street)

    with pytest.raises(ValidationError) as exc:
        create(tianhe_street, name="另一个")

    assert "code" in exc.value.message_dict
    assert Unit.objects.count() == 1


def test_unit_create_turns_a_racing_duplicate_into_a_code_error(tianhe_street, monkeypatch):
    """Two creates may both pass validation; the unique index decides, as a field error."""
    create(tianhe_street)
    monkeypatch.setattr(services, "unit_validate", lambda *, unit: None)

    with pytest.raises(ValidationError) as exc:
        create(tianhe_street, name="另一个")

    assert "code" in exc.value.message_dict


def test_unit_create_reports_every_bad_field_at_once(tianhe_street):
    with pytest.raises(ValidationError) as exc:
        create(tianhe_street, name="", kind="spaceship", lat=100.0)

    assert {"name", "kind", "lat"} <= set(exc.value.message_dict)


def test_database_still_refuses_out_of_range_coordinates(tianhe_street):
    with pytest.raises(IntegrityError):
        UnitFactory(region=tianhe_street, lat=95.0)


# --- member_set_duty ---------------------------------------------------------


def test_member_set_duty_clocks_a_member_in_and_out(near_unit):
    member = MemberFactory(unit=near_unit)

    member_set_duty(member=member, on_duty=True)
    member.refresh_from_db()
    assert member.on_duty is True
    assert member.duty_since is not None

    member_set_duty(member=member, on_duty=False)
    member.refresh_from_db()
    assert member.on_duty is False
    assert member.duty_since is None


def test_clocking_in_twice_keeps_the_first_duty_since(near_unit):
    member = MemberFactory(unit=near_unit)
    member_set_duty(member=member, on_duty=True)
    first = Member.objects.get(pk=member.pk).duty_since

    member_set_duty(member=member, on_duty=True)

    assert Member.objects.get(pk=member.pk).duty_since == first


def test_member_set_duty_refuses_an_inactive_member(near_unit):
    member = MemberFactory(unit=near_unit, is_active=False)

    with pytest.raises(ValidationError) as exc:
        member_set_duty(member=member, on_duty=True)

    assert exc.value.error_dict["on_duty"][0].code == "member_inactive"
    assert Member.objects.get(pk=member.pk).on_duty is False


def test_member_set_duty_refuses_a_member_of_an_inactive_unit(near_unit):
    member = MemberFactory(unit=near_unit)
    Unit.objects.filter(pk=near_unit.pk).update(is_active=False)

    # ``member.unit`` in memory is still active: the service must read the row.
    with pytest.raises(ValidationError) as exc:
        member_set_duty(member=member, on_duty=True)

    assert exc.value.error_dict["on_duty"][0].code == "unit_inactive"
    assert Member.objects.get(pk=member.pk).on_duty is False


def test_an_inactive_member_can_still_clock_out(near_unit):
    member = MemberFactory(unit=near_unit, on_duty=True)
    Member.objects.filter(pk=member.pk).update(is_active=False)

    member_set_duty(member=member, on_duty=False)

    assert Member.objects.get(pk=member.pk).on_duty is False


# --- roster change log -------------------------------------------------------


def unit_ids_logged() -> list[int | None]:
    return list(RosterChange.objects.order_by("id").values_list("unit_id", flat=True))


def test_creating_a_unit_appends_a_roster_change(tianhe_street):
    unit = create(tianhe_street)

    assert unit_ids_logged() == [unit.pk]


def test_saving_a_unit_or_member_appends_roster_changes(near_unit):
    RosterChange.objects.all().delete()

    near_unit.name = "改名"
    near_unit.save()
    member = MemberFactory(unit=near_unit)
    member_set_duty(member=member, on_duty=True)
    EquipmentFactory(unit=near_unit)

    assert unit_ids_logged() == [near_unit.pk] * 4


def test_roster_changes_are_appended_never_rewritten(near_unit):
    before = list(RosterChange.objects.values_list("id", flat=True))

    near_unit.save()

    after = list(RosterChange.objects.order_by("id").values_list("id", flat=True))
    assert after[: len(before)] == sorted(before)
    assert len(after) == len(before) + 1


def test_roster_changed_with_no_ids_asks_for_a_full_reload(db):
    services.roster_changed(unit_ids=None)

    assert unit_ids_logged() == [None]


def test_only_district_outlines_define_the_service_area(tianhe):
    RegionFactory(parent=tianhe, level=Region.Level.STREET, boundary=TIANHE_BOX)

    location_validate(lat=0.0, lon=0.0)  # no district outline: any valid point goes


# --- district_at ------------------------------------------------------------------


@pytest.fixture
def guangzhou_shapes(settings) -> list[services.DistrictShape]:
    """The real outlines of Guangzhou's eleven districts, as the cache holds them."""
    features = json.loads((settings.GEODATA_DIR / "district_boundaries.geojson").read_text())
    shapes = [
        services.DistrictShape(i, f["properties"]["code"], f["geometry"])
        for i, f in enumerate(features["features"], start=1)
    ]
    services._shapes = tuple(shapes)
    return shapes


def test_a_point_is_tested_only_against_the_outlines_whose_box_holds_it(
    guangzhou_shapes, monkeypatch
):
    """12,783 vertices in eleven outlines: testing them in turn was 0.6 ms of
    every intake (bench/city.py)."""
    tested = []
    real = geo.point_in_geometry
    monkeypatch.setattr(geo, "point_in_geometry", lambda *a: tested.append(a) or real(*a))

    found = services.district_at(lat=23.1318, lon=113.3200)  # 天河城

    assert found is not None and found.code == "440106"  # 天河区
    assert len(tested) <= 3


def test_the_boxes_change_no_answer(guangzhou_shapes):
    rng = random.Random(7)
    south = min(s.bbox[0] for s in guangzhou_shapes)
    west = min(s.bbox[1] for s in guangzhou_shapes)
    north = max(s.bbox[2] for s in guangzhou_shapes)
    east = max(s.bbox[3] for s in guangzhou_shapes)
    inside = 0
    for _ in range(400):
        lat, lon = rng.uniform(south, north), rng.uniform(west, east)
        expected = next(
            (s for s in guangzhou_shapes if geo.point_in_geometry(lat, lon, s.geometry)), None
        )
        assert services.district_at(lat=lat, lon=lon) == expected
        inside += expected is not None
    assert inside > 100
