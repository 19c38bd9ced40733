"""The board tests' cast: the dispatch tests' Tianhe spot and responders, a
Tianhe police station (the officer), a Haizhu station (another area) and a
Tianhe reviewer (watches, may not command)."""

from __future__ import annotations

import pytest

from tests.dispatch.conftest import (  # noqa: F401 - fixtures
    _fast_password_hashing,
    far_responder,
    layer_spy,
    mid_responder,
    mid_unit,
    near_responder,
    neighbour_responder,
    neighbour_unit,
    service_area,
)
from tests.factories import StaffFactory
from units.models import StaffProfile


@pytest.fixture
def officer(tianhe):
    user = StaffFactory(role=StaffProfile.Role.POLICE_STATION, region=tianhe).user
    user.first_name = "王警官"
    user.save()
    return user


@pytest.fixture
def other_officer(haizhu):
    return StaffFactory(role=StaffProfile.Role.POLICE_STATION, region=haizhu).user


@pytest.fixture
def reviewer(tianhe):
    return StaffFactory(role=StaffProfile.Role.POLICE_REVIEWER, region=tianhe).user
