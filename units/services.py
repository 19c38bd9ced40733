from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.dispatch import Signal
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
    transaction.on_commit(_local_roster_bump)


# How many transactions of this process have committed roster changes. The
# process's ranking index, kept fresh by a background refresher, compares it
# with what it has applied: a change made here is in the very next ranking,
# without waiting for the refresher (dispatch.ranking).
_local_roster_version = 0


def _local_roster_bump() -> None:
    global _local_roster_version
    _local_roster_version += 1


def local_roster_version() -> int:
    return _local_roster_version


@dataclass(frozen=True)
class DistrictShape:
    region_id: int
    code: str
    geometry: dict

    @functools.cached_property
    def bbox(self) -> tuple[float, float, float, float]:
        """(south, west, north, east) of the outline, worked out once: a point
        outside it is not in the district, without the ring test over its
        vertices."""
        return geo.bbox(self.geometry)

    def may_hold(self, lat: float, lon: float) -> bool:
        south, west, north, east = self.bbox
        return south <= lat <= north and west <= lon <= east


_shapes: tuple[DistrictShape, ...] | None = None


def district_shapes() -> tuple[DistrictShape, ...]:
    global _shapes
    if _shapes is not None:
        return _shapes
    rows = Region.objects.filter(level=Region.Level.DISTRICT, boundary__isnull=False)
    shapes = tuple(DistrictShape(r.id, r.code, r.boundary) for r in rows)
    # An empty answer is not kept: the outlines may be loaded (seed, import) after
    # this process started, and a cached "no service area" would accept any point
    # forever.
    if shapes:
        _shapes = shapes
    return shapes


def district_shapes_reset() -> None:
    """Forget the cached outlines; call after loading or editing district boundaries."""
    global _shapes
    _shapes = None


def district_at(*, lat: float, lon: float) -> DistrictShape | None:
    """The district whose outline holds (lat, lon). Only the outlines whose
    bounding box holds it are tested: Guangzhou's eleven have 12,783 vertices,
    and testing them in turn was 0.6 ms of every intake (bench/city.py)."""
    for shape in district_shapes():
        if shape.may_hold(lat, lon) and geo.point_in_geometry(lat, lon, shape.geometry):
            return shape
    return None


def location_validate(*, lat: float, lon: float, field_prefix: str = "") -> DistrictShape | None:
    """Raise ValidationError unless (lat, lon) is a coordinate inside the service area.

    The error names the offending field (``lat`` or ``lon``, with ``field_prefix``);
    a point outside the service area names both. The service area is the union
    of the district outlines; with none loaded (an empty or test database), any
    valid coordinate is accepted. Returns the district the point lies in (None
    when no outlines are loaded), so callers need not search the outlines again.
    """
    errors: dict[str, str] = {}
    for field, value, limit in (("lat", lat, 90), ("lon", lon, 180)):
        if not _coordinate_ok(value, limit):
            errors[f"{field_prefix}{field}"] = _("坐标无效：纬度须在 -90..90，经度须在 -180..180。")
    if errors:
        raise ValidationError(errors)
    if not district_shapes():
        return None
    district = district_at(lat=float(lat), lon=float(lon))
    if district is None:
        message = _("坐标不在服务区域内。")
        raise ValidationError({f"{field_prefix}lat": message, f"{field_prefix}lon": message})
    return district


def locations_in_service_area(*, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """``location_validate``'s service-area rule for many valid points at once: a
    boolean per point (all True when no outlines are loaded).

    Vectorised: the per-point check costs milliseconds per point against the
    real outlines, far too slow for a city's import.
    """
    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    shapes = district_shapes()
    if not shapes:
        return np.ones(lat.shape, dtype=bool)
    inside = np.zeros(lat.shape, dtype=bool)
    for shape in shapes:
        pending = ~inside
        if pending.any():
            inside[pending] = geo.points_in_geometry(lat[pending], lon[pending], shape.geometry)
    return inside


def _coordinate_ok(value: object, limit: float) -> bool:
    if value is None or isinstance(value, bool | str):
        return False
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return -limit <= number <= limit  # NaN fails both comparisons


def unit_validate(*, unit: Unit) -> None:
    """Field and domain checks for a unit about to be saved (raises ValidationError).

    Errors are keyed by field, so an edge can render them as 400 field errors.
    """
    errors: dict[str, list] = {}
    try:
        # The lat/lon CheckConstraint is checked by location_validate with a
        # field-named message; the database still enforces it.
        unit.full_clean(exclude=["region"] if unit.region_id else None, validate_constraints=False)
    except ValidationError as exc:
        errors = exc.update_error_dict(errors)
    if unit.region_id is None and "region" not in errors:
        errors["region"] = [_("单元必须属于一个街镇。")]
    if "lat" not in errors and "lon" not in errors:
        try:
            location_validate(lat=unit.lat, lon=unit.lon)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
    if errors:
        raise ValidationError(errors)


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
    try:
        # A savepoint, so a concurrent create of the same code becomes a field
        # error instead of breaking the caller's transaction.
        with transaction.atomic():
            unit.save()
    except IntegrityError as exc:
        if Unit.objects.filter(code=code).exists():
            raise ValidationError({"code": _("单元编码已存在。")}) from exc
        raise
    return unit


# Sent inside the writer's transaction when a member's duty flips; the roster
# knows nothing of sockets, so the layer above (dispatch) subscribes to it.
member_duty_changed = Signal()  # kwargs: member_id, on_duty

# Sent inside the writer's transaction by bulk writers (the roster import), which
# save no model one by one and so send no post_save: the members and units they
# deactivated, for the layer above to close those members' sockets at once.
roster_bulk_deactivated = Signal()  # kwargs: member_ids, unit_ids


@transaction.atomic
def member_set_duty(*, member: Member, on_duty: bool) -> Member:
    """Clock a member in or out. Off duty means no alerts.

    The member and unit are re-read under a row lock, so a member or unit
    disabled a moment ago cannot clock in from a stale object. Clocking in
    again keeps the original ``duty_since``; clocking out is always allowed.
    """
    locked = Member.objects.select_related("unit").select_for_update(of=("self",)).get(pk=member.pk)
    if on_duty and not locked.is_active:
        message = _("该队员已停用，不能上岗。")
        raise ValidationError({"on_duty": ValidationError(message, code="member_inactive")})
    if on_duty and not locked.unit.is_active:
        message = _("该队员所属单元已停用，不能上岗。")
        raise ValidationError({"on_duty": ValidationError(message, code="unit_inactive")})
    if locked.on_duty != on_duty:
        locked.on_duty = on_duty
        locked.duty_since = timezone.now() if on_duty else None
        locked.save(update_fields=["on_duty", "duty_since"])
        # The member's open sockets join or leave their unit's alert group:
        # dispatch, which owns the sockets, listens and pushes after commit.
        member_duty_changed.send(sender=Member, member_id=member.pk, on_duty=on_duty)
    member.on_duty, member.duty_since = locked.on_duty, locked.duty_since
    return member
