"""Drills use the gathering rule: a unit's destination is the drill's gathering
point, by default its own post (到岗); the headline says it is a drill; arrival
is scored against that same point; the drill page's figures are served live."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.test import Client

from dispatch import services as dispatch_services
from dispatch.events import unit_group
from dispatch.models import Incident
from review import selectors, services
from tests.factories import MemberFactory, StaffFactory, UnitFactory
from units.models import StaffProfile

pytestmark = pytest.mark.django_db


@pytest.fixture
def station(tianhe):
    return StaffFactory(role=StaffProfile.Role.POLICE_STATION, region=tianhe).user


@pytest.fixture
def post_unit(tianhe_street):
    # 2 km from the street's centre: the old alert pointed members there.
    unit = UnitFactory(region=tianhe_street, lat=23.150, lon=113.340)
    MemberFactory(unit=unit, on_duty=True)
    return unit


def _start(station, code, capture):
    with capture(execute=True):
        return services.drill_start(user=station, scope="street", code=code)


def test_a_drill_alert_points_each_unit_at_its_own_post_and_says_drill(
    station, tianhe_street, post_unit, django_capture_on_commit_callbacks
):
    tianhe_street.lat, tianhe_street.lon = 23.1318, 113.3200
    tianhe_street.save()
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(unit_group(post_unit.pk), channel)
    _start(station, tianhe_street.code, django_capture_on_commit_callbacks)
    frame = async_to_sync(layer.receive)(channel)["payload"]
    assert frame["type"] == "incident.alert"
    assert frame["dispatch"]["destination"] == {
        "lat": post_unit.lat,
        "lon": post_unit.lon,
        "kind": "own_post",
    }
    assert frame["incident"]["kind_display"] == "拉动测试（演练）"
    assert frame["incident"]["gathering"] is None


def test_arrival_is_scored_at_the_own_post_or_at_the_drills_gathering_point(
    station, tianhe_street, post_unit, django_capture_on_commit_callbacks
):
    drill = _start(station, tianhe_street.code, django_capture_on_commit_callbacks)
    member = post_unit.members.get()
    incident = drill.incident
    dispatch_services.dispatch_act(
        incident_id=incident.pk, member=member, action="accept", lat=23.150, lon=113.340
    )
    dispatch_services.dispatch_act(
        incident_id=incident.pk, member=member, action="on_site", lat=23.1501, lon=113.3401
    )
    (check,) = selectors.arrival_checks(incident=incident)
    assert check.verified and check.distance_m < 20  # at its own post
    # The station gathers everyone at one point 1 km away: the same report is
    # now far from where the unit was sent.
    dispatch_services.incident_gather_set(incident=incident, lat=23.159, lon=113.340, actor=station)
    incident = Incident.objects.get(pk=incident.pk)
    (check,) = selectors.arrival_checks(incident=incident)
    assert not check.verified and check.distance_m > 900
    assert incident.destination(post=(post_unit.lat, post_unit.lon))[0] == "gathering"


def test_the_drill_page_serves_its_figures_for_the_live_update(
    station, tianhe_street, post_unit, django_capture_on_commit_callbacks
):
    drill = _start(station, tianhe_street.code, django_capture_on_commit_callbacks)
    client = Client()
    client.force_login(station)
    page = client.get(f"/review/drills/{drill.pk}/").content.decode()
    assert 'id="drill-live"' in page and "review/drill-live.js" in page
    body = client.get(f"/review/drills/{drill.pk}/live/").json()
    assert body["units_total"] == 1 and body["units_alerted"] == 1
    assert set(body["kpis"]) >= {"delivered_pct", "ack_pct", "arrived_pct", "score"}
    stranger = Client()
    stranger.force_login(
        StaffFactory(role=StaffProfile.Role.POLICE_REVIEWER, region=_haizhu()).user
    )
    assert stranger.get(f"/review/drills/{drill.pk}/live/").status_code == 404


def _haizhu():
    from tests.factories import RegionFactory
    from units.models import Region

    city = Region.objects.get(level=Region.Level.CITY)
    return RegionFactory(code="440105", name="海珠区", level=Region.Level.DISTRICT, parent=city)
