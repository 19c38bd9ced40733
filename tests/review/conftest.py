from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from dispatch.models import Dispatch, Incident, IncidentEvent, Wave
from tests.factories import StaffFactory, UnitFactory
from units.models import StaffProfile

T0 = dt.datetime(2024, 5, 6, 10, 0, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # a Monday


def past_incident(
    *,
    region,
    response_s: float | None = 30,
    control_s: float | None = 120,
    handling_s: float | None = 240,
    at: dt.datetime = T0,
    kind: str = Incident.Kind.FIGHT,
    lat: float = 23.13,
    lon: float = 113.32,
    is_drill: bool = False,
) -> Incident:
    """A past incident with the four timestamps at these offsets from discovery."""

    def after(seconds):
        return at + dt.timedelta(seconds=seconds) if seconds is not None else None

    return Incident.objects.create(
        kind=kind,
        lat=lat,
        lon=lon,
        source=Incident.Source.DRILL if is_drill else Incident.Source.CAD,
        region=region,
        policy={},
        is_drill=is_drill,
        discovered_at=at,
        responded_at=after(response_s),
        controlled_at=after(control_s),
        handled_at=after(handling_s),
        status=Incident.Status.CLOSED if handling_s is not None else Incident.Status.OPEN,
    )


def dispatch_to(
    incident: Incident,
    unit,
    *,
    accepted_s: float | None = None,
    on_site_s: float | None = None,
    declined: bool = False,
    member=None,
) -> Dispatch:
    wave, _ = Wave.objects.get_or_create(incident=incident, number=1, defaults={"radius_m": 1500})
    at = incident.discovered_at
    d = Dispatch.objects.create(
        incident=incident,
        wave=wave,
        unit=unit,
        rank=1,
        distance_m=100,
        eta_s=90,
        status=Dispatch.Status.ON_SITE
        if on_site_s is not None
        else Dispatch.Status.ACCEPTED
        if accepted_s is not None
        else Dispatch.Status.DECLINED
        if declined
        else Dispatch.Status.ALERTED,
        accepted_at=at + dt.timedelta(seconds=accepted_s) if accepted_s is not None else None,
        on_site_at=at + dt.timedelta(seconds=on_site_s) if on_site_s is not None else None,
        accepted_by=member if accepted_s is not None else None,
    )
    if declined:
        incident.last_seq += 1
        Incident.objects.filter(pk=incident.pk).update(last_seq=incident.last_seq)
        IncidentEvent.objects.create(
            incident=incident, seq=incident.last_seq, type=IncidentEvent.Type.DECLINED, unit=unit
        )
    return d


@pytest.fixture
def city_reviewer(city):
    return StaffFactory(role=StaffProfile.Role.POLICE_REVIEWER, region=city).user


@pytest.fixture
def haizhu_reviewer(haizhu):
    return StaffFactory(role=StaffProfile.Role.POLICE_REVIEWER, region=haizhu).user


@pytest.fixture
def tianhe_reviewer(tianhe):
    return StaffFactory(role=StaffProfile.Role.POLICE_REVIEWER, region=tianhe).user


@pytest.fixture
def tianhe_unit(tianhe_street):
    return UnitFactory(region=tianhe_street, lat=23.1300, lon=113.3200)


def seeded_city(tianhe_street, haizhu_street, *, count: int, seed: int, until) -> list:
    """Eight units with a member in each of two districts, and ``count`` seeded
    incidents over the 60 days before ``until``: the units."""
    from review.seeding import incidents_seed
    from tests.factories import MemberFactory, UnitFactory

    units = [UnitFactory(region=tianhe_street, lat=23.13 + i * 0.002, lon=113.32) for i in range(8)]
    units += [
        UnitFactory(region=haizhu_street, lat=23.09 + i * 0.002, lon=113.33) for i in range(8)
    ]
    for u in units:
        MemberFactory(unit=u)
    incidents_seed(count=count, seed=seed, until=until, days=60)
    return units
