"""The grid search of ``UnitIndex.nearest`` against a brute-force scan.

The reference below scores every unit with libm's haversine (the operations of
``units.geo.haversine_m_radians``, one unit at a time) and sorts by (score, unit
id): the grid must return the very same candidates, floats included, on cities
of many shapes, at their bounding box's edges and corners, far outside them, and
while units move through the overlay, whichever numpy is installed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

import numpy as np
import pytest

import dispatch.ranking as ranking
from dispatch.ranking import Candidate, UnitIndex, kit_mask
from units import geo
from units.models import EquipmentKind

DETOUR = 1.3
SPEED = 1.4
PENALTY = 60.0
KIT_BY_KIND = {
    "knife": ["steel_fork", "shield", "stab_vest"],
    "fire": ["extinguisher"],
    "cardiac": ["aed"],
}
ALL_KINDS = tuple(EquipmentKind.values)

# Grids built in memory, no database: ./dev test runs these once.
pytestmark = pytest.mark.database_independent


@pytest.fixture(autouse=True)
def _ranking_settings(settings):
    settings.RANKING_KIT_BY_KIND = KIT_BY_KIND
    settings.RANKING_KIT_PENALTY_S = PENALTY
    settings.RANKING_WALK_SPEED_MPS = SPEED
    settings.RANKING_DETOUR_FACTOR = DETOUR


@dataclass(frozen=True)
class U:
    id: int
    lat: float
    lon: float
    active: bool = True
    post_min: int = 1
    on_duty: int = 2
    kit: int = 0


def libm_haversine(phi, lon, cos_phi, phi_u, lon_u, cos_u) -> float:
    """``units.geo.haversine_m_radians`` for one unit, with libm's sin and asin
    (numpy's may be SIMD ones that differ by an ulp)."""
    s_phi = math.sin((phi_u - phi) * 0.5)
    s_lam = math.sin(math.radians(lon_u - lon) * 0.5)
    h = s_phi * s_phi + (cos_phi * cos_u) * (s_lam * s_lam)
    return 2 * geo.EARTH_RADIUS_M * math.asin(math.sqrt(min(h, 1.0)))


def reference(
    units: dict[int, U],
    *,
    lat: float,
    lon: float,
    limit: int,
    radius_m: float | None = None,
    incident_kind: str | None = None,
    exclude: set[int] = frozenset(),
    require_available: bool = True,
) -> list[Candidate]:
    """Every unit scored at once with numpy, sorted by (score, unit id)."""
    rows = sorted(units.values(), key=lambda u: u.id)
    if not rows or limit <= 0:
        return []
    ids = np.array([u.id for u in rows], dtype=np.int64)
    u_phi = np.radians(np.array([u.lat for u in rows]))
    u_lon = np.array([u.lon for u in rows])
    phi = math.radians(lat)
    dist = np.array(
        [
            libm_haversine(phi, lon, math.cos(phi), *u)
            for u in zip(u_phi.tolist(), u_lon.tolist(), np.cos(u_phi).tolist(), strict=True)
        ]
    )
    need = kit_mask(KIT_BY_KIND.get(incident_kind, ())) if incident_kind else 0
    fit = np.array([u.kit & need == need for u in rows])
    keep = np.array(
        [
            u.active and (u.on_duty > u.post_min or not require_available) and u.id not in exclude
            for u in rows
        ]
    )
    if radius_m is not None:
        keep &= dist <= radius_m
    score = dist * DETOUR / SPEED + np.where(fit, 0.0, PENALTY)
    order = [i for i in np.lexsort((ids, score)).tolist() if keep[i]][:limit]
    return [
        Candidate(
            unit_id=rows[i].id,
            distance_m=float(dist[i]),
            eta_s=math.ceil(float(dist[i]) * DETOUR / SPEED),
            kit_fit=bool(fit[i]),
            on_duty=rows[i].on_duty,
            available=max(0, rows[i].on_duty - rows[i].post_min),
        )
        for i in order
    ]


def index_of(units: dict[int, U], **kwargs) -> UnitIndex:
    rows = list(units.values())
    return UnitIndex.from_arrays(
        unit_ids=[u.id for u in rows],
        lat=[u.lat for u in rows],
        lon=[u.lon for u in rows],
        is_active=[u.active for u in rows],
        post_min=[u.post_min for u in rows],
        on_duty=[u.on_duty for u in rows],
        kit_bits=[u.kit for u in rows],
        **kwargs,
    )


def apply_to(index: UnitIndex, changed: list[U], deleted: list[int]) -> None:
    index.apply_units(
        unit_ids=[u.id for u in changed],
        lat=[u.lat for u in changed],
        lon=[u.lon for u in changed],
        is_active=[u.active for u in changed],
        post_min=[u.post_min for u in changed],
        on_duty=[u.on_duty for u in changed],
        kit_bits=[u.kit for u in changed],
        deleted_ids=deleted,
    )


def random_state(rng: random.Random, unit_id: int, lat: float, lon: float) -> U:
    return U(
        id=unit_id,
        lat=lat,
        lon=lon,
        active=rng.random() < 0.9,
        post_min=rng.choice((0, 1, 1, 2)),
        on_duty=rng.choice((0, 1, 2, 2, 3)),
        kit=kit_mask(k for k in ALL_KINDS if rng.random() < 0.75),
    )


# --- cities --------------------------------------------------------------------------


def city_clustered(rng: random.Random, n: int) -> list[tuple[float, float]]:
    # Dense cores and sparse outskirts, as Guangzhou's streets; spots shared
    # by several units give exact ties.
    centres = [(rng.uniform(22.9, 23.4), rng.uniform(113.1, 113.6)) for _ in range(12)]
    spots = []
    for _ in range(max(1, n // 2)):
        clat, clon = rng.choice(centres)
        spots.append((clat + rng.gauss(0, 0.01), clon + rng.gauss(0, 0.012)))
    return [rng.choice(spots) for _ in range(n)]


def city_lattice(rng: random.Random, n: int) -> list[tuple[float, float]]:
    # Units on a regular lattice: many on the same latitude or meridian, many
    # equidistant from a lattice point.
    side = max(1, math.isqrt(n))
    return [(23.0 + 0.002 * (i // side), 113.2 + 0.002 * (i % side)) for i in range(n)]


def city_one_latitude(rng: random.Random, n: int) -> list[tuple[float, float]]:
    return [(23.1, rng.uniform(113.2, 113.5)) for _ in range(n)]


def city_one_meridian(rng: random.Random, n: int) -> list[tuple[float, float]]:
    return [(rng.uniform(23.0, 23.3), 113.3) for _ in range(n)]


def city_one_spot(rng: random.Random, n: int) -> list[tuple[float, float]]:
    return [(23.1, 113.3)] * n


def city_world(rng: random.Random, n: int) -> list[tuple[float, float]]:
    # Not a city: units over the whole globe, near the poles too (the bound on
    # longitude, and the short way round the antimeridian, still hold).
    return [(rng.uniform(-89.9, 89.9), rng.uniform(-180.0, 180.0)) for _ in range(n)]


CITIES = {
    "clustered": (city_clustered, 900),
    "lattice": (city_lattice, 400),
    "one latitude": (city_one_latitude, 150),
    "one meridian": (city_one_meridian, 150),
    "one spot": (city_one_spot, 40),
    "one unit": (city_clustered, 1),
    "two units": (city_clustered, 2),
    "world": (city_world, 500),
}


def edge_points(units: dict[int, U]) -> list[tuple[float, float]]:
    """The bounding box's corners and edge midpoints, exactly and a hair outside."""
    lats = [u.lat for u in units.values()]
    lons = [u.lon for u in units.values()]
    s, n, w, e = min(lats), max(lats), min(lons), max(lons)
    mid_lat, mid_lon = (s + n) / 2, (w + e) / 2
    points = []
    for la in (s, mid_lat, n):
        for lo in (w, mid_lon, e):
            points.append((la, lo))
    for la, lo in list(points):
        points.append((max(-90.0, la - 1e-7), max(-180.0, lo - 1e-7)))
        points.append((min(90.0, la + 1e-7), min(180.0, lo + 1e-7)))
    return points


def random_point(rng: random.Random, units: dict[int, U]) -> tuple[float, float]:
    lats = [u.lat for u in units.values()]
    lons = [u.lon for u in units.values()]
    roll = rng.random()
    if roll < 0.2:  # at a unit: distance 0, ties with its spot's neighbours
        u = rng.choice(list(units.values()))
        return u.lat, u.lon
    if roll < 0.3:  # far away: the search has to cover the whole grid
        return rng.uniform(-90, 90), rng.uniform(-180, 180)
    pad = 0.05
    return (
        min(90.0, max(-90.0, rng.uniform(min(lats) - pad, max(lats) + pad))),
        min(180.0, max(-180.0, rng.uniform(min(lons) - pad, max(lons) + pad))),
    )


def random_query(rng: random.Random, units: dict[int, U], lat: float, lon: float) -> dict:
    near = sorted(units, key=lambda i: geo.haversine_m(lat, lon, units[i].lat, units[i].lon))
    return {
        "lat": lat,
        "lon": lon,
        "limit": rng.choice((1, 2, 5, 10, 10, 25, 300)),
        "radius_m": rng.choice((None, None, 0.0, rng.uniform(10, 5000), rng.uniform(1e4, 1e7))),
        "incident_kind": rng.choice((None, "knife", "knife", "fire", "cardiac", "theft")),
        "exclude": set(rng.sample(near[:10], min(len(near), rng.randrange(4)))),
        "require_available": rng.random() < 0.7,
    }


@pytest.mark.parametrize("cell_units", [0.5, ranking._CELL_UNITS, 20.0])
@pytest.mark.parametrize("city", sorted(CITIES))
def test_the_grid_returns_what_a_brute_force_scan_returns(monkeypatch, city, cell_units):
    # Fine and coarse grids over the same city: the cell size changes the work,
    # never the answer.
    monkeypatch.setattr(ranking, "_CELL_UNITS", cell_units)
    make, n = CITIES[city]
    rng = random.Random(f"{city}-{cell_units}")
    units = {
        unit_id: random_state(rng, unit_id, lat, lon)
        for unit_id, (lat, lon) in zip(rng.sample(range(1, 100_000), n), make(rng, n), strict=True)
    }
    index = index_of(units)
    points = edge_points(units) + [random_point(rng, units) for _ in range(60)]
    for lat, lon in points:
        q = random_query(rng, units, lat, lon)
        assert index.nearest(**q) == reference(units, **q), q


def test_the_grid_returns_what_a_brute_force_scan_returns_while_units_move(monkeypatch):
    # Moved and new units go to the overlay (a grid of its own) and their base
    # entries are masked; deleted ones are masked; past the overlay limit the
    # base grid is rebuilt. The answers stay the brute-force ones throughout.
    rng = random.Random(1414)
    positions = city_clustered(rng, 600)
    units = {i: random_state(rng, i, *positions[i - 1]) for i in range(1, 601)}
    index = index_of(units, overlay_max=80)
    next_id = 601
    overlay_sizes = set()
    for _ in range(30):
        changed: dict[int, U] = {}
        deleted: list[int] = []
        for _ in range(rng.randrange(1, 10)):
            uid = rng.choice(list(units))
            roll = rng.random()
            if uid in deleted or uid in changed:
                continue
            if roll < 0.3:  # state only: written in place
                changed[uid] = replace(units[uid], on_duty=rng.randrange(4))
            elif roll < 0.65:  # moved, at times out of the base grid's box
                lat, lon = rng.choice(positions)
                if rng.random() < 0.2:
                    lat, lon = lat + rng.uniform(-0.5, 0.5), lon + rng.uniform(-0.5, 0.5)
                changed[uid] = replace(units[uid], lat=lat, lon=lon)
            elif roll < 0.85:
                changed[next_id] = random_state(rng, next_id, *rng.choice(positions))
                next_id += 1
            else:
                deleted.append(uid)
        apply_to(index, list(changed.values()), deleted)
        units.update(changed)
        for uid in deleted:
            units.pop(uid)
        overlay_sizes.add(index.overlay_size)
        for lat, lon in [random_point(rng, units) for _ in range(12)] + edge_points(units)[:4]:
            q = random_query(rng, units, lat, lon)
            assert index.nearest(**q) == reference(units, **q), q
    assert len(overlay_sizes) > 3
    assert index.rebuilds > 1


def test_an_empty_index_returns_nothing():
    empty = index_of({})
    assert empty.nearest(lat=23.1, lon=113.3, limit=10) == []
    assert empty.nearest(lat=-90, lon=180, limit=10, require_available=False) == []

    # Emptied by deletions: the base grid still holds them, masked.
    units = {1: U(1, 23.1, 113.3), 2: U(2, 23.2, 113.4)}
    index = index_of(units)
    apply_to(index, [], [1, 2])
    assert index.nearest(lat=23.1, lon=113.3, limit=10, require_available=False) == []


def test_a_unit_exactly_at_the_radius_is_in_and_one_a_hair_beyond_is_out():
    units = {i: U(i, 23.1 + 0.001 * i, 113.3 + 0.0007 * i) for i in range(1, 40)}
    index = index_of(units)
    lat, lon = 23.1, 113.3
    for far in (5, 17, 39):
        d = reference({far: units[far]}, lat=lat, lon=lon, limit=1)[0].distance_m
        got = index.nearest(lat=lat, lon=lon, limit=100, radius_m=d)
        assert got == reference(units, lat=lat, lon=lon, limit=100, radius_m=d)
        assert got[-1].unit_id == far and got[-1].distance_m == d
        just_short = index.nearest(lat=lat, lon=lon, limit=100, radius_m=math.nextafter(d, 0))
        assert far not in [c.unit_id for c in just_short]
        assert len(just_short) == len(got) - 1


def test_units_at_one_spot_rank_by_unit_id_and_skip_the_excluded_and_unready():
    units = {
        7: U(7, 23.1, 113.3),
        3: U(3, 23.1, 113.3),
        9: U(9, 23.1, 113.3, on_duty=1, post_min=1),  # not ready: would empty its post
        5: U(5, 23.1, 113.3, active=False),
        4: U(4, 23.1, 113.3),
    }
    index = index_of(units)
    at = {"lat": 23.1, "lon": 113.3, "limit": 10}
    assert [c.unit_id for c in index.nearest(**at)] == [3, 4, 7]
    assert [c.unit_id for c in index.nearest(**at, exclude={4})] == [3, 7]
    assert [c.unit_id for c in index.nearest(**at, require_available=False)] == [3, 4, 7, 9]
    assert index.nearest(**at, exclude={4}) == reference(units, **at, exclude={4})


def test_the_search_bound_is_never_more_than_the_distance_to_a_unit_outside_the_block():
    # The stopping rule's premise, checked directly: every unit outside a block
    # of cells is at least _reach metres from the point, for points inside and
    # outside the grid, on a city and on the whole globe.
    rng = random.Random(99)
    for make, n in ((city_clustered, 800), (city_world, 800), (city_one_latitude, 100)):
        positions = make(rng, n)
        units = {i: U(i, lat, lon) for i, (lat, lon) in enumerate(positions, start=1)}
        grid = index_of(units)._snap.grid
        lat_of = {u.id: u.lat for u in units.values()}
        lon_of = {u.id: u.lon for u in units.values()}
        cells = {}
        for j in range(len(grid.ids)):
            unit_id = grid.ids[j]
            cells[unit_id] = grid.cell_of(lat_of[unit_id], lon_of[unit_id])
        for _ in range(150):
            lat, lon = random_point(rng, units)
            phi = math.radians(lat)
            scan = ranking._Scan(
                phi=phi,
                lat=lat,
                lon=lon,
                cos_phi=math.cos(phi),
                max_d=math.inf,
                params=ranking._Params.current(None),
                require_available=False,
                excluded=frozenset(),
                limit=1,
            )
            row, col = grid.cell_of(lat, lon)
            r0, r1 = max(0, row - rng.randrange(4)), min(grid.nrows - 1, row + rng.randrange(4))
            c0, c1 = max(0, col - rng.randrange(4)), min(grid.ncols - 1, col + rng.randrange(4))
            reach = scan._reach(grid, r0, r1, c0, c1)
            outside = [
                geo.haversine_m(lat, lon, lat_of[i], lon_of[i])
                for i, (r, c) in cells.items()
                if not (r0 <= r <= r1 and c0 <= c <= c1)
            ]
            if outside:
                assert min(outside) >= reach - ranking._SLACK_M
