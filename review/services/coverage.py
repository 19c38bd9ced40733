"""Coverage gaps: where no ready unit arrives on foot in time, one snapshot row
per computation (the map reads the latest)."""

from __future__ import annotations

import math
import time

import numpy as np
from django.conf import settings
from django.db import transaction

from dispatch.ranking import unit_index
from units.geo import points_in_geometry
from units.models import Region

from ..models import CoverageSnapshot

METRES_PER_DEGREE_LAT = 111_320.0


def coverage_grid(
    *, cell_m: int, districts: list[Region] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """Centres of ``cell_m`` grid cells inside the district outlines.

    Returns (lat, lon, district_id, cell height in degrees, cell width in degrees);
    the grid is aligned on the outlines' bounding box.
    """
    if districts is None:
        districts = list(Region.objects.filter(level=Region.Level.DISTRICT, boundary__isnull=False))
    if not districts:
        empty = np.empty(0)
        return empty, empty, empty.astype(np.int64), 0.0, 0.0
    coords = []
    for d in districts:
        polys = (
            [d.boundary["coordinates"]]
            if d.boundary["type"] == "Polygon"
            else d.boundary["coordinates"]
        )
        for rings in polys:
            coords.append(np.asarray(rings[0], dtype=float))
    allc = np.concatenate(coords)
    min_lon, min_lat = allc.min(axis=0)
    max_lon, max_lat = allc.max(axis=0)
    dlat = cell_m / METRES_PER_DEGREE_LAT
    dlon = cell_m / (METRES_PER_DEGREE_LAT * math.cos(math.radians((min_lat + max_lat) / 2)))
    lats = np.arange(min_lat + dlat / 2, max_lat, dlat)
    lons = np.arange(min_lon + dlon / 2, max_lon, dlon)
    grid_lat, grid_lon = (a.ravel() for a in np.meshgrid(lats, lons, indexing="ij"))
    owner = np.zeros(grid_lat.size, dtype=np.int64)
    for d in districts:
        inside = points_in_geometry(grid_lat, grid_lon, d.boundary) & (owner == 0)
        owner[inside] = d.pk
    keep = owner != 0
    return grid_lat[keep], grid_lon[keep], owner[keep], dlat, dlon


def coverage_compute(*, cell_m: int | None = None, target_s: int | None = None) -> CoverageSnapshot:
    """Where can no ready unit arrive on foot within ``target_s``? One cell at a time
    through dispatch's own index (``UnitIndex.nearest``: the same candidates,
    distance and ETA rules as a real wave), then one snapshot row.

    ETAs are searched up to three times the target; a cell with nothing that
    close stores ``None``.
    """
    cell_m = int(cell_m or settings.REVIEW_GAP_CELL_M)
    target_s = int(target_s or settings.REVIEW_GAP_TARGET_S)
    started = time.monotonic()
    lat, lon, owner, dlat, dlon = coverage_grid(cell_m=cell_m)
    index = unit_index()
    index.refresh()  # the roster as of now, as rank_units would see it
    reach_m = (
        3
        * target_s
        * float(settings.RANKING_WALK_SPEED_MPS)
        / float(settings.RANKING_DETOUR_FACTOR)
    )
    cells = []
    gaps = 0
    for i in range(lat.size):
        found = index.nearest(
            lat=float(lat[i]), lon=float(lon[i]), limit=1, radius_m=reach_m, require_available=True
        )
        eta = found[0].eta_s if found else None
        if eta is None or eta > target_s:
            gaps += 1
        cells.append([round(float(lat[i]), 6), round(float(lon[i]), 6), eta, int(owner[i])])
    with transaction.atomic():
        snapshot = CoverageSnapshot.objects.create(
            cell_m=cell_m,
            target_s=target_s,
            cell_count=len(cells),
            gap_count=gaps,
            cells={"dlat": dlat, "dlon": dlon, "cells": cells},
            seconds=round(time.monotonic() - started, 3),
        )
        # Keep a few for comparison; the map reads the latest.
        old = CoverageSnapshot.objects.order_by("-computed_at", "-pk").values_list("pk", flat=True)[
            5:
        ]
        CoverageSnapshot.objects.filter(pk__in=list(old)).delete()
    return snapshot
