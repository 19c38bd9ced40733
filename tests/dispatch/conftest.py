"""The dispatch tests' cast: an incident spot in Tianhe, responders 200 m, 2.4 km
and 4.8 km away, a 110 integration with a token, a district admin elsewhere.

Each ready unit has two members on duty: with ``post_min`` 1 a unit with one
person on duty keeps them on its own post and is never called.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from channels.layers import get_channel_layer
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.dispatch.factories import LoginMemberFactory
from tests.factories import StaffFactory, UnitFactory, UserFactory
from units.locate import locate_cache_reset
from units.models import Member, Region, StaffProfile
from units.services import district_shapes_reset

# The incident spot; 0.001 degree of latitude is ~111 m.
SPOT = (23.1318, 113.3200)  # 200 m north of near_unit (23.1300, 113.3200)
NEIGHBOUR = (23.1350, 113.3230)  # 470 m north-east: also inside wave 1
MID = (23.1100, 113.3200)  # 2.4 km south: outside wave 1 (1500 m), inside wave 2 (3000 m)
# far_unit (23.0900, 113.3300) is 4.8 km away: outside both.


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _box(south: float, west: float, north: float, east: float) -> dict:
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


@pytest.fixture
def service_area(tianhe, haizhu, tianhe_street, haizhu_street) -> list[Region]:
    """District outlines, so incidents get a region and points outside are refused."""
    tianhe.boundary = _box(23.105, 113.28, 23.20, 113.40)
    tianhe.save()
    haizhu.boundary = _box(23.05, 113.25, 23.105, 113.40)
    haizhu.save()
    haizhu_street.lat, haizhu_street.lon = 23.09, 113.33
    haizhu_street.save()
    district_shapes_reset()
    locate_cache_reset()
    return [tianhe, haizhu]


def _with_login(member: Member) -> Member:
    member.user = UserFactory()
    member.save()
    return member


@pytest.fixture
def near_responder(near_member) -> Member:
    """near_member with a login, and a partner on duty so the unit can send someone."""
    LoginMemberFactory(unit=near_member.unit)
    return _with_login(near_member)


@pytest.fixture
def far_responder(far_member) -> Member:
    LoginMemberFactory(unit=far_member.unit)
    return _with_login(far_member)


@pytest.fixture
def neighbour_unit(tianhe_street):
    return UnitFactory(region=tianhe_street, lat=NEIGHBOUR[0], lon=NEIGHBOUR[1])


@pytest.fixture
def neighbour_responder(neighbour_unit) -> Member:
    LoginMemberFactory(unit=neighbour_unit)
    return LoginMemberFactory(unit=neighbour_unit)


@pytest.fixture
def mid_unit(tianhe_street):
    return UnitFactory(region=tianhe_street, lat=MID[0], lon=MID[1])


@pytest.fixture
def mid_responder(mid_unit) -> Member:
    LoginMemberFactory(unit=mid_unit)
    return LoginMemberFactory(unit=mid_unit)


@pytest.fixture
def responders(near_responder, mid_responder, far_responder) -> dict[str, Member]:
    return {"near": near_responder, "mid": mid_responder, "far": far_responder}


@pytest.fixture
def dispatcher(city):
    """The 110 integration's account: city-wide staff."""
    return StaffFactory(role=StaffProfile.Role.POLICE_STATION, region=city).user


@pytest.fixture
def cad_client(dispatcher) -> APIClient:
    """An API client authenticated with the integration's token."""
    client = APIClient()
    token = Token.objects.create(user=dispatcher)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@dataclass
class LayerSpy:
    """What reached the channel layer: (group, payload) in send order."""

    sent: list[tuple[str, dict]] = field(default_factory=list)

    def to(self, group: str) -> list[dict]:
        return [payload for g, payload in self.sent if g == group]

    def types(self, group: str) -> list[str]:
        return [payload["type"] for payload in self.to(group)]

    def clear(self) -> None:
        self.sent.clear()


@pytest.fixture
def layer_spy(monkeypatch) -> LayerSpy:
    """Record every group_send on the (in-memory) channel layer, then pass it on."""
    layer = get_channel_layer()
    spy = LayerSpy()
    real_group_send = layer.group_send

    async def group_send(group: str, message: dict) -> None:
        # One frame, or a run of them (dispatch.events.coalesce).
        for payload in message.get("payloads") or [message["payload"]]:
            spy.sent.append((group, payload))
        await real_group_send(group, message)

    monkeypatch.setattr(layer, "group_send", group_send)
    return spy
