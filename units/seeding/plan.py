"""``demo_city_plan``: every region, unit, member and kit row of the demo city,
as numpy arrays and strings, decided without the database. Same arguments,
same plan."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError

from ..geo import points_in_geometry
from ..models import STANDARD_KIT, EquipmentKind, Region
from .figures import (
    AED_SHARE,
    CITY_CODE,
    CITY_LAT,
    CITY_LON,
    CITY_NAME,
    CORE_DISTRICTS,
    CORE_FACTOR,
    DEFAULT_SEED,
    DEFAULT_UNITS,
    DISTRICT_POPULATION,
    DUTY_CHOICES,
    DUTY_P,
    FULL_CITY_MEMBERS,
    FULL_CITY_ON_DUTY,
    FULL_CITY_UNITS,
    GIVEN_CHARS,
    INDUSTRIES,
    KIND_P_CORE,
    KIND_P_SUBURB,
    KIND_P_TOWN,
    KIND_ROSTER_WEIGHT,
    KINDS,
    MAX_UNITS,
    MIN_ROSTER,
    MOBILE_PREFIXES,
    NEAR_EXPIRY_SHARE,
    ROAD_SUFFIXES,
    ROAD_WORDS,
    SCATTER_SHARE,
    SIGMA_M,
    STREET_WEIGHT,
    SURNAMES,
    TRAINED_SHARE,
    VENUE_TEMPLATES,
    SeedError,
)
from .geodata import (
    RegionSpec,
    gaussian_in_geometry,
    read_csv,
    street_class,
    uniform_in_geometry,
)

# --- the plan ------------------------------------------------------------------


@dataclass(frozen=True)
class CityPlan:
    """Every row of the demo city, decided up front (no database)."""

    regions: tuple[RegionSpec, ...]  # city, districts, streets; parents first
    # One entry per unit, grouped by street in street-code order.
    unit_street: np.ndarray  # street code per unit
    unit_district: np.ndarray  # district code per unit
    unit_lat: np.ndarray
    unit_lon: np.ndarray
    unit_kind: np.ndarray  # index into KINDS
    unit_code: list[str]
    unit_name: list[str]
    unit_address: list[str]
    unit_roster: np.ndarray  # members per unit
    unit_on_duty: np.ndarray  # members on duty per unit
    # One entry per member, grouped by unit.
    member_unit: np.ndarray  # unit index
    member_leader: np.ndarray  # bool
    member_on_duty: np.ndarray  # bool
    member_duty_seconds: np.ndarray  # on duty since this many seconds before seeding
    member_trained: np.ndarray  # bool
    member_phone: np.ndarray  # int64, 11 digits
    member_name_idx: np.ndarray  # (n, 3): surname, given 1, given 2 (-1: none)
    # One entry per equipment row.
    equipment_unit: np.ndarray
    equipment_kind: np.ndarray  # index into EQUIPMENT_KINDS
    equipment_quantity: np.ndarray
    equipment_inspected_days_ago: np.ndarray
    equipment_expires_in_days: np.ndarray
    seed: int = field(default=DEFAULT_SEED)

    @property
    def units(self) -> int:
        return len(self.unit_code)

    @property
    def members(self) -> int:
        return len(self.member_unit)

    @property
    def equipment(self) -> int:
        return len(self.equipment_unit)

    def member_name(self, i: int) -> str:
        s, g1, g2 = self.member_name_idx[i]
        return SURNAMES[s] + GIVEN_CHARS[g1] + (GIVEN_CHARS[g2] if g2 >= 0 else "")


EQUIPMENT_KINDS: tuple[str, ...] = (*STANDARD_KIT.keys(), EquipmentKind.AED)


def seed_options_validate(*, units: int, seed: int, password: str | None = None) -> None:
    """Raise SeedError naming the bad option (the command's words, for its users)."""
    if isinstance(units, bool) or not isinstance(units, int) or not 1 <= units <= MAX_UNITS:
        raise SeedError(f"--units must be an integer from 1 to {MAX_UNITS:,}, got {units!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SeedError(f"--seed must be a non-negative integer, got {seed!r}")
    if password is not None:
        try:
            password_validation.validate_password(password)
        except ValidationError as e:
            raise SeedError(f"--password: {' '.join(e.messages)}") from e


def _regions_plan(geodata_dir: Path) -> tuple[RegionSpec, ...]:
    districts = read_csv(geodata_dir / "districts.csv")
    streets = read_csv(geodata_dir / "streets.csv")
    try:
        features = json.loads((geodata_dir / "district_boundaries.geojson").read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise SeedError(f"cannot read {geodata_dir / 'district_boundaries.geojson'}: {e}") from e
    outlines = {f["properties"]["code"]: f["geometry"] for f in features["features"]}

    city = RegionSpec(
        code=CITY_CODE,
        name=CITY_NAME,
        name_en="Guangzhou",
        level=Region.Level.CITY,
        parent_code=None,
        lat=CITY_LAT,
        lon=CITY_LON,
    )
    district_specs = []
    for row in sorted(districts, key=lambda r: r["code"]):
        if row["code"] not in outlines:
            raise SeedError(f"district {row['code']} has no outline in the geojson")
        district_specs.append(
            RegionSpec(
                code=row["code"],
                name=row["name"],
                name_en=row["name_en"],
                level=Region.Level.DISTRICT,
                parent_code=CITY_CODE,
                lat=float(row["centroid_lat"]),
                lon=float(row["centroid_lon"]),
                boundary=outlines[row["code"]],
            )
        )
    street_specs = []
    for row in sorted(streets, key=lambda r: r["code"]):
        if row["centroid_lat"] and row["centroid_lon"]:
            lat, lon = float(row["centroid_lat"]), float(row["centroid_lon"])
        else:
            # No point in the source: a fixed point inside the district, the
            # same for every --seed so the region table never depends on it.
            rng = np.random.default_rng(int(row["code"]))
            p_lat, p_lon = uniform_in_geometry(rng, 1, outlines[row["district_code"]])
            lat, lon = round(float(p_lat[0]), 6), round(float(p_lon[0]), 6)
        street_specs.append(
            RegionSpec(
                code=row["code"],
                name=row["name"],
                name_en=row["name_en"],
                level=Region.Level.STREET,
                parent_code=row["district_code"],
                lat=lat,
                lon=lon,
                street_type=row["type"],
            )
        )
    return (city, *district_specs, *street_specs)


def _largest_remainder(total: int, weights: np.ndarray) -> np.ndarray:
    """Integers proportional to weights that add up to exactly total."""
    share = weights / weights.sum() * total
    counts = np.floor(share).astype(np.int64)
    short = total - int(counts.sum())
    # Stable sort: ties go to the earlier entry, so the split is reproducible.
    counts[np.argsort(-(share - counts), kind="stable")[:short]] += 1
    return counts


def _exact_total(
    rng: np.random.Generator, counts: np.ndarray, target: int, cap: np.ndarray
) -> np.ndarray:
    """Nudge counts (each within 0..cap) by one at random units until they sum to target."""
    counts = counts.copy()
    while (diff := target - int(counts.sum())) != 0:
        room = np.flatnonzero(counts < cap) if diff > 0 else np.flatnonzero(counts > 0)
        pick = rng.choice(room, size=min(abs(diff), room.size), replace=False)
        counts[pick] += 1 if diff > 0 else -1
    return counts


def _place_of(street_name: str) -> str:
    for suffix in ("街道", "镇"):
        if street_name.endswith(suffix) and len(street_name) > len(suffix):
            return street_name[: -len(suffix)]
    return street_name


def demo_city_plan(
    *, units: int = DEFAULT_UNITS, seed: int = DEFAULT_SEED, geodata_dir: Path | None = None
) -> CityPlan:
    """Decide the whole demo city. Pure: same arguments, same plan."""
    seed_options_validate(units=units, seed=seed)
    regions = _regions_plan(Path(geodata_dir or settings.GEODATA_DIR))
    districts = {r.code: r for r in regions if r.level == Region.Level.DISTRICT}
    streets = [r for r in regions if r.level == Region.Level.STREET]
    rng = np.random.default_rng(seed)

    # Units per street: district share by population (core boosted), split over
    # its streets by street class.
    street_classes = [street_class(s.parent_code or "", s.street_type) for s in streets]
    district_weight = np.array(
        [
            DISTRICT_POPULATION.get(code, 50.0) * (CORE_FACTOR if code in CORE_DISTRICTS else 1)
            for code in districts
        ]
    )
    street_counts = np.zeros(len(streets), dtype=np.int64)
    for code, n in zip(districts, _largest_remainder(units, district_weight), strict=True):
        idx = [i for i, s in enumerate(streets) if s.parent_code == code]
        w = np.array([STREET_WEIGHT[street_classes[i]] for i in idx])
        street_counts[idx] = _largest_remainder(int(n), w)
    unit_street_idx = np.repeat(np.arange(len(streets)), street_counts)
    unit_class = np.array(street_classes)[unit_street_idx]
    unit_district = np.array([streets[i].parent_code for i in unit_street_idx], dtype=object)

    unit_lat, unit_lon = _units_place(
        rng, streets, districts, unit_street_idx, unit_class, unit_district
    )
    unit_kind = np.empty(units, dtype=np.int64)
    for c, p in (
        ("core", KIND_P_CORE),
        ("suburb", KIND_P_SUBURB),
        ("town", KIND_P_TOWN),
        ("other", KIND_P_TOWN),
    ):
        sel = np.flatnonzero(unit_class == c)
        unit_kind[sel] = rng.choice(len(KINDS), size=sel.size, p=p)
    unit_code, unit_name, unit_address = _unit_texts(
        rng, streets, districts, unit_street_idx, unit_kind
    )
    return CityPlan(
        regions=regions,
        unit_street=np.array([streets[i].code for i in unit_street_idx], dtype=object),
        unit_district=unit_district,
        unit_lat=unit_lat,
        unit_lon=unit_lon,
        unit_kind=unit_kind,
        unit_code=unit_code,
        unit_name=unit_name,
        unit_address=unit_address,
        **_members_plan(rng, unit_kind),
        **_equipment_plan(rng, unit_kind),
        seed=seed,
    )


def _units_place(
    rng: np.random.Generator,
    streets: list[RegionSpec],
    districts: dict[str, RegionSpec],
    unit_street_idx: np.ndarray,
    unit_class: np.ndarray,
    unit_district: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Unit coordinates: clustered round their street point, some scattered;
    always inside their own district outline."""
    n = len(unit_street_idx)
    lat, lon = np.empty(n), np.empty(n)
    anchor_lat = np.array([s.lat for s in streets])[unit_street_idx]
    anchor_lon = np.array([s.lon for s in streets])[unit_street_idx]
    # A heavier tail: 30% of units spread 2.5x wider than the rest.
    sigma = np.array([SIGMA_M[c] for c in unit_class]) * np.where(rng.random(n) < 0.3, 2.5, 1.0)
    scatter = rng.random(n) < np.array([SCATTER_SHARE[c] for c in unit_class])
    # One district at a time: each point is tested against its own outline.
    for code, district in districts.items():
        outline = district.boundary
        assert outline is not None  # _regions_plan gives every district one
        mine = np.flatnonzero(unit_district == code)
        near, far = mine[~scatter[mine]], mine[scatter[mine]]
        lat[near], lon[near] = gaussian_in_geometry(
            rng, anchor_lat[near], anchor_lon[near], sigma[near], outline
        )
        lat[far], lon[far] = uniform_in_geometry(rng, far.size, outline)
    # Six decimals (~0.1 m) is what a phone reports; rounding can in theory
    # step over a border, so re-check and keep the unrounded point if it does.
    r_lat, r_lon = np.round(lat, 6), np.round(lon, 6)
    for code, district in districts.items():
        mine = np.flatnonzero(unit_district == code)
        if mine.size:
            ok = points_in_geometry(r_lat[mine], r_lon[mine], district.boundary or {})
            r_lat[mine[~ok]], r_lon[mine[~ok]] = lat[mine[~ok]], lon[mine[~ok]]
    return r_lat, r_lon


def _members_plan(rng: np.random.Generator, unit_kind: np.ndarray) -> dict[str, np.ndarray]:
    units = len(unit_kind)
    # Rosters: at least MIN_ROSTER each, the rest shared by site size, so the
    # city total is exactly the scaled field figure.
    total = round(units * FULL_CITY_MEMBERS / FULL_CITY_UNITS)
    weights = KIND_ROSTER_WEIGHT[unit_kind]
    roster = MIN_ROSTER + rng.multinomial(total - MIN_ROSTER * units, weights / weights.sum())
    on_duty = rng.choice(DUTY_CHOICES, size=units, p=DUTY_P)
    on_duty = _exact_total(
        rng,
        np.minimum(on_duty, roster),
        round(units * FULL_CITY_ON_DUTY / FULL_CITY_UNITS),
        np.minimum(DUTY_CHOICES[-1], roster),
    )
    member_unit = np.repeat(np.arange(units), roster)
    position = np.arange(total) - (np.cumsum(roster) - roster)[member_unit]
    # Who is on duty rotates: a run of on_duty members from a random offset,
    # so the leader (position 0) is not always among them.
    offset = rng.integers(0, roster)
    member_on_duty = (position - offset[member_unit]) % roster[member_unit] < on_duty[member_unit]
    space = 10**8
    picks = rng.choice(len(MOBILE_PREFIXES) * space, size=total, replace=False)
    two_chars = rng.random(total) < 0.7
    return {
        "unit_roster": roster,
        "unit_on_duty": on_duty,
        "member_unit": member_unit,
        "member_leader": position == 0,
        "member_on_duty": member_on_duty,
        "member_duty_seconds": np.where(member_on_duty, rng.integers(600, 10 * 3600, total), 0),
        "member_trained": rng.random(total) < TRAINED_SHARE,
        "member_phone": np.array(MOBILE_PREFIXES, dtype=np.int64)[picks // space] * space
        + picks % space,
        "member_name_idx": np.stack(
            [
                rng.integers(0, len(SURNAMES), total),
                rng.integers(0, len(GIVEN_CHARS), total),
                np.where(two_chars, rng.integers(0, len(GIVEN_CHARS), total), -1),
            ],
            axis=1,
        ),
    }


def _equipment_plan(rng: np.random.Generator, unit_kind: np.ndarray) -> dict[str, np.ndarray]:
    """The full standard kit at every unit, plus AEDs at some sites."""
    units = len(unit_kind)
    n_kit = len(STANDARD_KIT)
    aed_p = np.array([AED_SHARE.get(k, 0.0) for k in KINDS])[unit_kind]
    has_aed = rng.random(units) < aed_p
    eq_unit = np.concatenate([np.repeat(np.arange(units), n_kit), np.flatnonzero(has_aed)])
    eq_kind = np.concatenate([np.tile(np.arange(n_kit), units), np.full(int(has_aed.sum()), n_kit)])
    order = np.lexsort((eq_kind, eq_unit))
    eq_unit, eq_kind = eq_unit[order], eq_kind[order]
    n = eq_unit.size
    required = np.array([*STANDARD_KIT.values(), 1])[eq_kind]
    near = rng.random(n) < NEAR_EXPIRY_SHARE
    return {
        "equipment_unit": eq_unit,
        "equipment_kind": eq_kind,
        "equipment_quantity": required + rng.choice([0, 0, 1, 2], size=n),
        "equipment_inspected_days_ago": rng.integers(1, 365, n),
        "equipment_expires_in_days": np.where(
            near, rng.integers(1, 31, n), rng.integers(60, 5 * 365, n)
        ),
    }


def _unit_texts(
    rng: np.random.Generator,
    streets: list[RegionSpec],
    districts: dict[str, RegionSpec],
    unit_street_idx: np.ndarray,
    unit_kind: np.ndarray,
) -> tuple[list[str], list[str], list[str]]:
    n = len(unit_street_idx)
    template_pick = rng.integers(0, 1 << 30, n)
    use_street_place = rng.random(n) < 0.6
    road_pick = rng.integers(0, len(ROAD_WORDS), (n, 2))
    suffix_pick = rng.integers(0, len(ROAD_SUFFIXES), n)
    industry_pick = rng.integers(0, len(INDUSTRIES), n)
    number = rng.integers(1, 999, n)
    serial: dict[str, int] = {}
    codes, names, addresses = [], [], []
    for i in range(n):
        street = streets[unit_street_idx[i]]
        district = districts[street.parent_code or ""]
        kind = KINDS[unit_kind[i]]
        templates = VENUE_TEMPLATES[kind]
        place = _place_of(street.name) if use_street_place[i] else ROAD_WORDS[road_pick[i, 0]]
        venue = templates[template_pick[i] % len(templates)].format(
            p=place, d=district.name[:-1], i=INDUSTRIES[industry_pick[i]]
        )
        serial[district.code] = serial.get(district.code, 0) + 1
        codes.append(f"GZ{district.code}-{serial[district.code]:05d}")
        names.append(f"{district.name}{street.name} {venue} 应急单元")
        road = ROAD_WORDS[road_pick[i, 1]] + ROAD_SUFFIXES[suffix_pick[i]]
        addresses.append(f"广州市{district.name}{street.name}{road}{number[i]}号")
    return codes, names, addresses
