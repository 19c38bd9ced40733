from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs, urlparse

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.factories import (
    EquipmentFactory,
    MemberFactory,
    RegionFactory,
    StaffFactory,
    UnitFactory,
)
from units.models import STANDARD_KIT, EquipmentKind, StaffProfile, Unit
from units.selectors import readiness_overview

pytestmark = pytest.mark.django_db


def full_kit(unit: Unit, **overrides) -> None:
    today = timezone.localdate()
    for kind, qty in STANDARD_KIT.items():
        fields = {
            "quantity": qty,
            "expires": today + dt.timedelta(days=365),
            "last_inspected": today - dt.timedelta(days=10),
        }
        EquipmentFactory(unit=unit, kind=kind, **(fields | overrides.get(kind, {})))


@pytest.fixture
def city_roster(tianhe, tianhe_street, haizhu_street):
    """天河: one ready unit, one with nobody on duty, one with an expired shield and a
    radio due for inspection; 海珠: one ready unit."""
    today = timezone.localdate()
    ready = UnitFactory(region=tianhe_street, code="T-READY")
    full_kit(ready)
    MemberFactory(unit=ready, on_duty=True)
    idle = UnitFactory(region=tianhe_street, code="T-IDLE")
    full_kit(idle)
    MemberFactory(unit=idle, on_duty=False)
    expired = UnitFactory(region=RegionFactory(parent=tianhe, code="440106002"), code="T-EXP")
    full_kit(
        expired,
        **{
            EquipmentKind.SHIELD: {"expires": today - dt.timedelta(days=1)},
            EquipmentKind.RADIO: {"last_inspected": today - dt.timedelta(days=400)},
            EquipmentKind.HELMET: {"expires": today + dt.timedelta(days=5)},
        },
    )
    MemberFactory(unit=expired, on_duty=True)
    MemberFactory(unit=expired, on_duty=True)
    far = UnitFactory(region=haizhu_street, code="H-READY")
    full_kit(far)
    MemberFactory(unit=far, on_duty=True)
    return {"ready": ready, "idle": idle, "expired": expired, "far": far}


def test_the_city_overview_counts_per_district(city_roster, city, tianhe, haizhu):
    admin = StaffFactory(role=StaffProfile.Role.CITY_ADMIN, region=city).user

    overview = readiness_overview(user=admin)

    rows = {r.region.code: r for r in overview.rows}
    th = rows[tianhe.code]
    assert (th.units, th.ready, th.not_ready) == (3, 1, 2)
    assert (th.kit_incomplete, th.no_one_on_duty, th.members_on_duty) == (1, 1, 3)
    assert (th.expired_items, th.expiring_items, th.inspection_due) == (1, 1, 1)
    assert (rows[haizhu.code].units, rows[haizhu.code].ready) == (1, 1)
    assert (overview.total.units, overview.total.ready) == (4, 2)
    # Worst first: the district with most units not ready leads.
    assert overview.rows[0].region == tianhe


def test_a_district_drills_down_into_its_streets(city_roster, tianhe_admin, tianhe, tianhe_street):
    overview = readiness_overview(user=tianhe_admin, region=tianhe)

    rows = {r.region.code: (r.units, r.ready) for r in overview.rows}
    assert rows == {tianhe_street.code: (2, 1), "440106002": (1, 0)}


def test_the_overview_of_a_district_admin_leaves_other_districts_out(city_roster, tianhe_admin):
    overview = readiness_overview(user=tianhe_admin)

    assert overview.total.units == 3
    assert "H-READY" not in str([r.region.code for r in overview.rows])


def test_a_unit_leader_sees_only_their_own_unit(city_roster, tianhe_street):
    leader = StaffFactory(
        role=StaffProfile.Role.UNIT_LEADER, region=tianhe_street, unit=city_roster["idle"]
    ).user

    overview = readiness_overview(user=leader)

    assert (overview.total.units, overview.total.ready, overview.total.no_one_on_duty) == (1, 0, 1)


def test_inspections_due_follow_the_setting(settings, city_roster, tianhe_admin):
    settings.ROSTER_INSPECTION_INTERVAL_DAYS = 5

    overview = readiness_overview(user=tianhe_admin)

    assert overview.total.inspection_due == 3 * len(STANDARD_KIT)


def test_the_overview_page_links_each_figure_to_the_rows_behind_it(city_roster, tianhe_admin):
    client = Client()
    client.force_login(tianhe_admin)

    page = client.get(reverse("admin:units_unit_readiness"))
    (row, links) = next(
        (r, link) for r, link in page.context["rows"] if r.region.code == "440106002"
    )
    not_ready = client.get(links["not_ready"])
    expired = client.get(links["expired"])
    due = client.get(links["inspection_due"])
    expiring = client.get(links["expiring"])

    assert page.status_code == 200
    assert parse_qs(urlparse(links["not_ready"]).query)["region"] == ["440106002"]
    assert [u.code for u in not_ready.context["cl"].result_list] == ["T-EXP"]
    assert [(e.unit.code, e.kind) for e in expired.context["cl"].result_list] == [
        ("T-EXP", "shield")
    ]
    assert [e.kind for e in due.context["cl"].result_list] == ["radio"]
    assert [e.kind for e in expiring.context["cl"].result_list] == ["helmet"]


def test_the_overview_of_another_district_is_not_found(city_roster, tianhe_admin, haizhu):
    client = Client()
    client.force_login(tianhe_admin)

    response = client.get(reverse("admin:units_unit_readiness"), {"region": haizhu.code})

    assert response.status_code == 404


def test_the_unit_list_filters_incomplete_kit(city_roster, tianhe_admin):
    client = Client()
    client.force_login(tianhe_admin)

    response = client.get(reverse("admin:units_unit_changelist"), {"kit_complete": "0"})

    assert [u.code for u in response.context["cl"].result_list] == ["T-EXP"]


def test_the_overview_runs_a_fixed_number_of_queries(
    city_roster, tianhe_admin, tianhe_street, django_assert_max_num_queries
):
    for _ in range(10):
        unit = UnitFactory(region=tianhe_street)
        full_kit(unit)
        MemberFactory(unit=unit, on_duty=True)

    with django_assert_max_num_queries(10):
        overview = readiness_overview(user=tianhe_admin)

    assert overview.total.units == 13
