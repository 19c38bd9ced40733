from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from dispatch import services as dispatch_services
from dispatch.events import unit_group
from dispatch.models import Delivery, Dispatch, Incident, IncidentEvent
from review import selectors, services
from review.models import Drill
from tests.factories import MemberFactory, StaffFactory, UnitFactory
from units.models import StaffProfile

pytestmark = pytest.mark.django_db


@pytest.fixture
def station(tianhe):
    return StaffFactory(role=StaffProfile.Role.POLICE_STATION, region=tianhe).user


@pytest.fixture
def street_units(tianhe_street):
    units = UnitFactory.create_batch(5, region=tianhe_street)
    for unit in units:
        MemberFactory(unit=unit, on_duty=True)
    return units


def _start(station, scope, code, capture):
    with capture(execute=True):
        return services.drill_start(user=station, scope=scope, code=code)


def test_a_street_drill_alerts_every_unit_of_the_street_in_batches_as_a_drill(
    station,
    tianhe_street,
    street_units,
    haizhu_street,
    settings,
    django_capture_on_commit_callbacks,
):
    settings.REVIEW_DRILL_BATCH = 2
    elsewhere = UnitFactory(region=haizhu_street)
    drill = _start(station, "street", tianhe_street.code, django_capture_on_commit_callbacks)
    drill.refresh_from_db()
    incident = drill.incident
    assert incident.is_drill and incident.source == Incident.Source.DRILL
    alerted = set(Dispatch.objects.filter(incident=incident).values_list("unit_id", flat=True))
    assert alerted == {u.pk for u in street_units} and elsewhere.pk not in alerted
    assert incident.waves.count() == 3  # 2 + 2 + 1 units
    assert drill.status == Drill.Status.SENT and drill.units_alerted == drill.units_total == 5
    assert Delivery.objects.filter(dispatch__incident=incident).count() == 5
    assert incident.events.filter(type=IncidentEvent.Type.ALERTED).count() == 5


def test_members_phones_get_an_alert_frame_marked_as_a_drill(
    station, tianhe_street, street_units, django_capture_on_commit_callbacks
):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(unit_group(street_units[0].pk), channel)
    _start(station, "street", tianhe_street.code, django_capture_on_commit_callbacks)
    frame = async_to_sync(layer.receive)(channel)["payload"]
    assert frame["type"] == "incident.alert"
    assert frame["incident"]["is_drill"] is True


def test_the_normal_member_actions_score_a_drill_and_nobody_is_stood_down_early(
    station, tianhe_street, street_units, django_capture_on_commit_callbacks
):
    drill = _start(station, "area", None, django_capture_on_commit_callbacks)
    members = [u.members.get() for u in street_units]
    for m in members[:3]:
        dispatch_services.delivery_ack(incident_id=drill.incident_id, member=m)
        dispatch_services.dispatch_act(incident_id=drill.incident_id, member=m, action="accept")
    dispatch_services.dispatch_act(
        incident_id=drill.incident_id,
        member=members[0],
        action="on_site",
        lat=street_units[0].lat,
        lon=street_units[0].lon,
    )
    assert not Dispatch.objects.filter(
        incident=drill.incident, status=Dispatch.Status.STOOD_DOWN
    ).exists()
    total, lines = selectors.drill_report(user=station, drill=drill)
    assert (total.units, total.delivered, total.acknowledged, total.arrived) == (5, 3, 3, 1)
    first = next(x for x in lines if x.unit_id == street_units[0].pk)
    assert first.received == 1 and first.acknowledged_s is not None
    assert first.arrived_s is not None and first.arrival_verified is True


def test_league_tables_rank_stations_streets_and_units_by_score(
    station, tianhe_street, street_units, django_capture_on_commit_callbacks
):
    drill = _start(station, "street", tianhe_street.code, django_capture_on_commit_callbacks)
    fast = street_units[2].members.get()
    dispatch_services.dispatch_act(incident_id=drill.incident_id, member=fast, action="accept")
    units = selectors.drill_league(user=station, by="unit")
    assert units[0].key == street_units[2].pk and units[0].score == 50.0
    [by_station] = selectors.drill_league(user=station, by="station")
    assert by_station.label == "天河区" and by_station.units == 5
    [by_street] = selectors.drill_league(user=station, by="street")
    assert by_street.label == "五山街道"


def test_only_police_stations_start_drills_and_only_inside_their_scope(
    station, tianhe_reviewer, haizhu_street, street_units
):
    with pytest.raises(services.DrillRefused) as exc:
        services.drill_start(user=tianhe_reviewer, scope="area")
    assert exc.value.code == "not_station"
    with pytest.raises(services.DrillRefused) as exc:
        services.drill_start(user=station, scope="street", code=haizhu_street.code)
    assert exc.value.code == "out_of_scope"
    with pytest.raises(services.DrillRefused) as exc:
        services.drill_start(user=station, scope="city")
    assert exc.value.code == "out_of_scope"
    assert not Incident.objects.exists()


async def _receive(layer, channel: str) -> dict:
    """The next message on ``channel``; a missing one fails instead of hanging."""
    return await asyncio.wait_for(layer.receive(channel), timeout=2)


def test_closing_a_drill_closes_its_incident_for_every_phone(
    station, tianhe_street, street_units, django_capture_on_commit_callbacks
):
    drill = _start(station, "area", None, django_capture_on_commit_callbacks)
    layer = get_channel_layer()
    phones = {}  # one listening "phone" per alerted unit, joined as a member socket would
    for unit in street_units:
        phones[unit.pk] = async_to_sync(layer.new_channel)()
        async_to_sync(layer.group_add)(unit_group(unit.pk), phones[unit.pk])
    with django_capture_on_commit_callbacks(execute=True):
        services.drill_close(user=station, drill_id=drill.pk)
    drill.refresh_from_db()
    assert drill.status == Drill.Status.CLOSED
    assert drill.incident.status == Incident.Status.CLOSED
    for unit_id, channel in phones.items():
        frame = async_to_sync(_receive)(layer, channel)["payload"]
        assert frame["type"] == "incident.closed", unit_id
        assert frame["incident_id"] == drill.incident_id
        assert frame["status"] == Incident.Status.CLOSED


def test_drill_pages_start_a_drill_and_show_its_report(
    client, station, tianhe_street, street_units, django_capture_on_commit_callbacks
):
    client.force_login(station)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/review/drills/", {"scope": "street", "code": tianhe_street.code})
    drill = Drill.objects.get()
    assert response.status_code == 302 and response.url == f"/review/drills/{drill.pk}/"
    page = client.get(response.url).content.decode()
    assert "拉动测试" in page and street_units[0].code in page
    assert "派出所排名" in client.get("/review/drills/").content.decode()


def test_a_reviewer_cannot_start_a_drill_from_the_page(client, tianhe_reviewer, street_units):
    client.force_login(tianhe_reviewer)
    assert client.post("/review/drills/", {"scope": "area"}).status_code == 403
