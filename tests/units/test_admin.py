from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import (
    EquipmentFactory,
    MemberFactory,
    RegionFactory,
    StaffFactory,
    UnitFactory,
    UserFactory,
)
from units.models import (
    Equipment,
    EquipmentKind,
    Member,
    Region,
    RosterChange,
    StaffProfile,
    Unit,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2 at full strength costs ~0.1 s per user the factories make.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


MODELS = ["unit", "member", "equipment", "region"]


def changelist(model: str) -> str:
    return reverse(f"admin:units_{model}_changelist")


def change(obj) -> str:
    return reverse(f"admin:units_{obj._meta.model_name}_change", args=[obj.pk])


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def superuser(db):
    return UserFactory(is_superuser=True, is_staff=True)


@pytest.fixture
def roster(near_unit, far_unit):
    """One member and one piece of kit in each district."""
    rows = {}
    for unit in (near_unit, far_unit):
        rows[unit.pk] = (
            MemberFactory(unit=unit, name=f"队员-{unit.code}"),
            EquipmentFactory(unit=unit, kind=EquipmentKind.SHIELD),
        )
    return rows


@pytest.fixture
def reviewer(tianhe):
    return StaffFactory(role=StaffProfile.Role.POLICE_REVIEWER, region=tianhe).user


def unit_form(unit: Unit, **changes) -> dict:
    """POST data for the unit change form, inlines left as they are (empty)."""
    data = {
        "code": unit.code,
        "name": unit.name,
        "kind": unit.kind,
        "address": unit.address,
        "lat": unit.lat,
        "lon": unit.lon,
        "region": unit.region_id,
        "is_active": "on",
        "post_min": unit.post_min,
    }
    for prefix in ("members", "equipment"):
        data |= {
            f"{prefix}-TOTAL_FORMS": 0,
            f"{prefix}-INITIAL_FORMS": 0,
            f"{prefix}-MIN_NUM_FORMS": 0,
            f"{prefix}-MAX_NUM_FORMS": 1000,
        }
    return data | changes


def listed(response, model: str) -> list[int]:
    assert response.status_code == 200
    return sorted(obj.pk for obj in response.context["cl"].result_list)


# --- changelists and scopes --------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_superuser_changelists_load_and_show_everything(superuser, roster, model):
    response = logged_in(superuser).get(changelist(model))

    model_class = response.context["cl"].model
    assert listed(response, model) == sorted(model_class.objects.values_list("pk", flat=True))


@pytest.mark.parametrize("model", MODELS)
def test_district_admin_changelists_load_and_show_only_their_district(
    haizhu_admin, far_unit, roster, model
):
    response = logged_in(haizhu_admin).get(changelist(model))

    expected = {
        "unit": [far_unit.pk],
        "member": [roster[far_unit.pk][0].pk],
        "equipment": [roster[far_unit.pk][1].pk],
        "region": sorted(
            Region.objects.filter(code__startswith="440105").values_list("pk", flat=True)
        ),
    }[model]
    assert listed(response, model) == expected


def test_street_admin_sees_only_their_street(tianhe, tianhe_street, near_unit):
    UnitFactory(region=RegionFactory(parent=tianhe))
    admin = StaffFactory(role=StaffProfile.Role.STREET_ADMIN, region=tianhe_street).user

    assert listed(logged_in(admin).get(changelist("unit")), "unit") == [near_unit.pk]


def test_district_admin_cannot_open_a_unit_of_another_district(haizhu_admin, near_unit):
    client = logged_in(haizhu_admin)

    response = client.get(change(near_unit))

    # Django answers "does not exist" (redirect to the index), not the form.
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert near_unit.code not in page
    assert near_unit.name not in page


def test_unit_changelist_shows_readiness_columns(superuser, near_unit, near_member):
    response = logged_in(superuser).get(changelist("unit"))

    row = response.context["cl"].result_list[0]
    assert (row.on_duty_count, row.kit_complete, row.ready) == (1, False, False)


def test_unit_changelist_ready_filter(superuser, near_unit, far_unit):
    client = logged_in(superuser)

    assert listed(client.get(changelist("unit"), {"ready": "0"}), "unit") == sorted(
        [near_unit.pk, far_unit.pk]
    )
    assert listed(client.get(changelist("unit"), {"ready": "1"}), "unit") == []


def test_district_filter_offers_only_districts_in_scope(haizhu_admin, near_unit, far_unit):
    response = logged_in(haizhu_admin).get(changelist("unit"))

    html = response.content.decode()
    assert "海珠区" in html
    assert "天河区" not in html


def test_unit_search_stays_inside_the_scope(haizhu_admin, near_unit, far_unit):
    response = logged_in(haizhu_admin).get(changelist("unit"), {"q": near_unit.code})

    assert listed(response, "unit") == []


def test_region_autocomplete_offers_only_regions_in_scope(haizhu_admin, near_unit, far_unit):
    response = logged_in(haizhu_admin).get(
        reverse("admin:autocomplete"),
        {"app_label": "units", "model_name": "unit", "field_name": "region", "term": "街道"},
    )

    assert response.status_code == 200
    assert [r["text"] for r in response.json()["results"]] == ["赤岗街道"]


# --- editing -------------------------------------------------------------------------


def test_district_admin_can_edit_a_unit_of_their_district(tianhe_admin, near_unit):
    response = logged_in(tianhe_admin).post(change(near_unit), unit_form(near_unit, name="新名字"))

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Unit.objects.get(pk=near_unit.pk).name == "新名字"


def test_district_admin_cannot_move_a_unit_into_another_district(
    tianhe_admin, near_unit, haizhu_street
):
    response = logged_in(tianhe_admin).post(
        change(near_unit), unit_form(near_unit, region=haizhu_street.pk)
    )

    assert response.status_code == 200
    assert "region" in response.context["adminform"].form.errors
    assert Unit.objects.get(pk=near_unit.pk).region_id == near_unit.region_id


def test_district_admin_cannot_add_a_member_to_another_districts_unit(tianhe_admin, far_unit):
    response = logged_in(tianhe_admin).post(
        reverse("admin:units_member_add"),
        {"name": "张三", "phone": "13800000000", "unit": far_unit.pk, "role": "member"},
    )

    assert response.status_code == 200
    assert "unit" in response.context["adminform"].form.errors
    assert not Member.objects.filter(phone="13800000000").exists()


def test_district_admin_cannot_add_kit_to_another_districts_unit(tianhe_admin, far_unit):
    response = logged_in(tianhe_admin).post(
        reverse("admin:units_equipment_add"),
        {"unit": far_unit.pk, "kind": "shield", "quantity": 2, "condition": "good"},
    )

    assert response.status_code == 200
    assert "unit" in response.context["adminform"].form.errors
    assert not Equipment.objects.exists()


def test_district_admin_cannot_link_a_member_to_a_login_account(tianhe_admin, near_member):
    other = UserFactory()
    data = {
        "name": near_member.name,
        "phone": near_member.phone,
        "unit": near_member.unit_id,
        "role": near_member.role,
        "is_active": "on",
        "user": other.pk,
    }

    response = logged_in(tianhe_admin).post(change(near_member), data)

    assert response.status_code == 302
    assert Member.objects.get(pk=near_member.pk).user_id is None


def test_superuser_can_link_a_member_to_a_login_account(superuser, near_member):
    other = UserFactory()
    data = {
        "name": near_member.name,
        "phone": near_member.phone,
        "unit": near_member.unit_id,
        "role": near_member.role,
        "is_active": "on",
        "user": other.pk,
    }

    response = logged_in(superuser).post(change(near_member), data)

    assert response.status_code == 302
    assert Member.objects.get(pk=near_member.pk).user_id == other.pk


def test_admin_edit_appends_a_roster_change(tianhe_admin, near_unit):
    RosterChange.objects.all().delete()

    logged_in(tianhe_admin).post(change(near_unit), unit_form(near_unit, name="改"))

    assert list(RosterChange.objects.values_list("unit_id", flat=True)) == [near_unit.pk]


# A box around central Tianhe, GeoJSON order (lon, lat): the service area.
TIANHE_BOX = {
    "type": "Polygon",
    "coordinates": [
        [[113.30, 23.10], [113.40, 23.10], [113.40, 23.20], [113.30, 23.20], [113.30, 23.10]]
    ],
}


@pytest.fixture
def service_area(tianhe):
    from units.services import district_shapes_reset

    Region.objects.filter(pk=tianhe.pk).update(boundary=TIANHE_BOX)
    district_shapes_reset()
    return tianhe


def test_admin_refuses_a_new_unit_outside_the_service_area(superuser, service_area, tianhe_street):
    template = UnitFactory.build(region=tianhe_street, code="OUT-1")
    form = unit_form(template, lat=30.0, lon=120.0)

    response = logged_in(superuser).post(reverse("admin:units_unit_add"), form)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "lat" in errors and "lon" in errors
    assert not Unit.objects.filter(code="OUT-1").exists()


def test_admin_refuses_to_move_a_unit_outside_the_service_area(
    tianhe_admin, service_area, near_unit
):
    response = logged_in(tianhe_admin).post(change(near_unit), unit_form(near_unit, lat=30.0))

    assert response.status_code == 200
    assert "lat" in response.context["adminform"].form.errors
    assert Unit.objects.get(pk=near_unit.pk).lat == near_unit.lat


def test_admin_still_saves_a_unit_inside_the_service_area(superuser, service_area, tianhe_street):
    template = UnitFactory.build(region=tianhe_street, code="IN-1")

    response = logged_in(superuser).post(
        reverse("admin:units_unit_add"), unit_form(template, lat=23.15, lon=113.35)
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Unit.objects.filter(code="IN-1").exists()


def test_district_admin_cannot_edit_regions_or_staff(tianhe_admin, tianhe_street):
    client = logged_in(tianhe_admin)

    page = client.get(change(tianhe_street))
    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    assert client.post(change(tianhe_street), {"name": "x"}).status_code == 403
    assert client.get(reverse("admin:units_staffprofile_add")).status_code == 403


# --- police reviewer and strangers ------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_police_reviewer_can_view_changelists_in_scope(reviewer, roster, near_unit, model):
    response = logged_in(reviewer).get(changelist(model))

    assert response.status_code == 200
    assert not response.context["has_add_permission"]


def test_police_reviewer_sees_a_read_only_unit_page(reviewer, near_unit):
    response = logged_in(reviewer).get(change(near_unit))

    assert response.status_code == 200
    assert response.context["has_change_permission"] is False
    assert 'name="_save"' not in response.content.decode()


def test_police_reviewer_cannot_change_a_unit(reviewer, near_unit):
    response = logged_in(reviewer).post(change(near_unit), unit_form(near_unit, name="改"))

    assert response.status_code == 403
    assert Unit.objects.get(pk=near_unit.pk).name == near_unit.name


def test_police_reviewer_cannot_add_or_delete(reviewer, near_unit):
    client = logged_in(reviewer)

    assert client.get(reverse("admin:units_unit_add")).status_code == 403
    assert client.post(reverse("admin:units_unit_delete", args=[near_unit.pk])).status_code == 403
    assert Unit.objects.filter(pk=near_unit.pk).exists()


def test_staff_user_without_a_staff_profile_gets_no_access(near_unit):
    client = logged_in(UserFactory(is_staff=True))

    for model in MODELS:
        assert client.get(changelist(model)).status_code == 403
    assert client.get(change(near_unit)).status_code == 403
    index = client.get(reverse("admin:index"))
    assert "应急单元" not in index.content.decode()


def test_user_who_is_not_staff_is_sent_to_the_login_page(near_unit):
    response = logged_in(UserFactory()).get(changelist("unit"))

    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


# --- query counts -------------------------------------------------------------------


def _grow(region, n: int) -> None:
    while Unit.objects.count() < n:
        unit = UnitFactory(region=region)
        MemberFactory(unit=unit, on_duty=True)
        EquipmentFactory(unit=unit, kind=EquipmentKind.SHIELD)


def _changelist_queries(client: Client, model: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(changelist(model))
    assert response.status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("model", ["unit", "member", "equipment"])
@pytest.mark.parametrize("who", ["superuser", "tianhe_admin"])
def test_changelist_query_count_does_not_grow_with_rows(request, tianhe_street, model, who):
    client = logged_in(request.getfixturevalue(who))

    _grow(tianhe_street, 5)
    few = _changelist_queries(client, model)
    _grow(tianhe_street, 30)
    many = _changelist_queries(client, model)

    assert few == many
    assert many <= 12


def test_duty_is_clocked_on_the_phone_not_ticked_in_the_admin(tianhe_admin, near_member):
    """在岗 is the member's own clock-in (units.services.member_set_duty tells the
    phone's socket to join the unit's alerts): an admin form must not flip it, nor
    clear it when saved without the box."""
    data = {
        "name": "改名",
        "phone": near_member.phone,
        "unit": near_member.unit_id,
        "role": near_member.role,
        "is_active": "on",
    }
    client = logged_in(tianhe_admin)
    page = client.get(change(near_member)).content.decode()
    assert 'name="on_duty"' not in page

    response = client.post(change(near_member), data)

    assert response.status_code == 302
    member = Member.objects.get(pk=near_member.pk)
    assert (member.name, member.on_duty) == ("改名", True)


def test_the_unit_form_shows_duty_without_a_checkbox(tianhe_admin, near_member):
    page = logged_in(tianhe_admin).get(change(near_member.unit)).content.decode()
    assert "members-0-name" in page
    assert 'name="members-0-on_duty"' not in page
