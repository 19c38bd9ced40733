from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import EquipmentFactory, MemberFactory, UserFactory
from units.models import Equipment, Member, Unit
from units.services import member_set_duty

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def unit_form(unit: Unit, **changes) -> dict:
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


def test_an_admin_edit_records_who_what_and_when_with_before_and_after(tianhe_admin, near_unit):
    logged_in(tianhe_admin).post(
        reverse("admin:units_unit_change", args=[near_unit.pk]), unit_form(near_unit, name="新名")
    )

    latest, before = Unit.history.filter(id=near_unit.pk).order_by("-history_id")[:2]
    assert (latest.history_type, latest.history_user, latest.name) == ("~", tianhe_admin, "新名")
    assert latest.history_date is not None
    delta = latest.diff_against(before)
    assert [(c.field, c.old, c.new) for c in delta.changes] == [("name", near_unit.name, "新名")]


def test_the_history_page_of_a_unit_shows_the_change_and_the_user(tianhe_admin, near_unit):
    client = logged_in(tianhe_admin)
    client.post(
        reverse("admin:units_unit_change", args=[near_unit.pk]), unit_form(near_unit, name="新名")
    )

    page = client.get(reverse("admin:units_unit_history", args=[near_unit.pk]))

    assert page.status_code == 200
    html = page.content.decode()
    assert tianhe_admin.username in html
    assert "新名" in html


def test_members_and_kit_have_history_pages_too(tianhe_admin, near_unit):
    member = MemberFactory(unit=near_unit)
    kit = EquipmentFactory(unit=near_unit)
    client = logged_in(tianhe_admin)

    for model, obj in (("member", member), ("equipment", kit)):
        page = client.get(reverse(f"admin:units_{model}_history", args=[obj.pk]))
        assert page.status_code == 200


def test_a_deleted_member_keeps_its_history_for_admins_in_scope(tianhe_admin, near_unit):
    member = MemberFactory(unit=near_unit, name="离职队员")
    client = logged_in(tianhe_admin)
    client.post(reverse("admin:units_member_delete", args=[member.pk]), {"post": "yes"})

    page = client.get(reverse("admin:units_member_history", args=[member.pk]))

    assert not Member.objects.filter(pk=member.pk).exists()
    assert page.status_code == 200
    assert [h.history_type for h in Member.history.filter(id=member.pk)] == ["-", "+"]
    assert Member.history.filter(id=member.pk).first().history_user == tianhe_admin


def test_an_old_version_of_a_unit_elsewhere_is_not_found(haizhu_admin, near_unit):
    record = Unit.history.filter(id=near_unit.pk).first()
    client = logged_in(haizhu_admin)

    response = client.get(
        reverse("admin:units_unit_simple_history", args=[near_unit.pk, record.history_id])
    )

    assert response.status_code == 404


def test_an_old_version_cannot_be_reverted_from_the_admin(tianhe_admin, near_unit):
    record = Unit.history.filter(id=near_unit.pk).first()
    client = logged_in(tianhe_admin)

    url = reverse("admin:units_unit_simple_history", args=[near_unit.pk, record.history_id])
    page = client.get(url)
    client.post(url, unit_form(near_unit, name="回滚"))

    assert page.status_code == 200
    assert Unit.objects.get(pk=near_unit.pk).name == near_unit.name


def test_clocking_in_is_recorded_in_the_member_history(near_member):
    member_set_duty(member=near_member, on_duty=False)
    before = Member.history.filter(id=near_member.pk).count()

    member_set_duty(member=near_member, on_duty=True)

    rows = Member.history.filter(id=near_member.pk)
    assert rows.count() == before + 1
    latest = rows.first()
    assert latest.on_duty is True
    assert latest.duty_since is not None
    assert latest.prev_record.on_duty is False


def test_kit_changes_are_recorded_with_before_and_after(tianhe_admin, near_unit):
    kit = EquipmentFactory(unit=near_unit, quantity=2)
    client = logged_in(tianhe_admin)
    client.post(
        reverse("admin:units_equipment_change", args=[kit.pk]),
        {"unit": near_unit.pk, "kind": kit.kind, "quantity": 1, "condition": "broken"},
    )

    latest, before = Equipment.history.filter(id=kit.pk).order_by("-history_id")[:2]
    changes = {c.field: (c.old, c.new) for c in latest.diff_against(before).changes}
    assert changes == {"quantity": (2, 1), "condition": ("good", "broken")}
    assert latest.history_user == tianhe_admin


def test_a_superuser_sees_history_of_every_district(near_unit):
    client = logged_in(UserFactory(is_superuser=True, is_staff=True))

    assert client.get(reverse("admin:units_unit_history", args=[near_unit.pk])).status_code == 200
