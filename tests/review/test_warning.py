from __future__ import annotations

import pytest

from dispatch.models import Incident
from review import readiness
from tests.factories import StaffFactory, UnitFactory
from units.models import StaffProfile

from .conftest import past_incident

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("score", "open_incidents", "colour"),
    [
        (90, 0, "green"),
        (70, 0, "amber"),
        (40, 0, "red"),
        (90, 1, "amber"),
        (90, 3, "red"),
        (40, 1, "red"),
        # No score is no data, not a warning (issue 13): grey, "数据不足".
        (None, 0, "grey"),
        (None, 1, "amber"),
    ],
)
def test_the_worse_of_index_and_open_incidents_sets_the_colour(score, open_incidents, colour):
    assert readiness.colour_for(score=score, open_incidents=open_incidents)[0] == colour


def test_open_incidents_turn_a_district_red_and_the_page_drills_down_to_units(
    client, city_reviewer, tianhe, tianhe_street, haizhu_street
):
    for _ in range(3):
        past_incident(region=haizhu_street, handling_s=None, control_s=None, response_s=None)
    unit = UnitFactory(region=tianhe_street)
    level, areas = readiness.warning_areas(user=city_reviewer)
    assert level == "district"
    colours = {a.label: a.colour for a in areas}
    assert colours["海珠区"] == "red"
    assert Incident.objects.filter(status="open").count() == 3

    client.force_login(city_reviewer)
    page = client.get("/review/warning/").content.decode()
    assert "三色预警" in page and "海珠区" in page
    response = client.get(f"/review/warning/?district={tianhe.code}")
    assert response.context["level"] == "street"
    response = client.get(f"/review/warning/?street={tianhe_street.code}")
    assert response.context["level"] == "unit"
    assert [a.key for a in response.context["areas"]] == [unit.pk]


def test_a_district_reviewer_cannot_drill_into_another_district(client, tianhe_reviewer, haizhu):
    client.force_login(tianhe_reviewer)
    assert client.get(f"/review/warning/?district={haizhu.code}").status_code == 404


def test_the_way_back_up_never_leads_above_the_users_jurisdiction(
    client, city_reviewer, tianhe, tianhe_street
):
    """A station scoped to one street was offered "返回全市", which showed it the same
    street again; a city reviewer on a street goes back to its district."""
    station = StaffFactory(role=StaffProfile.Role.POLICE_STATION, region=tianhe_street).user
    client.force_login(station)
    page = client.get("/review/warning/")
    assert page.status_code == 200
    assert page.context["up"] is None
    assert "返回全市" not in page.content.decode()

    district_admin = StaffFactory(role=StaffProfile.Role.DISTRICT_ADMIN, region=tianhe).user
    client.force_login(district_admin)
    up = client.get(f"/review/warning/?street={tianhe_street.code}").context["up"]
    assert up == ("?", "返回本辖区")

    client.force_login(city_reviewer)
    up = client.get(f"/review/warning/?street={tianhe_street.code}").context["up"]
    assert up == (f"?district={tianhe.code}", "返回上一级")
    assert client.get(f"/review/warning/?district={tianhe.code}").context["up"] == ("?", "返回全市")
    assert client.get("/review/warning/").context["up"] is None
