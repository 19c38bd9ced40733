"""Factories for dispatch tests (the shared roster factories live in tests/factories.py)."""

from __future__ import annotations

import datetime as dt

import factory
from django.utils import timezone

from dispatch.models import Incident
from tests.factories import MemberFactory, UserFactory
from units.models import STANDARD_KIT, Unit


class LoginMemberFactory(MemberFactory):
    """A member with a login account, on duty: someone whose phone gets alerts."""

    on_duty = True
    user = factory.SubFactory(UserFactory)


def give_full_kit(unit: Unit) -> None:
    from tests.factories import EquipmentFactory

    expires = timezone.localdate() + dt.timedelta(days=365)
    for kind, quantity in STANDARD_KIT.items():
        EquipmentFactory(unit=unit, kind=kind, quantity=quantity, expires=expires)


def incident_payload(**overrides) -> dict:
    body = {
        "kind": Incident.Kind.KNIFE,
        "severity": Incident.Severity.MEDIUM,
        "lat": 23.1318,
        "lon": 113.3200,
        "address": "天河路 1 号",
        "description": "商场门口有人持刀",
    }
    body.update(overrides)
    return body
