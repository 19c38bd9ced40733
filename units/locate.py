"""Which street (街道/镇) a point belongs to: its district by outline, then the
nearest street point of that district."""

from __future__ import annotations

from functools import lru_cache

from . import geo
from .models import Region
from .services import district_at


@lru_cache(maxsize=1)
def _streets_by_district() -> dict[int, list[tuple[int, float, float]]]:
    table: dict[int, list[tuple[int, float, float]]] = {}
    rows = Region.objects.filter(level=Region.Level.STREET, lat__isnull=False).values_list(
        "id", "parent_id", "lat", "lon"
    )
    for rid, parent_id, lat, lon in rows:
        table.setdefault(parent_id, []).append((rid, lat, lon))
    return table


def street_at(*, lat: float, lon: float) -> Region | None:
    district = district_at(lat=lat, lon=lon)
    if district is None:
        return None
    streets = _streets_by_district().get(district.region_id)
    if not streets:
        return Region.objects.filter(pk=district.region_id).first()
    rid = min(streets, key=lambda s: geo.haversine_m(lat, lon, s[1], s[2]))[0]
    return Region.objects.filter(pk=rid).first()


def locate_cache_reset() -> None:
    _streets_by_district.cache_clear()
