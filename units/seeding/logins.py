"""The demo logins as ``demo_logins`` prints them (the read side)."""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework.authtoken.models import Token

from ..models import Member, StaffProfile
from ..selectors import unit_list_ready_nearest
from .figures import DEMO_SPOT_LAT, DEMO_SPOT_LON, STAFF_LOGINS

# --- demo logins (read side) ----------------------------------------------------------


@dataclass(frozen=True)
class StaffLogin:
    username: str
    role: str
    region: str


@dataclass(frozen=True)
class MemberLogin:
    phone: str
    name: str
    unit_code: str
    unit_name: str
    distance_m: float


@dataclass(frozen=True)
class DemoLogins:
    staff: list[StaffLogin]
    members: list[MemberLogin]
    admin_token: str | None


def demo_logins_list(
    *, lat: float = DEMO_SPOT_LAT, lon: float = DEMO_SPOT_LON, limit: int = 5
) -> DemoLogins:
    """The demo staff accounts, one on-duty member from each of the ``limit``
    units nearest (lat, lon), and the admin's API token."""
    usernames = [u for u, _role in STAFF_LOGINS]
    profiles = StaffProfile.objects.filter(user__username__in=usernames).select_related(
        "user", "region"
    )
    by_name = {p.user.username: p for p in profiles}
    staff = [
        StaffLogin(username=u, role=by_name[u].get_role_display(), region=by_name[u].region.name)
        for u in usernames
        if u in by_name
    ]
    token = Token.objects.filter(user__username="admin").values_list("key", flat=True).first()

    # The units an incident here would alert (ready: people to spare beyond
    # their own post), so a demo incident next to one reaches its member.
    nearest = unit_list_ready_nearest(lat=lat, lon=lon, limit=limit)
    rows = (
        Member.objects.filter(
            unit_id__in=[unit_id for unit_id, _d in nearest], on_duty=True, is_active=True
        )
        .order_by("unit_id", "id")
        .values_list("phone", "name", "unit_id", "unit__code", "unit__name")
    )
    first_per_unit: dict[int, tuple] = {}
    for phone, name, unit_id, code, unit_name in rows:
        first_per_unit.setdefault(unit_id, (phone, name, code, unit_name))
    members = [
        MemberLogin(*first_per_unit[unit_id], distance_m)
        for unit_id, distance_m in nearest
        if unit_id in first_per_unit
    ]
    return DemoLogins(staff=staff, members=members, admin_token=token)
