"""Region scope on intake and incident reads (issue 13's scope bug, issue 10 hole 3).

Every staff role reads what it raised and what lies in its area, nothing else;
callers raise only inside their area; a repeated ``external_id`` never hands
another scope's incident out.
"""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from dispatch import services
from dispatch.models import Dispatch, Incident
from tests.dispatch.conftest import SPOT, client_for
from tests.dispatch.factories import incident_payload
from tests.dispatch.test_supervisor_consumer import feed
from tests.factories import StaffFactory, UserFactory
from units.models import StaffProfile

pytestmark = pytest.mark.django_db

INCIDENTS = "/api/v1/incidents/"
# Inside 海珠区 (the service_area fixture), 100 m from far_unit.
HAIZHU_SPOT = (23.0909, 113.3300)
Role = StaffProfile.Role


def post(user, *, at=SPOT, **overrides):
    body = incident_payload(lat=at[0], lon=at[1], source="console", **overrides)
    return client_for(user).post(INCIDENTS, body, format="json")


def visible_ids(user) -> set[int]:
    response = client_for(user).get(INCIDENTS)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == len(body["results"])
    return {row["id"] for row in body["results"]}


def readable(user, incident_id: int) -> bool:
    status = client_for(user).get(f"{INCIDENTS}{incident_id}/").status_code
    assert status in {200, 404}
    return status == 200


def raised_by_system(at) -> Incident:
    return services.incident_create(kind="knife", lat=at[0], lon=at[1], source="cad").incident


# --- superusers (issue 13) ---------------------------------------------------------------


@pytest.fixture
def superuser(db):
    return UserFactory(is_superuser=True, is_staff=True)


@pytest.fixture
def superuser_with_city_role(city):
    """Like the demo `admin`: a superuser who also holds a city-wide staff role."""
    return StaffFactory(
        role=Role.CITY_ADMIN, region=city, user=UserFactory(is_superuser=True, is_staff=True)
    ).user


@pytest.mark.parametrize("who", ["superuser", "superuser_with_city_role"])
def test_a_superuser_reads_every_incident(request, who, service_area, near_responder, far_unit):
    user = request.getfixturevalue(who)
    tianhe_incident = raised_by_system(SPOT)
    haizhu_incident = raised_by_system(HAIZHU_SPOT)

    assert visible_ids(user) == {tianhe_incident.pk, haizhu_incident.pk}
    assert readable(user, tianhe_incident.pk)
    assert readable(user, haizhu_incident.pk)


@pytest.mark.parametrize("who", ["superuser", "superuser_with_city_role"])
def test_a_superuser_reads_an_incident_outside_every_street(request, who, near_responder):
    user = request.getfixturevalue(who)
    incident = raised_by_system(SPOT)  # no district outlines: no region
    assert incident.region_id is None

    assert visible_ids(user) == {incident.pk}
    assert readable(user, incident.pk)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("who", ["superuser", "superuser_with_city_role"])
def test_a_superuser_may_watch_any_incident_live(request, who, service_area, near_responder):
    user = request.getfixturevalue(who)
    incident = raised_by_system(SPOT)

    async def scenario():
        async with feed(user) as ws:
            await ws.receive_json_from()
            await ws.send_json_to({"type": "watch", "id": 1, "incident_id": incident.pk})
            answer = await ws.receive_json_from()
            assert answer["type"] == "ok", answer
            assert answer["incident"]["id"] == incident.pk

    async_to_sync(scenario)()


# --- each scoped role -------------------------------------------------------------------


@pytest.fixture
def staff_of(city, tianhe, tianhe_street):
    regions = {"city": city, "tianhe": tianhe, "tianhe_street": tianhe_street}

    def make(role: str, region: str):
        return StaffFactory(role=role, region=regions[region]).user

    return make


RAISERS = [
    (Role.CITY_ADMIN, "city"),
    (Role.DISTRICT_ADMIN, "tianhe"),
    (Role.STREET_ADMIN, "tianhe_street"),
    (Role.POLICE_STATION, "tianhe_street"),
]


@pytest.mark.parametrize(("role", "region"), RAISERS)
def test_each_raising_role_reads_what_it_raised(
    staff_of, role, region, service_area, near_responder
):
    user = staff_of(role, region)
    response = post(user)
    assert response.status_code == 201, response.content
    incident_id = response.json()["incident"]["id"]

    assert incident_id in visible_ids(user)
    assert readable(user, incident_id)


@pytest.mark.parametrize(("role", "region"), [*RAISERS[1:], (Role.POLICE_REVIEWER, "tianhe")])
def test_each_scoped_role_does_not_read_another_districts_incident(
    staff_of, role, region, service_area, near_responder, far_responder
):
    user = staff_of(role, region)
    inside = raised_by_system(SPOT)
    outside = raised_by_system(HAIZHU_SPOT)

    assert visible_ids(user) == {inside.pk}
    assert readable(user, inside.pk)
    assert not readable(user, outside.pk)


def test_a_city_admin_reads_both_districts(staff_of, service_area, near_responder, far_unit):
    user = staff_of(Role.CITY_ADMIN, "city")
    ids = {raised_by_system(SPOT).pk, raised_by_system(HAIZHU_SPOT).pk}
    assert visible_ids(user) == ids


# --- raising only inside the area (hole 3) -----------------------------------------------


@pytest.mark.parametrize(("role", "region"), RAISERS[1:])
def test_a_caller_cannot_raise_outside_its_area_and_no_unit_is_alerted(
    staff_of, role, region, service_area, near_responder, far_responder, layer_spy
):
    user = staff_of(role, region)
    response = post(user, at=HAIZHU_SPOT)

    assert response.status_code == 403, response.content
    body = response.json()
    assert body["code"] == "outside_scope"
    assert "辖区" in body["detail"]
    assert not Incident.objects.exists()
    assert not Dispatch.objects.exists()
    assert layer_spy.sent == []


def test_a_city_admin_raises_anywhere_in_the_city(staff_of, service_area, far_responder):
    response = post(staff_of(Role.CITY_ADMIN, "city"), at=HAIZHU_SPOT)
    assert response.status_code == 201, response.content


def test_a_district_caller_cannot_raise_where_no_district_is_known(tianhe_admin, near_responder):
    """Without district outlines the incident has no region: only city-wide staff
    would ever see it, so a district caller may not raise it blind."""
    response = post(tianhe_admin)
    assert response.status_code == 403
    assert response.json()["code"] == "outside_scope"
    assert not Incident.objects.exists()


def test_a_member_reads_the_incident_it_reported_even_if_its_unit_was_not_called(
    service_area, far_responder, near_responder
):
    """far_responder's unit is 4.8 km away: wave 1 does not call it."""
    response = client_for(far_responder.user).post(
        f"{INCIDENTS}report/", {"kind": "knife", "lat": SPOT[0], "lon": SPOT[1]}, format="json"
    )
    assert response.status_code == 201, response.content
    incident_id = response.json()["incident"]["id"]
    assert not Dispatch.objects.filter(unit=far_responder.unit).exists()

    assert readable(far_responder.user, incident_id)


# --- external_id (hole 3) ---------------------------------------------------------------


@pytest.fixture
def tianhe_station(tianhe_street):
    return StaffFactory(role=Role.POLICE_STATION, region=tianhe_street).user


@pytest.fixture
def haizhu_station(haizhu_street):
    return StaffFactory(role=Role.POLICE_STATION, region=haizhu_street).user


def _no_incident_data(body: dict) -> None:
    assert body["code"] == "external_id_conflict"
    assert "incident" not in body
    text = str(body)
    assert "商场门口有人持刀" not in text and "天河路" not in text


def test_an_external_id_from_another_scope_is_a_409_without_its_data(
    service_area, tianhe_station, haizhu_station, near_responder, far_responder, layer_spy
):
    first = post(tianhe_station, external_id="110-7")
    assert first.status_code == 201
    layer_spy.clear()

    again = post(haizhu_station, at=HAIZHU_SPOT, external_id="110-7")

    assert again.status_code == 409, again.content
    _no_incident_data(again.json())
    assert Incident.objects.count() == 1
    assert layer_spy.sent == []


def test_the_same_payload_from_another_scope_is_a_409_too(
    service_area, city, tianhe_station, haizhu_station, near_responder
):
    """Identical body, different caller out of scope: still no data."""
    assert post(tianhe_station, external_id="110-8").status_code == 201
    again = post(haizhu_station, external_id="110-8")
    assert again.status_code == 409, again.content
    _no_incident_data(again.json())


def test_the_same_external_id_with_a_different_payload_is_a_409(
    service_area, tianhe_station, near_responder, layer_spy
):
    assert post(tianhe_station, external_id="110-9").status_code == 201
    layer_spy.clear()

    again = post(tianhe_station, external_id="110-9", description="另一起")

    assert again.status_code == 409, again.content
    _no_incident_data(again.json())
    assert Incident.objects.get().description == "商场门口有人持刀"
    assert layer_spy.sent == []


def test_the_same_caller_repeating_the_identical_payload_gets_its_incident(
    service_area, tianhe_station, near_responder, layer_spy
):
    first = post(tianhe_station, external_id="110-10", discovered_at=None)
    layer_spy.clear()

    again = post(tianhe_station, external_id="110-10", discovered_at=None)

    assert again.status_code == 200, again.content
    assert again.json()["created"] is False
    assert again.json()["incident"]["id"] == first.json()["incident"]["id"]
    assert layer_spy.sent == []
    assert Dispatch.objects.count() == 1
