"""Intake's rules beside ``services.incident_create``: who may raise where, when a
repeated ``external_id`` is the same report, and which discovery times are
believed.

Pure functions over rows already loaded (no queries but a staff profile's
region, which the caller's request usually has cached), so the hot path stays
lean.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _

from units.models import Region, StaffProfile, Unit
from units.scoping import staff_profile

from .models import Incident
from .ranking import rank_units, unit_name


class IntakeRefused(Exception):
    """An intake the caller may not make; nothing was written, nobody alerted.

    ``code`` is ``outside_scope`` (the place lies outside the caller's area) or
    ``external_id_conflict`` (the id names another report, or one the caller may
    not see); the message never carries the other incident's data.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def region_in_scope(*, user, region: Region | None) -> bool:
    """May staff ``user`` raise (and so read) an incident in ``region``?

    The same boundary ``selectors.incident_list`` reads by: the caller's region
    subtree; an incident with no region (outside every known district) only for
    city-wide staff. ``user`` None is the system itself (a command, a drill).
    """
    if user is None or user.is_superuser:
        return True
    profile: StaffProfile | None = staff_profile(user)
    if profile is None or profile.role == StaffProfile.Role.UNIT_LEADER:
        return False
    if region is None:
        return profile.region.parent_id is None
    return region.path.startswith(profile.region.path)


def scope_check(*, user, region: Region | None) -> None:
    if not region_in_scope(user=user, region=region):
        raise IntakeRefused(
            "outside_scope",
            _("警情地点不在您的辖区内，请交由所属辖区或市级指挥录入。"),
        )


def conflict() -> IntakeRefused:
    return IntakeRefused(
        "external_id_conflict",
        _("该 external_id 已用于另一条警情，请换用新的编号。"),
    )


@dataclass(frozen=True)
class Discovery:
    """The discovery time kept, and what the caller's clock said if it was ahead."""

    at: dt.datetime
    reported: dt.datetime | None = None
    skew_s: float | None = None

    def event_data(self) -> dict[str, Any]:
        if self.skew_s is None:
            return {}
        return {
            "clock_skew_s": round(self.skew_s, 3),
            "discovered_at_reported": _iso(self.reported),
        }


def discovery_settle(value: dt.datetime | None, *, now: dt.datetime) -> Discovery:
    """The discovery time to keep for an intake received at ``now``.

    A time ahead of ours is a fast clock at the caller (a CAD server), never a
    reason to refuse an emergency: it is clamped to the receipt time and the
    skew kept for the timeline. A time older than ``DISCOVERY_WINDOW_S`` is a
    typo or a broken integration, not a live emergency: refused with the field.
    """
    if value is None:
        return Discovery(at=now)
    if timezone.is_naive(value):
        raise ValidationError({"discovered_at": _("发现时间必须带时区。")})
    window = dt.timedelta(seconds=settings.DISCOVERY_WINDOW_S)
    if value < now - window:
        raise ValidationError(
            {
                "discovered_at": _("发现时间早于 %(h)s 小时前，不是正在发生的警情。")
                % {"h": f"{window.total_seconds() / 3600:g}"}
            }
        )
    if value > now:
        return Discovery(at=now, reported=value, skew_s=(value - now).total_seconds())
    return Discovery(at=value)


def same_report(
    incident: Incident, *, reported_discovered_at: dt.datetime | None, **fields: Any
) -> bool:
    """Is this repeat of ``incident``'s ``external_id`` the same report?

    Compares what the caller sent; a discovery time or an address the caller
    left out is not compared (they were the receipt time and a placed address),
    and a discovery time that was clamped is compared with what the caller's
    clock said then (``reported_discovered_at``, from the
    ``created`` event).
    """
    for name, value in fields.items():
        if name == "address" and not value:
            continue  # left out: intake placed it (``address_default``)
        if name == "discovered_at":
            if value is not None and value not in {incident.discovered_at, reported_discovered_at}:
                return False
        elif getattr(incident, name) != value:
            return False
    return True


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def address_default(*, region: Region | None, lat: float, lon: float) -> str:
    """Where an incident reported without an address is, for people: its street
    and the nearest unit ("天河南街道·天河城商场附近"), never raw coordinates.
    Stored with the incident (it is data, in the city's language, like a CAD
    address), so every page, frame and SMS shows the same words."""
    nearest = rank_units(lat=lat, lon=lon, limit=1, require_available=False)
    unit = None
    if nearest:
        # From the ranking's index, which rank_units just read: no query.
        unit_id = nearest[0].unit_id
        unit = unit_name(unit_id)
        if unit is None:
            # Not expected (the index takes names before the rows that rank
            # them); one query then, rather than an address without its unit.
            unit = Unit.objects.filter(pk=unit_id).values_list("name", flat=True).first()
    street = region.name if region is not None else ""
    if unit:
        return f"{street}·{unit}附近" if street else f"{unit}附近"
    return street
