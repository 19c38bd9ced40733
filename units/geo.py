"""Great-circle distance and point-in-polygon on WGS-84 coordinates."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG)


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres: the one distance every app uses.

    The longitude difference is taken in degrees before converting, which
    keeps short distances accurate far from the meridian; the array forms
    below do the same arithmetic.
    """
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def haversine_m_radians(phi1, lon1, cos_phi1, phi2, lon2, cos_phi2) -> np.ndarray:
    """``haversine_m`` on arrays (broadcast), with latitudes already in radians
    and their cosines precomputed (the ranking index keeps them per unit);
    longitudes in degrees."""
    dl = np.radians(np.subtract(lon2, lon1))
    a = (
        np.sin(np.subtract(phi2, phi1) * 0.5) ** 2
        + np.multiply(cos_phi1, cos_phi2) * np.sin(dl * 0.5) ** 2
    )
    return (2 * EARTH_RADIUS_M) * np.arcsin(np.sqrt(np.minimum(a, 1.0)))


def haversine_m_array(lat1, lon1, lat2, lon2) -> np.ndarray:
    """``haversine_m`` on arrays of degrees (broadcast)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    return haversine_m_radians(p1, lon1, np.cos(p1), p2, lon2, np.cos(p2))


def chord_to_m(chord: float) -> float:
    """Great-circle metres of a straight-line distance between unit-sphere points."""
    return 2 * EARTH_RADIUS_M * math.asin(min(chord * 0.5, 1.0))


def m_to_chord(distance_m: float) -> float:
    """The inverse of ``chord_to_m`` (capped at the antipode)."""
    return 2 * math.sin(min(distance_m / (2 * EARTH_RADIUS_M), math.pi / 2))


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial bearing from point 1 to point 2, degrees clockwise from north."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    x = math.sin(dl) * math.cos(p2)
    y = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return (math.degrees(math.atan2(x, y)) + 360) % 360


def _in_ring(lat: float, lon: float, ring: Sequence[Sequence[float]]) -> bool:
    inside = False
    j = len(ring) - 1
    for i in range(len(ring)):
        xi, yi = ring[i][0], ring[i][1]
        xj, yj = ring[j][0], ring[j][1]
        if (yi > lat) != (yj > lat) and lon < (xj - xi) * (lat - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def polygons(geometry: dict) -> list:
    """A GeoJSON Polygon's or MultiPolygon's polygons, each a list of rings
    (the outline first, then its holes)."""
    return [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]


def bbox(geometry: dict) -> tuple[float, float, float, float]:
    """(south, west, north, east) of a GeoJSON Polygon or MultiPolygon."""
    points = [p for rings in polygons(geometry) for p in rings[0]]
    lats = [p[1] for p in points]
    lons = [p[0] for p in points]
    return min(lats), min(lons), max(lats), max(lons)


def point_in_geometry(lat: float, lon: float, geometry: dict) -> bool:
    """Is (lat, lon) inside a GeoJSON Polygon or MultiPolygon (holes respected)?"""
    for rings in polygons(geometry):
        if _in_ring(lat, lon, rings[0]) and not any(_in_ring(lat, lon, h) for h in rings[1:]):
            return True
    return False


def valid_latlon(lat: float, lon: float) -> bool:
    return -90 <= lat <= 90 and -180 <= lon <= 180 and not (math.isnan(lat) or math.isnan(lon))


def _ring_parity(slat: np.ndarray, slon: np.ndarray, ring: Sequence[Sequence[float]]) -> np.ndarray:
    """Even-odd crossings of one ring for points sorted by latitude.

    The same test and arithmetic as ``geo._in_ring`` (so the answers agree
    exactly), but each edge only looks at the points in its latitude band,
    found by binary search: the work is the number of actual crossings, not
    points x edges.
    """
    pts = np.asarray(ring, dtype=float)
    xi, yi = pts[:, 0], pts[:, 1]
    # geo._in_ring pairs vertex i with i-1 (and vertex 0 with the last one).
    xj, yj = np.roll(xi, 1), np.roll(yi, 1)
    # (yi > lat) != (yj > lat)  <=>  min(yi, yj) <= lat < max(yi, yj)
    lo = np.searchsorted(slat, np.minimum(yi, yj), side="left")
    hi = np.searchsorted(slat, np.maximum(yi, yj), side="left")
    counts = hi - lo
    total = int(counts.sum())
    parity = np.zeros(len(slat), dtype=bool)
    if total == 0:
        return parity
    edge = np.repeat(np.arange(len(xi)), counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    point = np.arange(total) - starts + np.repeat(lo, counts)
    ex_i, ey_i, ex_j, ey_j = xi[edge], yi[edge], xj[edge], yj[edge]
    crossing = slon[point] < (ex_j - ex_i) * (slat[point] - ey_i) / (ey_j - ey_i) + ex_i
    hits = np.bincount(point[crossing], minlength=len(slat))
    return (hits & 1).astype(bool)


def points_in_geometry(lat: np.ndarray, lon: np.ndarray, geometry: dict) -> np.ndarray:
    """Vectorised ``geo.point_in_geometry``: a boolean per (lat, lon) point."""
    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    order = np.argsort(lat, kind="stable")
    slat, slon = lat[order], lon[order]
    inside_sorted = np.zeros(len(lat), dtype=bool)
    for rings in polygons(geometry):
        inside = _ring_parity(slat, slon, rings[0])
        for hole in rings[1:]:
            inside &= ~_ring_parity(slat, slon, hole)
        inside_sorted |= inside
    inside_all = np.empty(len(lat), dtype=bool)
    inside_all[order] = inside_sorted
    return inside_all
