"""Seed a Guangzhou-like demo city on the real district and street data.

Two halves:

* ``demo_city_plan`` is pure: from the geodata files, a unit count and a seed
  it decides every region, unit, member and equipment row (as numpy arrays and
  strings, no database). Same arguments, same plan.
* ``demo_city_seed`` writes a plan with ``bulk_create`` in one transaction, plus
  the demo staff logins and the admin's API token.

Speed matters (the full city must seed in well under a minute on a small
machine), so placement and sampling are vectorised and rows are written in
large batches without ``save()`` or signals.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TextIO

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token
from tqdm import tqdm

from .geo import points_in_geometry
from .models import STANDARD_KIT, Equipment, EquipmentKind, Member, Region, StaffProfile, Unit
from .selectors import unit_list_ready_nearest
from .services import district_shapes_reset, roster_changed

DEFAULT_UNITS = 23_000
MAX_UNITS = 3_000_000
DEFAULT_SEED = 20241
DEMO_PASSWORD = "demo12345"  # noqa: S105 - the documented demo password

# The field figures for the whole city (see DESIGN.md); smaller cities scale them.
FULL_CITY_UNITS = 23_000
FULL_CITY_MEMBERS = 245_500
FULL_CITY_ON_DUTY = 41_000

CITY_CODE = "4401"
CITY_NAME = "广州市"
# The centre as usually given for Guangzhou (old town, 越秀). The area centroid
# of the 11 districts lies in rural 白云/从化 and would be a poor map centre.
CITY_LAT, CITY_LON = 23.1291, 113.2644
# Tianhe Sports Centre: the spot demo_logins lists on-duty members around.
DEMO_SPOT_LAT, DEMO_SPOT_LON = 23.1291, 113.3240

CORE_DISTRICTS = frozenset({"440103", "440104", "440105", "440106"})  # 荔湾 越秀 海珠 天河
# Approximate resident population (2020 census, 10k people). Units follow
# people, and the core gets 1.5x on top because malls, offices and schools
# cluster there.
DISTRICT_POPULATION = {
    "440103": 123.8,
    "440104": 103.9,
    "440105": 181.9,
    "440106": 224.2,
    "440111": 374.3,
    "440112": 126.4,
    "440113": 265.8,
    "440114": 164.2,
    "440115": 84.7,
    "440117": 71.8,
    "440118": 146.7,
}
CORE_FACTOR = 1.5

KINDS: tuple[str, ...] = tuple(Unit.Kind.values)
# Per kind: weight among units in core / suburban / town streets, then the
# roster weight (bigger sites keep bigger rosters). Core streets have more
# malls, hotels and offices; towns more markets, schools and villages.
KIND_MIX: dict[str, tuple[float, float, float, float]] = {
    "mall": (13, 10, 6, 1.3),
    "school": (13, 15, 17, 1.1),
    "hospital": (5, 5, 5, 1.4),
    "company": (27, 25, 20, 1.0),
    "market": (8, 9, 13, 0.9),
    "hotel": (9, 6, 4, 0.9),
    "transport": (5, 4, 3, 1.3),
    "community": (14, 18, 22, 0.8),
    "other": (6, 8, 10, 0.7),
}


def _kind_column(col: int) -> np.ndarray:
    return np.array([KIND_MIX[k][col] for k in KINDS], dtype=float)


KIND_P_CORE, KIND_P_SUBURB, KIND_P_TOWN = (
    _kind_column(c) / _kind_column(c).sum() for c in range(3)
)
KIND_ROSTER_WEIGHT = _kind_column(3)
MIN_ROSTER = 5
# How many of a unit's members are on duty: mostly 2-3, some 0-1.
DUTY_CHOICES = np.array([0, 1, 2, 3])
DUTY_P = np.array([0.07, 0.22, 0.54, 0.17])
TRAINED_SHARE = 0.93
NEAR_EXPIRY_SHARE = 0.03
AED_SHARE = {"hospital": 0.7, "mall": 0.4, "transport": 0.25}

# Placement: Gaussian spread (metres) around the street point, by street class;
# a share of each street's units scatters uniformly over the district, which is
# what makes the edges sparse rather than empty.
SIGMA_M = {"core": 350.0, "suburb": 700.0, "town": 1500.0, "other": 2000.0}
SCATTER_SHARE = {"core": 0.03, "suburb": 0.10, "town": 0.15, "other": 0.3}
STREET_WEIGHT = {"core": 1.0, "suburb": 1.0, "town": 0.8, "other": 0.05}
METRES_PER_DEGREE = 111_320.0

# Real-looking mobile prefixes (all 1[3-9]x).
MOBILE_PREFIXES = (
    *range(130, 140),
    *range(150, 154),
    *range(155, 160),
    *range(180, 190),
    *(166, 170, 173, 175, 176, 177, 178, 191, 198, 199),
)

SURNAMES = (
    "陈李黄张梁林刘吴罗何郑杨谢钟曾周邓许冯赖叶蔡郭王彭廖卢苏胡潘"
    "朱江徐欧温邱莫谭余钱麦简关区高方杜孔袁陆沈"
)
GIVEN_CHARS = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建文辉力斌鹏宇浩凯"
    "俊婷雪琳晶欣怡嘉颖思源志海东峰晓燕丹锦荣家耀诗慧雯彬健少玲永润泽梓"
)
_ROADS = (
    "中山 解放 东风 环市 天河 体育 花城 珠江 滨江 江南 新港 工业 广园 沙河 龙口 石牌 员村 车陂 "
    "科韵 黄埔 广州大道 机场 同和 京溪 新市 芳村 昌岗 宝岗 南洲 人民 文明 惠福 恩宁 龙溪 金沙 迎宾 "
    "市桥 新华 凤凰 荔湖"
)
ROAD_WORDS = tuple(_ROADS.split())
ROAD_SUFFIXES = ("路", "路", "大道", "街", "大街", "中路", "北路", "南路", "东路", "西路")
INDUSTRIES = ("科技", "实业", "物流", "电子", "建设", "贸易", "食品", "医药", "网络科技", "服饰")
VENUE_TEMPLATES: dict[str, tuple[str, ...]] = {
    "mall": ("{p}广场", "{p}购物中心", "{p}天地", "{p}百货", "{p}商业城", "{p}万达广场"),
    "school": (
        "{p}小学",
        "{p}中学",
        "{p}实验学校",
        "{p}幼儿园",
        "{p}职业技术学校",
        "{p}外国语学校",
    ),
    "hospital": (
        "{p}医院",
        "{d}人民医院",
        "{p}社区卫生服务中心",
        "{p}中医医院",
        "{p}门诊部",
        "{d}妇幼保健院",
    ),
    "company": ("广州{p}{i}有限公司", "广州市{p}{i}股份有限公司", "{p}{i}集团"),
    "market": ("{p}农贸市场", "{p}综合市场", "{p}批发市场", "{p}肉菜市场"),
    "hotel": ("{p}大酒店", "{p}宾馆", "{p}商务酒店", "{p}国际酒店"),
    "transport": ("{p}地铁站", "{p}公交总站", "{p}客运站", "{p}停车场"),
    "community": ("{p}社区", "{p}花园", "{p}新村", "{p}小区"),
    "other": ("{p}公园", "{p}体育馆", "{p}文化中心", "{p}图书馆", "{p}写字楼"),
}

WRITE_BATCH = 20_000  # objects built per bulk_create call (bounds memory)
# Rows per INSERT statement (Django caps it lower on SQLite, by its 999-parameter limit).
DB_BATCH = 5_000

STAFF_LOGINS = (
    # username, role, region picked by _staff_region
    ("admin", StaffProfile.Role.CITY_ADMIN),
    ("tianhe_admin", StaffProfile.Role.DISTRICT_ADMIN),
    ("yuexiu_street", StaffProfile.Role.STREET_ADMIN),
    ("reviewer", StaffProfile.Role.POLICE_REVIEWER),
    ("station_tianhe", StaffProfile.Role.POLICE_STATION),
)
TIANHE, YUEXIU = "440106", "440104"
TIANHE_STATION_STREET = "440106008"  # 天河南街道, around the sports centre
YUEXIU_STREET = "440104001"  # 洪桥街道


class SeedError(Exception):
    """Bad arguments or data: nothing has been written."""


# --- geodata -------------------------------------------------------------------


@dataclass(frozen=True)
class RegionSpec:
    code: str
    name: str
    name_en: str
    level: str
    parent_code: str | None
    lat: float
    lon: float
    street_type: str = ""
    boundary: dict | None = None


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))
    except OSError as e:
        raise SeedError(f"cannot read {path}: {e}") from e


def _street_class(district_code: str, street_type: str) -> str:
    if street_type == "镇":
        return "town"
    if street_type not in ("街道", ""):
        return "other"
    return "core" if district_code in CORE_DISTRICTS else "suburb"


# --- vectorised point in polygon --------------------------------------------------


def _bbox(geometry: dict) -> tuple[float, float, float, float]:
    polygons = (
        [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    )
    outer = np.concatenate([np.asarray(p[0], dtype=float) for p in polygons])
    return outer[:, 1].min(), outer[:, 0].min(), outer[:, 1].max(), outer[:, 0].max()


def _uniform_in_geometry(
    rng: np.random.Generator, n: int, geometry: dict
) -> tuple[np.ndarray, np.ndarray]:
    """n points uniform over the polygon (rejection from its bounding box)."""
    min_lat, min_lon, max_lat, max_lon = _bbox(geometry)
    lat = np.empty(n)
    lon = np.empty(n)
    filled = 0
    while filled < n:
        want = max(64, 3 * (n - filled))
        cand_lat = rng.uniform(min_lat, max_lat, want)
        cand_lon = rng.uniform(min_lon, max_lon, want)
        ok = points_in_geometry(cand_lat, cand_lon, geometry)
        take = min(n - filled, int(ok.sum()))
        lat[filled : filled + take] = cand_lat[ok][:take]
        lon[filled : filled + take] = cand_lon[ok][:take]
        filled += take
    return lat, lon


def _gaussian_in_geometry(
    rng: np.random.Generator,
    anchor_lat: np.ndarray,
    anchor_lon: np.ndarray,
    sigma_m: np.ndarray,
    geometry: dict,
) -> tuple[np.ndarray, np.ndarray]:
    """One point per anchor, Gaussian around it, resampled until inside the polygon."""
    n = len(anchor_lat)
    lat = np.empty(n)
    lon = np.empty(n)
    pending = np.arange(n)
    for _ in range(40):
        if pending.size == 0:
            break
        s = sigma_m[pending] / METRES_PER_DEGREE
        cand_lat = anchor_lat[pending] + rng.normal(0.0, 1.0, pending.size) * s
        cand_lon = anchor_lon[pending] + rng.normal(0.0, 1.0, pending.size) * s / np.cos(
            np.radians(anchor_lat[pending])
        )
        ok = points_in_geometry(cand_lat, cand_lon, geometry)
        lat[pending[ok]] = cand_lat[ok]
        lon[pending[ok]] = cand_lon[ok]
        pending = pending[~ok]
    if pending.size:
        # An anchor hard against the border: fall back to anywhere in the district.
        lat[pending], lon[pending] = _uniform_in_geometry(rng, pending.size, geometry)
    return lat, lon


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
    districts = _read_csv(geodata_dir / "districts.csv")
    streets = _read_csv(geodata_dir / "streets.csv")
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
            p_lat, p_lon = _uniform_in_geometry(rng, 1, outlines[row["district_code"]])
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
    street_class = [_street_class(s.parent_code or "", s.street_type) for s in streets]
    district_weight = np.array(
        [
            DISTRICT_POPULATION.get(code, 50.0) * (CORE_FACTOR if code in CORE_DISTRICTS else 1)
            for code in districts
        ]
    )
    street_counts = np.zeros(len(streets), dtype=np.int64)
    for code, n in zip(districts, _largest_remainder(units, district_weight), strict=True):
        idx = [i for i, s in enumerate(streets) if s.parent_code == code]
        w = np.array([STREET_WEIGHT[street_class[i]] for i in idx])
        street_counts[idx] = _largest_remainder(int(n), w)
    unit_street_idx = np.repeat(np.arange(len(streets)), street_counts)
    unit_class = np.array(street_class)[unit_street_idx]
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
        lat[near], lon[near] = _gaussian_in_geometry(
            rng, anchor_lat[near], anchor_lon[near], sigma[near], outline
        )
        lat[far], lon[far] = _uniform_in_geometry(rng, far.size, outline)
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


# --- writing ---------------------------------------------------------------------


@dataclass(frozen=True)
class SeedResult:
    seeded: bool  # False: the database already had units and nothing was written
    regions: int
    units: int
    members: int
    on_duty: int
    equipment: int
    near_expiry: int
    seconds: float
    message: str = ""


def _roster_references() -> list[str]:
    """Relations outside the roster that currently point at units, members or equipment."""
    roster = (Unit, Member, Equipment)
    found = []
    for model in roster:
        for rel in model._meta.related_objects:
            if rel.related_model in roster:
                continue
            qs = rel.related_model._base_manager.filter(**{f"{rel.field.name}__isnull": False})
            if qs.exists():
                found.append(f"{rel.related_model._meta.label}.{rel.field.name}")
    return found


def roster_wipe() -> None:
    """Delete every unit, member and equipment row, fast.

    Raw DELETEs rather than ``QuerySet.delete()``: the roster models have
    post_delete receivers, so the ORM would load every row and log one
    RosterChange per row; the caller logs one "reload everything" instead.
    Refuses while incidents reference the roster, since their history would go.
    """
    refs = _roster_references()
    if refs:
        raise SeedError(
            "--reset would delete units that incidents refer to "
            f"({', '.join(sorted(refs))}); flush the database instead"
        )
    with connection.cursor() as cursor:
        for model in (Equipment, Member, Unit):
            table = connection.ops.quote_name(model._meta.db_table)
            cursor.execute(f"DELETE FROM {table}")  # noqa: S608 - table names from models


def _regions_write(plan: CityPlan) -> dict[str, Region]:
    """Create the regions that are missing; bring existing ones (same code) in line."""
    existing = {r.code: r for r in Region.objects.filter(code__in=[s.code for s in plan.regions])}
    by_code: dict[str, Region] = {}
    for level in (Region.Level.CITY, Region.Level.DISTRICT, Region.Level.STREET):
        specs = [s for s in plan.regions if s.level == level]
        new, changed = [], []
        for s in specs:
            region = existing.get(s.code) or Region(code=s.code)
            region.name, region.name_en, region.level = s.name, s.name_en, s.level
            region.street_type, region.lat, region.lon = s.street_type, s.lat, s.lon
            region.boundary = s.boundary
            region.parent = by_code[s.parent_code] if s.parent_code else None
            # Region.save() computes the path; bulk_create does not call it.
            region.path = (region.parent.path if region.parent else "") + s.code + "/"
            (changed if region.pk else new).append(region)
            by_code[s.code] = region
        Region.objects.bulk_create(new, batch_size=DB_BATCH)
        Region.objects.bulk_update(
            changed,
            ["name", "name_en", "level", "street_type", "lat", "lon", "boundary", "parent", "path"],
            batch_size=500,
        )
    return by_code


def _staff_region(role: str, regions: dict[str, Region]) -> Region:
    def first_street_of(district_code: str) -> Region:
        prefix = regions[district_code].path
        return next(
            r
            for r in regions.values()
            if r.level == Region.Level.STREET and r.path.startswith(prefix)
        )

    if role == StaffProfile.Role.DISTRICT_ADMIN:
        return regions[TIANHE]
    if role == StaffProfile.Role.STREET_ADMIN:
        return regions.get(YUEXIU_STREET) or first_street_of(YUEXIU)
    if role == StaffProfile.Role.POLICE_STATION:
        return regions.get(TIANHE_STATION_STREET) or first_street_of(TIANHE)
    return regions[CITY_CODE]


def demo_logins_write(*, regions: dict[str, Region], password: str, reset: bool) -> None:
    """The demo staff accounts, their roles and the admin's API token.

    Existing accounts keep their password unless ``reset``; the role and
    region are always put right.
    """
    user_model = get_user_model()
    # One hash for all five: each PBKDF2 hash costs about half a second here,
    # and they share the one documented demo password anyway.
    hashed = make_password(password)
    for username, role in STAFF_LOGINS:
        user, created = user_model.objects.get_or_create(
            username=username,
            defaults={"is_staff": True, "is_superuser": role == StaffProfile.Role.CITY_ADMIN},
        )
        if created or reset:
            user.password = hashed
            user.is_staff = True
            user.is_active = True
            user.save()
        StaffProfile.objects.update_or_create(
            user=user, defaults={"role": role, "region": _staff_region(role, regions)}
        )
        if username == "admin":
            Token.objects.get_or_create(user=user)


def _batches(n: int, size: int = WRITE_BATCH) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def _units_write(plan: CityPlan, regions: dict[str, Region], bar: tqdm) -> np.ndarray:
    ids = np.empty(plan.units, dtype=np.int64)
    street_ids = {code: r.pk for code, r in regions.items()}
    for rows in _batches(plan.units):
        batch = [
            Unit(
                code=plan.unit_code[i],
                name=plan.unit_name[i],
                kind=KINDS[plan.unit_kind[i]],
                address=plan.unit_address[i],
                lat=float(plan.unit_lat[i]),
                lon=float(plan.unit_lon[i]),
                region_id=street_ids[plan.unit_street[i]],
                post_min=1,
            )
            for i in rows
        ]
        Unit.objects.bulk_create(batch, batch_size=DB_BATCH)
        ids[rows.start : rows.stop] = [u.pk for u in batch]
        bar.update(len(batch))
    return ids


def _members_write(plan: CityPlan, unit_ids: np.ndarray, now: datetime, bar: tqdm) -> None:
    leader, member = Member.Role.LEADER.value, Member.Role.MEMBER.value
    unit_of = unit_ids[plan.member_unit].tolist()
    on_duty = plan.member_on_duty.tolist()
    since = plan.member_duty_seconds.tolist()
    is_leader = plan.member_leader.tolist()
    trained = plan.member_trained.tolist()
    phones = plan.member_phone.tolist()
    for rows in _batches(plan.members):
        batch = [
            Member(
                name=plan.member_name(i),
                phone=str(phones[i]),
                unit_id=unit_of[i],
                role=leader if is_leader[i] else member,
                on_duty=on_duty[i],
                duty_since=now - timedelta(seconds=since[i]) if on_duty[i] else None,
                trained=trained[i],
            )
            for i in rows
        ]
        Member.objects.bulk_create(batch, batch_size=DB_BATCH)
        bar.update(len(batch))


def _equipment_write(plan: CityPlan, unit_ids: np.ndarray, today: date, bar: tqdm) -> None:
    good = Equipment.Condition.GOOD.value
    kinds = [str(k) for k in EQUIPMENT_KINDS]
    unit_of = unit_ids[plan.equipment_unit].tolist()
    kind = plan.equipment_kind.tolist()
    quantity = plan.equipment_quantity.tolist()
    inspected = plan.equipment_inspected_days_ago.tolist()
    expires = plan.equipment_expires_in_days.tolist()
    for rows in _batches(plan.equipment):
        batch = [
            Equipment(
                unit_id=unit_of[i],
                kind=kinds[kind[i]],
                quantity=quantity[i],
                condition=good,
                last_inspected=today - timedelta(days=inspected[i]),
                expires=today + timedelta(days=expires[i]),
            )
            for i in rows
        ]
        Equipment.objects.bulk_create(batch, batch_size=DB_BATCH)
        bar.update(len(batch))


def _counts(*, seeded: bool, seconds: float, message: str = "") -> SeedResult:
    soon = timezone.localdate() + timedelta(days=30)
    return SeedResult(
        seeded=seeded,
        regions=Region.objects.count(),
        units=Unit.objects.count(),
        members=Member.objects.count(),
        on_duty=Member.objects.filter(on_duty=True).count(),
        equipment=Equipment.objects.count(),
        near_expiry=Equipment.objects.filter(expires__lte=soon).count(),
        seconds=seconds,
        message=message,
    )


def demo_city_seed(
    *,
    units: int = DEFAULT_UNITS,
    seed: int = DEFAULT_SEED,
    password: str = DEMO_PASSWORD,
    reset: bool = False,
    geodata_dir: Path | None = None,
    progress: TextIO | None = None,
) -> SeedResult:
    """Seed the demo city in one transaction: all of it or none of it.

    A database that already has units is left alone (``seeded=False``) unless
    ``reset``, which wipes units, members and equipment first; regions and the
    demo logins are updated in place, never duplicated.
    """
    started = time.monotonic()
    seed_options_validate(units=units, seed=seed, password=password)
    if not reset and Unit.objects.exists():
        return _counts(
            seeded=False,
            seconds=time.monotonic() - started,
            message="the database already has units: nothing seeded (--reset wipes and reseeds)",
        )
    plan = demo_city_plan(units=units, seed=seed, geodata_dir=geodata_dir)
    now = timezone.now()
    today = timezone.localdate()
    with (
        tqdm(
            total=plan.units + plan.members + plan.equipment,
            unit="row",
            unit_scale=True,
            file=progress,
            disable=progress is None,
            desc="seed_demo",
        ) as bar,
        transaction.atomic(),
    ):
        if reset:
            roster_wipe()
        regions = _regions_write(plan)
        demo_logins_write(regions=regions, password=password, reset=reset)
        bar.set_description("units")
        unit_ids = _units_write(plan, regions, bar)
        bar.set_description("members")
        _members_write(plan, unit_ids, now, bar)
        bar.set_description("equipment")
        _equipment_write(plan, unit_ids, today, bar)
        roster_changed(unit_ids=None)
    # After commit: the district outlines changed under any cached copy.
    district_shapes_reset()
    return _counts(seeded=True, seconds=time.monotonic() - started)


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
