"""The real district and street data, and vectorised sampling of points inside outlines."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..geo import points_in_geometry
from .figures import CORE_DISTRICTS, METRES_PER_DEGREE, SeedError

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


def read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))
    except OSError as e:
        raise SeedError(f"cannot read {path}: {e}") from e


def street_class(district_code: str, street_type: str) -> str:
    if street_type == "镇":
        return "town"
    if street_type not in ("街道", ""):
        return "other"
    return "core" if district_code in CORE_DISTRICTS else "suburb"


# --- vectorised point in polygon --------------------------------------------------


def bbox(geometry: dict) -> tuple[float, float, float, float]:
    polygons = (
        [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    )
    outer = np.concatenate([np.asarray(p[0], dtype=float) for p in polygons])
    return outer[:, 1].min(), outer[:, 0].min(), outer[:, 1].max(), outer[:, 0].max()


def uniform_in_geometry(
    rng: np.random.Generator, n: int, geometry: dict
) -> tuple[np.ndarray, np.ndarray]:
    """n points uniform over the polygon (rejection from its bounding box)."""
    min_lat, min_lon, max_lat, max_lon = bbox(geometry)
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


def gaussian_in_geometry(
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
        lat[pending], lon[pending] = uniform_in_geometry(rng, pending.size, geometry)
    return lat, lon
