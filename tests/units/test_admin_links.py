"""Every link on an admin change page opens for the user who sees the page.

Read-only foreign keys are links by default in Django's admin, to the related
object's change page, whoever looks: a police station reading a unit got a link
to the region's page, a reviewer reading an incident links to user accounts, and
each answered 403. The crawl (tests/e2e/test_crawl.py) found them; this is the
quick version, per role, through the test client.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from dispatch.models import Dispatch, Incident, IncidentEvent, Wave
from tests.factories import EquipmentFactory, MemberFactory, StaffFactory, UserFactory
from units.models import StaffProfile

pytestmark = pytest.mark.django_db

Role = StaffProfile.Role

CHANGE_LINK = re.compile(r'href="(/admin/[a-z_]+/[a-z_]+/\d+/change/)"')


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def rows(near_unit, tianhe_street):
    member = MemberFactory(unit=near_unit, user=UserFactory())
    kit = EquipmentFactory(unit=near_unit)
    raiser = StaffFactory(role=Role.POLICE_STATION, region=tianhe_street).user
    incident = Incident.objects.create(
        kind=Incident.Kind.FIGHT,
        lat=near_unit.lat,
        lon=near_unit.lon,
        region=tianhe_street,
        source=Incident.Source.CONSOLE,
        discovered_at=timezone.now(),
        policy={},
        reported_by=member,
        created_by=raiser,
    )
    wave = Wave.objects.create(incident=incident, number=1, radius_m=1000)
    Dispatch.objects.create(
        incident=incident,
        wave=wave,
        unit=near_unit,
        rank=1,
        distance_m=30,
        eta_s=29,
        accepted_by=member,
        status=Dispatch.Status.ACCEPTED,
    )
    IncidentEvent.objects.create(
        incident=incident, seq=1, type=IncidentEvent.Type.ACCEPTED, unit=near_unit, member=member
    )
    return {
        "units_unit": near_unit,
        "units_member": member,
        "units_equipment": kit,
        "dispatch_incident": incident,
    }


def _user(role, tianhe, tianhe_street, near_unit):
    if role == "superuser_with_role":
        profile = StaffFactory(role=Role.CITY_ADMIN, region=tianhe.parent)
        profile.user.is_superuser = True
        profile.user.save()
        return profile.user
    region = tianhe_street if role in (Role.STREET_ADMIN, Role.UNIT_LEADER) else tianhe
    unit = near_unit if role == Role.UNIT_LEADER else None
    return StaffFactory(role=role, region=region, unit=unit).user


@pytest.mark.parametrize(
    "role",
    [
        Role.DISTRICT_ADMIN,
        Role.STREET_ADMIN,
        Role.POLICE_STATION,
        Role.POLICE_REVIEWER,
        Role.UNIT_LEADER,
        "superuser_with_role",
    ],
)
def test_links_on_change_pages_open(role, rows, tianhe, tianhe_street, near_unit):
    client = Client()
    client.force_login(_user(role, tianhe, tianhe_street, near_unit))
    opened = 0
    for name, obj in rows.items():
        page = client.get(reverse(f"admin:{name}_change", args=[obj.pk]))
        if page.status_code != 200:
            continue  # not this role's page: the permission table's tests cover that
        opened += 1
        for link in set(CHANGE_LINK.findall(page.content.decode())):
            answer = client.get(link)
            assert answer.status_code == 200, f"{name} links {link}: {answer.status_code}"
    assert opened >= 2


def test_a_plain_foreign_key_still_names_the_row(rows, tianhe):
    """Where the link goes, the name stays: the station reads which street."""
    station = StaffFactory(role=Role.POLICE_STATION, region=tianhe).user
    client = Client()
    client.force_login(station)
    unit = rows["units_unit"]
    page = client.get(reverse("admin:units_unit_change", args=[unit.pk])).content.decode()
    assert str(unit.region) in page
    incident = rows["dispatch_incident"]
    page = client.get(reverse("admin:dispatch_incident_change", args=[incident.pk]))
    assert page.status_code == 200
    assert str(incident.region) in page.content.decode()


def test_a_members_login_never_shows_its_phone_to_a_reviewer(rows, tianhe):
    """A member's login is named after its phone (m138...): shown as a foreign key
    it would unmask the number for a role that gets phones masked."""
    member = rows["units_member"]
    member.user.username = f"m{member.phone}"
    member.user.save()
    reviewer = StaffFactory(role=Role.POLICE_REVIEWER, region=tianhe).user
    client = Client()
    client.force_login(reviewer)
    page = client.get(reverse("admin:units_member_change", args=[member.pk]))
    assert page.status_code == 200
    assert member.phone not in page.content.decode()
    assert member.phone_masked in page.content.decode()
