from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta
from io import StringIO

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db.models import Count, Q
from django.utils import timezone
from rest_framework.authtoken.models import Token

from units import geo, seeding
from units.models import STANDARD_KIT, Equipment, Member, Region, RosterChange, StaffProfile, Unit

UNITS = 300


@pytest.fixture(autouse=True)
def _fast_hasher(settings):
    # PBKDF2 at Django's default cost is ~0.5 s per hash: too slow for a unit test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, verbosity=0, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def seeded(db) -> None:
    seed("--units", str(UNITS))


def table_counts() -> dict[str, int]:
    return {
        "regions": Region.objects.count(),
        "units": Unit.objects.count(),
        "members": Member.objects.count(),
        "on_duty": Member.objects.filter(on_duty=True).count(),
        "equipment": Equipment.objects.count(),
        "users": get_user_model().objects.count(),
        "staff": StaffProfile.objects.count(),
        "tokens": Token.objects.count(),
    }


def test_seeding_300_units_scales_members_duty_and_equipment_with_the_city(seeded):
    counts = table_counts()
    assert counts["units"] == UNITS
    assert counts["members"] == round(UNITS * 245_500 / 23_000)
    assert counts["on_duty"] == round(UNITS * 41_000 / 23_000)
    assert counts["equipment"] >= UNITS * len(STANDARD_KIT)
    per_unit_duty = Counter(
        Unit.objects.annotate(n=Count("members", filter=Q(members__on_duty=True))).values_list(
            "n", flat=True
        )
    )
    assert per_unit_duty[2] + per_unit_duty[3] > 0.6 * UNITS  # most units: 2-3 on duty
    assert max(per_unit_duty) <= 3
    on_duty = Member.objects.filter(on_duty=True)
    assert not on_duty.filter(duty_since=None).exists()
    assert not Member.objects.filter(on_duty=False, duty_since__isnull=False).exists()
    assert Member.objects.filter(trained=True).count() > 0.85 * counts["members"]
    assert not Unit.objects.exclude(post_min=1).exists()
    assert len(set(Unit.objects.values_list("kind", flat=True))) == len(Unit.Kind)
    # A unit sits in a street, and units are denser in the four core districts.
    assert not Unit.objects.exclude(region__level=Region.Level.STREET).exists()
    core = Unit.objects.filter(Q(region__parent__code__in=seeding.CORE_DISTRICTS)).count()
    assert core > 0.3 * UNITS


def test_regions_are_the_city_its_districts_and_streets_with_paths_and_outlines(seeded):
    city = Region.objects.get(code="4401")
    assert (city.name, city.level, city.path) == ("广州市", Region.Level.CITY, "4401/")
    districts = Region.objects.filter(level=Region.Level.DISTRICT)
    assert districts.count() == 11
    assert not districts.filter(boundary=None).exists()
    assert not districts.exclude(parent=city).exists()
    streets = Region.objects.filter(level=Region.Level.STREET).select_related("parent")
    assert streets.count() == 178  # 142 街道 + 34 镇 + 2 other areas
    assert Counter(streets.values_list("street_type", flat=True)) == {
        "街道": 142,
        "镇": 34,
        "other": 2,
    }
    for street in streets:
        assert street.path == f"4401/{street.parent.code}/{street.code}/"
        # Every street has a point, the 13 without one in the data included.
        assert geo.point_in_geometry(street.lat, street.lon, street.parent.boundary)


def test_every_unit_lies_inside_its_own_district_outline(seeded):
    units = Unit.objects.select_related("region__parent")
    for unit in units:
        assert geo.point_in_geometry(unit.lat, unit.lon, unit.region.parent.boundary), unit.code


def test_unit_codes_and_member_phones_are_unique_and_look_right(seeded):
    codes = list(Unit.objects.values_list("code", flat=True))
    assert len(set(codes)) == len(codes)
    assert all(re.fullmatch(r"GZ4401\d\d-\d{5}", c) for c in codes)
    assert all("应急单元" in n for n in Unit.objects.values_list("name", flat=True))
    phones = list(Member.objects.values_list("phone", flat=True))
    assert len(set(phones)) == len(phones)
    assert all(re.fullmatch(r"1[3-9]\d{9}", p) for p in phones)


def test_every_unit_has_the_full_standard_kit_in_date_and_some_expire_within_30_days(seeded):
    today = timezone.localdate()
    kit_ok = Q()
    for kind, qty in STANDARD_KIT.items():
        kit_ok |= Q(kind=kind, quantity__gte=qty)
    ok = Equipment.objects.filter(
        kit_ok,
        condition=Equipment.Condition.GOOD,
        expires__gt=today,
        last_inspected__lt=today,
        last_inspected__gte=today - timedelta(days=365),
    )
    per_unit = Counter(ok.values_list("unit_id", flat=True))
    assert len(per_unit) == UNITS
    assert set(per_unit.values()) == {len(STANDARD_KIT)}
    near = Equipment.objects.filter(expires__lte=today + timedelta(days=30)).count()
    assert 0.01 < near / Equipment.objects.count() < 0.06
    aed_kinds = set(
        Unit.objects.filter(equipment__kind="aed").values_list("kind", flat=True).distinct()
    )
    assert aed_kinds and aed_kinds <= {"hospital", "mall", "transport"}


def test_every_unit_has_exactly_one_leader(seeded):
    leaders = Counter(
        Member.objects.filter(role=Member.Role.LEADER).values_list("unit_id", flat=True)
    )
    assert len(leaders) == UNITS
    assert set(leaders.values()) == {1}


@pytest.mark.database_independent  # a plan in memory, no database
def test_the_same_seed_gives_the_same_plan_and_another_seed_a_different_one():
    a = seeding.demo_city_plan(units=UNITS, seed=7)
    b = seeding.demo_city_plan(units=UNITS, seed=7)
    c = seeding.demo_city_plan(units=UNITS, seed=8)
    assert np.array_equal(a.unit_lat, b.unit_lat)
    assert np.array_equal(a.unit_lon, b.unit_lon)
    assert a.unit_name == b.unit_name
    assert np.array_equal(a.member_phone, b.member_phone)
    assert np.array_equal(a.equipment_expires_in_days, b.equipment_expires_in_days)
    assert a.regions == b.regions == c.regions  # region points never depend on --seed
    assert not np.array_equal(a.unit_lat, c.unit_lat)


@pytest.mark.database_independent  # a plan in memory, no database
def test_vectorised_point_in_polygon_agrees_with_geo():
    plan = seeding.demo_city_plan(units=1)
    rng = np.random.default_rng(1)
    for district in [r for r in plan.regions if r.boundary][:4]:
        min_lat, min_lon, max_lat, max_lon = seeding.geodata.bbox(district.boundary)
        lat = rng.uniform(min_lat, max_lat, 250)
        lon = rng.uniform(min_lon, max_lon, 250)
        fast = geo.points_in_geometry(lat, lon, district.boundary)
        slow = [
            geo.point_in_geometry(a, o, district.boundary) for a, o in zip(lat, lon, strict=True)
        ]
        assert fast.tolist() == slow


def test_seeding_again_changes_nothing_and_reset_reseeds_without_duplicates(seeded):
    before = table_counts()
    first_ids = set(Unit.objects.values_list("id", flat=True))
    out = seed("--units", str(UNITS))
    assert "nothing seeded" in out
    assert table_counts() == before
    assert set(Unit.objects.values_list("id", flat=True)) == first_ids

    changes = RosterChange.objects.count()
    seed("--units", str(UNITS), "--reset")
    assert table_counts() == before
    assert set(Unit.objects.values_list("id", flat=True)).isdisjoint(first_ids)
    # One "reload everything" row, not one per deleted or created row.
    assert RosterChange.objects.count() == changes + 1
    assert RosterChange.objects.order_by("-id").first().unit_id is None


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--units", "0"], "--units"),
        (["--units", "-5"], "--units"),
        (["--units", "3000001"], "--units"),
        (["--seed", "-1"], "--seed"),
        (["--password", "short"], "--password"),
    ],
)
def test_bad_arguments_raise_command_error_naming_the_argument_and_write_nothing(db, args, named):
    with pytest.raises(CommandError, match=named):
        seed(*args)
    assert set(table_counts().values()) == {0}


def test_bad_units_passed_as_a_keyword_raise_command_error_too(db):
    with pytest.raises(CommandError, match="--units"):
        call_command("seed_demo", units=0, verbosity=0)


def test_a_failure_mid_seed_leaves_nothing_written(db, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(seeding.writing, "_equipment_write", broken)
    with pytest.raises(RuntimeError):
        seed("--units", "50")
    assert set(table_counts().values()) == {0}


def test_reset_is_refused_while_incidents_refer_to_units(seeded):
    from dispatch.models import Incident

    member = Member.objects.first()
    Incident.objects.create(
        kind="knife",
        lat=member.unit.lat,
        lon=member.unit.lon,
        source="console",
        policy={},
        discovered_at=timezone.now(),
        reported_by=member,
    )
    before = table_counts()
    with pytest.raises(CommandError, match="--reset"):
        seed("--units", str(UNITS), "--reset")
    assert table_counts() == before


def test_demo_logins_lists_staff_nearby_on_duty_members_and_the_admin_token(seeded):
    users = get_user_model().objects
    admin = users.get(username="admin")
    assert admin.is_superuser and admin.check_password("demo12345")
    roles = dict(StaffProfile.objects.values_list("user__username", "role"))
    assert roles == {
        "admin": "city_admin",
        "tianhe_admin": "district_admin",
        "yuexiu_street": "street_admin",
        "reviewer": "police_reviewer",
        "station_tianhe": "police_station",
    }
    assert StaffProfile.objects.get(user__username="tianhe_admin").region.name == "天河区"
    assert StaffProfile.objects.get(user__username="yuexiu_street").region.parent.name == "越秀区"
    assert StaffProfile.objects.get(user__username="station_tianhe").region.parent.name == "天河区"
    assert all(users.filter(username__in=roles).values_list("is_staff", flat=True))

    out = StringIO()
    call_command("demo_logins", "--members", "3", stdout=out)
    text = out.getvalue()
    assert Token.objects.get(user=admin).key in text
    for username in roles:
        assert username in text
    phones = re.findall(r"^\s+(1[3-9]\d{9})\s", text, flags=re.MULTILINE)
    assert len(phones) == 3
    assert Member.objects.filter(phone__in=phones, on_duty=True).count() == 3


def test_demo_logins_on_an_empty_database_says_to_seed_first(db):
    with pytest.raises(CommandError, match="seed_demo"):
        call_command("demo_logins", stdout=StringIO())
