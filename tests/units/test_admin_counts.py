"""Admin lists count matching rows only up to a cap, and say when they stopped."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from dispatch.models import Incident
from tests.factories import UnitFactory, UserFactory
from units.admin import CappedCountPaginator

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    client = Client()
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    return client


def test_a_filtered_list_past_the_cap_says_more_not_a_number(
    superuser_client, tianhe_street, monkeypatch
):
    monkeypatch.setattr(CappedCountPaginator, "cap", 3)
    for _ in range(5):
        UnitFactory(region=tianhe_street)
    page = superuser_client.get("/admin/units/unit/?q=U").content.decode()
    assert "超过 3 条结果" in page
    assert "3+" in page


def test_the_incident_list_marks_its_capped_count_too(superuser_client, tianhe_street, monkeypatch):
    monkeypatch.setattr(CappedCountPaginator, "cap", 2)
    for _ in range(3):
        Incident.objects.create(
            kind=Incident.Kind.FIGHT,
            lat=23.13,
            lon=113.32,
            region=tianhe_street,
            source=Incident.Source.CONSOLE,
            policy={},
            discovered_at=timezone.now(),
        )
    page = superuser_client.get("/admin/dispatch/incident/").content.decode()
    assert "2+" in page


def test_below_the_cap_the_count_is_exact(superuser_client, tianhe_street):
    for _ in range(2):
        UnitFactory(region=tianhe_street)
    page = superuser_client.get("/admin/units/unit/?q=U").content.decode()
    assert "2 条结果" in page
    assert "超过" not in page
