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
    radio due for inspection (still ready: dispatch calls it, ranked lower when
    the incident needs a shield); 海珠: one ready unit. Ready means people to
    spare beyond ``post_min`` (1 here): two on duty."""
    today = timezone.localdate()
    ready = UnitFactory(region=tianhe_street, code="T-READY")
    full_kit(ready)
    MemberFactory.create_batch(2, unit=ready, on_duty=True)
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
    MemberFactory.create_batch(2, unit=far, on_duty=True)
    return {"ready": ready, "idle": idle, "expired": expired, "far": far}


def test_the_city_overview_counts_per_district(city_roster, city, tianhe, haizhu):
    admin = StaffFactory(role=StaffProfile.Role.CITY_ADMIN, region=city).user

    overview = readiness_overview(user=admin)

    rows = {r.region.code: r for r in overview.rows}
    th = rows[tianhe.code]
    assert (th.units, th.ready, th.not_ready) == (3, 2, 1)
    assert (th.kit_incomplete, th.no_one_on_duty, th.members_on_duty) == (1, 1, 4)
    assert (th.expired_items, th.expiring_items, th.inspection_due) == (1, 1, 1)
    assert (rows[haizhu.code].units, rows[haizhu.code].ready) == (1, 1)
    assert (overview.total.units, overview.total.ready) == (4, 3)
    # Worst first: the district with most units not ready leads.
    assert overview.rows[0].region == tianhe


def test_a_district_drills_down_into_its_streets(city_roster, tianhe_admin, tianhe, tianhe_street):
    overview = readiness_overview(user=tianhe_admin, region=tianhe)

    rows = {r.region.code: (r.units, r.ready) for r in overview.rows}
    assert rows == {tianhe_street.code: (2, 1), "440106002": (1, 1)}


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
    links_of = {r.region.code: link for r, link in page.context["rows"]}
    links = links_of["440106002"]
    not_ready = client.get(links_of["440106001"]["not_ready"])
    expired = client.get(links["expired"])
    due = client.get(links["inspection_due"])
    expiring = client.get(links["expiring"])

    assert page.status_code == 200
    assert parse_qs(urlparse(links["not_ready"]).query)["region"] == ["440106002"]
    assert [u.code for u in not_ready.context["cl"].result_list] == ["T-IDLE"]
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


# --- one definition: what the admin calls ready is what dispatch calls --------------------


@pytest.fixture
def mixed_roster(tianhe_street):
    """Units at every edge of the rule, all in one street."""
    today = timezone.localdate()

    def unit(code, *, on_duty, post_min=1, kit=True, active=True, off_duty=0, **kit_overrides):
        u = UnitFactory(region=tianhe_street, code=code, post_min=post_min, is_active=active)
        if kit:
            full_kit(u, **kit_overrides)
        MemberFactory.create_batch(on_duty, unit=u, on_duty=True) if on_duty else None
        MemberFactory.create_batch(off_duty, unit=u, on_duty=False) if off_duty else None
        return u

    return [
        unit("ONE-AT-POST", on_duty=1),  # its only person must stay: never sent
        unit("TWO", on_duty=2),
        unit("TWO-NO-KIT", on_duty=2, kit=False),
        unit("BROKEN-SHIELD", on_duty=3, **{EquipmentKind.SHIELD: {"condition": "broken"}}),
        unit("POST-ZERO", on_duty=1, post_min=0),
        unit("POST-THREE", on_duty=3, post_min=3),
        unit("DISABLED", on_duty=3, active=False),
        unit("ALL-OFF", on_duty=0, off_duty=4),
        unit("EXPIRED", on_duty=2, **{EquipmentKind.RADIO: {"expires": today - dt.timedelta(1)}}),
    ]


READY = {"TWO", "TWO-NO-KIT", "BROKEN-SHIELD", "POST-ZERO", "EXPIRED"}


def test_a_unit_whose_only_person_on_duty_must_stay_is_not_ready(mixed_roster, tianhe_admin):
    from units.selectors import unit_list

    ready = {u.code for u in unit_list(user=tianhe_admin) if u.ready}

    assert "ONE-AT-POST" not in ready
    assert ready == READY


def test_admin_api_overview_and_dispatch_ranking_agree_on_ready(mixed_roster, tianhe_admin):
    from dispatch.ranking import rank_units
    from units.selectors import unit_list_ready_nearest

    client = Client()
    client.force_login(tianhe_admin)
    code_of = {u.pk: u.code for u in mixed_roster}

    admin_ready = client.get(reverse("admin:units_unit_changelist"), {"ready": "1"})
    api_ready = client.get("/api/v1/units/", {"ready": "true", "page_size": 100}).json()
    api_all = client.get("/api/v1/units/", {"page_size": 100}).json()
    overview = readiness_overview(user=tianhe_admin)
    ranked = rank_units(lat=23.13, lon=113.32, limit=100)
    nearest = unit_list_ready_nearest(lat=23.13, lon=113.32, limit=100)

    assert {u.code for u in admin_ready.context["cl"].result_list} == READY
    assert {u["code"] for u in api_ready["results"]} == READY
    assert {u["code"] for u in api_all["results"] if u["ready"]} == READY
    assert overview.total.ready == len(READY)
    assert {code_of[c.unit_id] for c in ranked} == READY
    assert {code_of[unit_id] for unit_id, _d in nearest} == READY


def test_ranking_and_the_unit_list_use_the_same_usable_kit(mixed_roster, settings):
    """Kit that the admin counts as short makes ranking apply its kit penalty."""
    from dispatch.ranking import rank_units

    settings.RANKING_KIT_BY_KIND = {"knife": ["shield", "radio"]}
    fits = {
        c.unit_id: c.kit_fit
        for c in rank_units(lat=23.13, lon=113.32, limit=100, incident_kind="knife")
    }
    code_of = {u.pk: u.code for u in mixed_roster}

    assert {code_of[u] for u, fit in fits.items() if not fit} == {
        "TWO-NO-KIT",
        "BROKEN-SHIELD",
        "EXPIRED",
    }


def test_the_usable_kit_rule_reads_the_same_in_sql_and_in_memory(tianhe_street):
    from units.models import Equipment
    from units.readiness import equipment_usable, usable_kit_q

    today = timezone.localdate()
    unit = UnitFactory(region=tianhe_street)
    other = UnitFactory(region=tianhe_street)
    rows = [
        EquipmentFactory(unit=unit, kind=EquipmentKind.SHIELD, quantity=2),
        EquipmentFactory(unit=unit, kind=EquipmentKind.HELMET, quantity=1),  # too few
        EquipmentFactory(unit=unit, kind=EquipmentKind.RADIO, quantity=2, condition="broken"),
        EquipmentFactory(unit=unit, kind=EquipmentKind.BATON, quantity=2, condition="worn"),
        EquipmentFactory(unit=unit, kind=EquipmentKind.AED, quantity=1),  # extra kit counts
        EquipmentFactory(unit=other, kind=EquipmentKind.AED, quantity=0),
        EquipmentFactory(unit=unit, kind=EquipmentKind.FIRST_AID, expires=today),
        EquipmentFactory(unit=other, kind=EquipmentKind.FIRST_AID, expires=today - dt.timedelta(1)),
    ]

    in_sql = set(Equipment.objects.filter(usable_kit_q()).values_list("pk", flat=True))
    in_memory = {e.pk for e in rows if equipment_usable(e)}

    assert in_sql == in_memory == {rows[0].pk, rows[3].pk, rows[4].pk, rows[6].pk}
