from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from tests.factories import (
    EquipmentFactory,
    MemberFactory,
    RegionFactory,
    StaffFactory,
    UnitFactory,
    UserFactory,
)
from units.models import STANDARD_KIT, Equipment, EquipmentKind, StaffProfile, Unit
from units.selectors import region_list, unit_get, unit_list

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2 at full strength costs ~0.1 s per user the factories make.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def give_full_kit(unit: Unit, **overrides) -> list[Equipment]:
    """The whole standard kit, in date; ``overrides`` maps a kind to field changes."""
    expires = timezone.localdate() + dt.timedelta(days=365)
    rows = []
    for kind, qty in STANDARD_KIT.items():
        fields = {"quantity": qty, "expires": expires, **overrides.get(kind, {})}
        rows.append(EquipmentFactory(unit=unit, kind=kind, **fields))
    return rows


@pytest.fixture
def superuser(db):
    return UserFactory(is_superuser=True, is_staff=True)


@pytest.fixture
def ready_unit(tianhe_street):
    """Two on duty, post_min 1: one can be sent while one keeps the post."""
    unit = UnitFactory(region=tianhe_street, post_min=1)
    give_full_kit(unit)
    MemberFactory.create_batch(2, unit=unit, on_duty=True)
    return unit


def readiness(unit: Unit, superuser) -> Unit:
    return unit_get(user=superuser, unit_id=unit.pk)


# --- readiness ---------------------------------------------------------------


def test_a_unit_with_someone_to_spare_beyond_its_post_is_ready(ready_unit, superuser):
    unit = readiness(ready_unit, superuser)
    assert unit.on_duty_count == 2
    assert unit.kit_complete is True
    assert unit.ready is True


def test_a_unit_whose_only_person_on_duty_keeps_the_post_is_not_ready(tianhe_street, superuser):
    """Dispatch never takes a unit below post_min: such a unit is not ready."""
    unit = UnitFactory(region=tianhe_street, post_min=1)
    give_full_kit(unit)
    MemberFactory(unit=unit, on_duty=True)

    unit = readiness(unit, superuser)
    assert (unit.on_duty_count, unit.kit_complete, unit.ready) == (1, True, False)


def test_a_unit_with_no_post_to_keep_is_ready_with_one_on_duty(tianhe_street, superuser):
    unit = UnitFactory(region=tianhe_street, post_min=0)
    MemberFactory(unit=unit, on_duty=True)

    assert readiness(unit, superuser).ready is True


def test_an_expired_item_makes_the_kit_incomplete_but_the_unit_still_ready(
    tianhe_street, superuser
):
    """Ranking still calls a unit with short kit (lower when the incident needs
    that kit), so ready does not depend on kit; kit_complete shows it."""
    unit = UnitFactory(region=tianhe_street)
    yesterday = timezone.localdate() - dt.timedelta(days=1)
    give_full_kit(unit, **{EquipmentKind.EXTINGUISHER: {"expires": yesterday}})
    MemberFactory.create_batch(2, unit=unit, on_duty=True)

    unit = readiness(unit, superuser)
    assert unit.kit_complete is False
    assert unit.ready is True


def test_an_item_expiring_today_still_counts(tianhe_street, superuser):
    unit = UnitFactory(region=tianhe_street)
    give_full_kit(unit, **{EquipmentKind.RADIO: {"expires": timezone.localdate()}})

    assert readiness(unit, superuser).kit_complete is True


def test_a_broken_item_makes_the_kit_incomplete(tianhe_street, superuser):
    unit = UnitFactory(region=tianhe_street)
    give_full_kit(unit, **{EquipmentKind.SHIELD: {"condition": Equipment.Condition.BROKEN}})

    assert readiness(unit, superuser).kit_complete is False


def test_a_worn_item_is_still_usable(tianhe_street, superuser):
    unit = UnitFactory(region=tianhe_street)
    give_full_kit(unit, **{EquipmentKind.SHIELD: {"condition": Equipment.Condition.WORN}})

    assert readiness(unit, superuser).kit_complete is True


def test_too_few_of_an_item_makes_the_kit_incomplete(tianhe_street, superuser):
    unit = UnitFactory(region=tianhe_street)
    give_full_kit(unit, **{EquipmentKind.STAB_VEST: {"quantity": 1}})

    assert readiness(unit, superuser).kit_complete is False


def test_a_missing_kind_makes_the_kit_incomplete_even_with_extra_aeds(tianhe_street, superuser):
    unit = UnitFactory(region=tianhe_street)
    give_full_kit(unit)
    Equipment.objects.filter(unit=unit, kind=EquipmentKind.FIRST_AID).delete()
    EquipmentFactory(unit=unit, kind=EquipmentKind.AED, quantity=5)
    MemberFactory(unit=unit, on_duty=True)

    assert readiness(unit, superuser).kit_complete is False


def test_nobody_on_duty_makes_a_fully_kitted_unit_not_ready(tianhe_street, superuser):
    unit = UnitFactory(region=tianhe_street, post_min=0)
    give_full_kit(unit)
    MemberFactory(unit=unit, on_duty=False)

    unit = readiness(unit, superuser)
    assert unit.on_duty_count == 0
    assert unit.kit_complete is True
    assert unit.ready is False


def test_an_inactive_member_marked_on_duty_is_not_counted(tianhe_street, superuser):
    unit = UnitFactory(region=tianhe_street)
    give_full_kit(unit)
    MemberFactory(unit=unit, on_duty=True, is_active=False)
    unit.post_min = 0
    unit.save()

    unit = readiness(unit, superuser)
    assert unit.on_duty_count == 0
    assert unit.ready is False


def test_an_inactive_unit_is_never_ready(ready_unit, superuser):
    Unit.objects.filter(pk=ready_unit.pk).update(is_active=False)

    assert readiness(ready_unit, superuser).ready is False


def test_ready_filter_splits_ready_and_not_ready_units(ready_unit, near_unit, superuser):
    assert list(unit_list(user=superuser, ready=True)) == [ready_unit]
    assert list(unit_list(user=superuser, ready=False)) == [near_unit]
    assert set(unit_list(user=superuser)) == {ready_unit, near_unit}


# --- scopes ------------------------------------------------------------------


def test_district_admin_lists_only_units_of_their_district(
    near_unit, far_unit, haizhu_admin, tianhe_admin
):
    assert list(unit_list(user=haizhu_admin)) == [far_unit]
    assert list(unit_list(user=tianhe_admin)) == [near_unit]


def test_street_admin_lists_only_units_of_their_street(near_unit, tianhe, tianhe_street):
    other_street = RegionFactory(parent=tianhe)
    UnitFactory(region=other_street)
    admin = StaffFactory(role=StaffProfile.Role.STREET_ADMIN, region=tianhe_street).user

    assert list(unit_list(user=admin)) == [near_unit]


def test_superuser_lists_every_unit(near_unit, far_unit, superuser):
    assert set(unit_list(user=superuser)) == {near_unit, far_unit}


def test_user_without_staff_role_lists_nothing(near_unit):
    assert list(unit_list(user=UserFactory())) == []
    assert list(unit_list(user=AnonymousUser())) == []


def test_unit_get_outside_the_scope_raises_does_not_exist(near_unit, haizhu_admin):
    with pytest.raises(Unit.DoesNotExist):
        unit_get(user=haizhu_admin, unit_id=near_unit.pk)


def test_region_code_prefix_is_not_mistaken_for_a_subtree(city, superuser):
    """440106 must not match 4401061's units: paths end with a slash."""
    a = RegionFactory(code="440106", parent=city)
    b = RegionFactory(code="4401061", parent=city)
    unit_b = UnitFactory(region=b)

    assert list(unit_list(user=superuser, region=a)) == []
    assert list(unit_list(user=superuser, region=b)) == [unit_b]


def test_region_list_is_the_users_subtree(tianhe_street, haizhu_street, tianhe_admin):
    codes = set(region_list(user=tianhe_admin).values_list("code", flat=True))
    assert codes == {"440106", "440106001"}


def test_unit_list_runs_one_query_however_many_units(
    tianhe_street, superuser, django_assert_num_queries
):
    for _ in range(10):
        unit = UnitFactory(region=tianhe_street)
        MemberFactory(unit=unit, on_duty=True)
        EquipmentFactory(unit=unit)

    with django_assert_num_queries(1):
        rows = [(u.region.code, u.on_duty_count, u.ready) for u in unit_list(user=superuser)]
    assert len(rows) == 10
