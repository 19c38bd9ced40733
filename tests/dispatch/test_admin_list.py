"""The incident list fits a desk screen: one time and three durations, not four
timestamps (the right-hand columns were cut off at 1280 px)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone

from dispatch.models import Incident
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_incident_list_shows_durations_not_four_timestamps(tianhe_street, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    found = timezone.now() - dt.timedelta(minutes=30)
    Incident.objects.create(
        kind=Incident.Kind.FIGHT,
        lat=23.13,
        lon=113.32,
        region=tianhe_street,
        source=Incident.Source.CONSOLE,
        policy={},
        discovered_at=found,
        responded_at=found + dt.timedelta(seconds=29),
        controlled_at=found + dt.timedelta(seconds=151),
    )
    client = Client()
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    page = client.get("/admin/dispatch/incident/").content.decode()
    assert "column-responded_at" not in page
    assert "column-handled_at" not in page
    assert '<td class="field-response_s">29</td>' in page
    assert '<td class="field-control_s">151</td>' in page
