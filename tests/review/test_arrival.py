from __future__ import annotations

import datetime as dt

import pytest

from dispatch.models import IncidentEvent, MemberLocation
from review.selectors import arrival_checks
from tests.factories import MemberFactory

from .conftest import past_incident

pytestmark = pytest.mark.django_db

SCENE = (23.1300, 113.3200)
# About 111 m per 0.001 degree of latitude.
NEAR = (23.1309, 113.3200)  # ~100 m north
FAR = (23.1330, 113.3200)  # ~334 m north


def _on_site(incident, member, seq, **data):
    return IncidentEvent.objects.create(
        incident=incident,
        seq=seq,
        type=IncidentEvent.Type.ON_SITE,
        unit=member.unit,
        member=member,
        data=data,
    )


@pytest.fixture
def incident(tianhe_street):
    return past_incident(region=tianhe_street, lat=SCENE[0], lon=SCENE[1])


def test_an_on_site_report_from_within_the_radius_counts_as_arrival(incident, tianhe_unit):
    member = MemberFactory(unit=tianhe_unit)
    _on_site(incident, member, 1, lat=NEAR[0], lon=NEAR[1])
    [check] = arrival_checks(incident=incident)
    assert check.verified and check.source == "report"
    assert 95 <= check.distance_m <= 105


def test_an_on_site_report_from_far_away_is_flagged(incident, tianhe_unit):
    member = MemberFactory(unit=tianhe_unit)
    _on_site(incident, member, 1, lat=FAR[0], lon=FAR[1])
    [check] = arrival_checks(incident=incident)
    assert not check.verified and check.flag == "far"


def test_the_radius_is_a_setting(incident, tianhe_unit, settings):
    settings.REVIEW_ARRIVAL_RADIUS_M = 400
    _on_site(incident, MemberFactory(unit=tianhe_unit), 1, lat=FAR[0], lon=FAR[1])
    assert arrival_checks(incident=incident)[0].verified


def test_without_a_position_in_the_report_the_nearest_shared_location_in_time_decides(
    incident, tianhe_unit
):
    member = MemberFactory(unit=tianhe_unit)
    event = _on_site(incident, member, 1)
    at = event.created_at
    for offset, point in ((-90, FAR), (-5, NEAR), (100, FAR)):
        loc = MemberLocation.objects.create(
            member=member, incident=incident, lat=point[0], lon=point[1]
        )
        MemberLocation.objects.filter(pk=loc.pk).update(
            created_at=at + dt.timedelta(seconds=offset)
        )
    [check] = arrival_checks(incident=incident)
    assert check.source == "location" and check.verified


def test_a_report_with_no_position_at_all_is_flagged_as_unverifiable(incident, tianhe_unit):
    member = MemberFactory(unit=tianhe_unit)
    event = _on_site(incident, member, 1)
    old = MemberLocation.objects.create(member=member, lat=NEAR[0], lon=NEAR[1])
    MemberLocation.objects.filter(pk=old.pk).update(
        created_at=event.created_at - dt.timedelta(hours=1)
    )
    [check] = arrival_checks(incident=incident)
    assert check.flag == "no_position"


def test_a_drill_arrival_is_judged_at_the_units_own_post(tianhe_street, tianhe_unit):
    drill = past_incident(region=tianhe_street, lat=23.20, lon=113.40, is_drill=True)
    _on_site(drill, MemberFactory(unit=tianhe_unit), 1, lat=tianhe_unit.lat, lon=tianhe_unit.lon)
    assert arrival_checks(incident=drill)[0].verified


def test_the_incident_page_shows_the_flag(client, tianhe_reviewer, incident, tianhe_unit):
    _on_site(incident, MemberFactory(unit=tianhe_unit), 1, lat=FAR[0], lon=FAR[1])
    client.force_login(tianhe_reviewer)
    page = client.get(f"/review/incidents/{incident.pk}/").content.decode()
    assert "位置离现场过远" in page
