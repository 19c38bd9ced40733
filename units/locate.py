"""Which street (街道/镇) a point belongs to: its district by outline, then the
nearest street point of that district."""

from __future__ import annotations

from functools import lru_cache

from . import geo
from .models import Region
from .services import DistrictShape, district_at


@lru_cache(maxsize=1)
def _streets_by_district() -> dict[int, list[Region]]:
    """Street rows per district, loaded once per process: the intake path looks a
    street up without a query. Read-only; ``locate_cache_reset`` drops them."""
    table: dict[int, list[Region]] = {}
    for street in Region.objects.filter(level=Region.Level.STREET, lat__isnull=False):
        table.setdefault(street.parent_id, []).append(street)
    return table


def street_at(*, lat: float, lon: float, district: DistrictShape | None = None) -> Region | None:
    """The street of (lat, lon); pass ``district`` when it is already known."""
    district = district or district_at(lat=lat, lon=lon)
    if district is None:
        return None
    streets = _streets_by_district().get(district.region_id)
    if not streets:
        return Region.objects.filter(pk=district.region_id).first()
    return min(streets, key=lambda s: geo.haversine_m(lat, lon, s.lat, s.lon))


def locate_cache_reset() -> None:
    _streets_by_district.cache_clear()
