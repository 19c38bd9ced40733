from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from . import geo
from .models import Member, Region, RosterChange, Unit


def roster_changed(*, unit_ids: Iterable[int] | None) -> None:
    """Record that these units (None: all) changed, for every process's unit index."""
    if unit_ids is None:
        RosterChange.objects.create(unit_id=None)
    else:
        RosterChange.objects.bulk_create([RosterChange(unit_id=u) for u in set(unit_ids)])


@dataclass(frozen=True)
class DistrictShape:
    region_id: int
    code: str
    geometry: dict


@lru_cache(maxsize=1)
def _district_shapes() -> tuple[DistrictShape, ...]:
    rows = Region.objects.filter(level=Region.Level.DISTRICT, boundary__isnull=False)
    return tuple(DistrictShape(r.id, r.code, r.boundary) for r in rows)


def district_shapes_reset() -> None:
    _district_shapes.cache_clear()


def district_at(*, lat: float, lon: float) -> DistrictShape | None:
    for shape in _district_shapes():
        if geo.point_in_geometry(lat, lon, shape.geometry):
            return shape
    return None


def location_validate(*, lat: float, lon: float, field_prefix: str = "") -> None:
    """Raise ValidationError unless (lat, lon) is a coordinate inside the service area.

    The service area is the union of the district outlines; with none loaded
    (an empty or test database), any valid coordinate is accepted.
    """
    if lat is None or lon is None or not geo.valid_latlon(lat, lon):
        raise ValidationError(
            {f"{field_prefix}lat": _("坐标无效：纬度须在 -90..90，经度须在 -180..180。")}
        )
    if _district_shapes() and district_at(lat=lat, lon=lon) is None:
        raise ValidationError({f"{field_prefix}lat": _("坐标不在服务区域内。")})


def unit_validate(*, unit: Unit) -> None:
    """Field and domain checks for a unit about to be saved (raises ValidationError)."""
    unit.full_clean(exclude=["region"] if unit.region_id else None)
    if unit.region_id is None:
        raise ValidationError({"region": _("单元必须属于一个街镇。")})
    location_validate(lat=unit.lat, lon=unit.lon)


@transaction.atomic
def unit_create(
    *,
    code: str,
    name: str,
    region: Region,
    lat: float,
    lon: float,
    kind: str = Unit.Kind.OTHER,
    address: str = "",
    post_min: int = 1,
) -> Unit:
    unit = Unit(
        code=code,
        name=name,
        region=region,
        lat=lat,
        lon=lon,
        kind=kind,
        address=address,
        post_min=post_min,
    )
    unit_validate(unit=unit)
    unit.save()
    return unit


@transaction.atomic
def member_set_duty(*, member: Member, on_duty: bool) -> Member:
    """Clock a member in or out. Off duty means no alerts."""
    if on_duty and not (member.is_active and member.unit.is_active):
        raise ValidationError(_("该队员或其单元已停用，不能上岗。"))
    member.on_duty = on_duty
    member.duty_since = timezone.now() if on_duty else None
    member.save(update_fields=["on_duty", "duty_since"])
    return member
