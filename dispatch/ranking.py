"""Dispatch ranking: which units to call for an incident, from a per-process index.

Every process (daphne, Celery worker) keeps one ``UnitIndex`` in memory: unit
positions bucketed by a grid of cells, plus each unit's dispatch state (active,
post_min, members on duty, usable kit). A background thread per process applies the
``RosterChange`` log to it every ``RANKING_REFRESH_S`` (one query, usually
empty), so ``rank_units`` answers from memory alone, with no query; it refreshes
itself first only when this process committed a roster change the thread has
not applied yet, or when the thread is not keeping up (or is off: tests).

Ranking contract (see docs/ranking.md):

- candidates are active units; with ``require_available`` they must also be
  ready (``units.readiness``: more people on duty than ``post_min``, so they can
  send someone without emptying their own post) - the same "ready" the admin,
  API and readiness overview show;
- the score is the on-foot arrival estimate in seconds
  (``distance_m * RANKING_DETOUR_FACTOR / RANKING_WALK_SPEED_MPS``) plus
  ``RANKING_KIT_PENALTY_S`` when the unit lacks the kit the incident kind needs
  (``RANKING_KIT_BY_KIND``); ties go to the lower unit id;
- ``distance_m`` is the exact great-circle (haversine) distance of
  ``units.geo``, and ``radius_m`` filters on it.

Writers (``refresh``, ``apply_units``) hold the index lock; readers (``nearest``)
take no lock. They read one immutable snapshot reference, and the only in-place
writes are whole 8-byte elements of a packed per-unit state array, so a reader
sees each unit either before or after a change, never half of it.

The module is over the usual ~500 lines on purpose: the index, its packed state,
its lock-free snapshot and the one query that refreshes it are one data
structure whose invariants (above) only hold together; split, each part would
have to export its private layout to the others.
"""

from __future__ import annotations

import array
import logging
import math
import os
import threading
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from units import geo
from units.geo import EARTH_RADIUS_M, haversine_m_radians
from units.models import Equipment, EquipmentKind, Member, RosterChange, Unit
from units.readiness import (
    kit_enough,
    kit_in_service_q,
    ready_mask,
    unit_spare,
)
from units.services import local_roster_version

log = logging.getLogger(__name__)

__all__ = [
    "Candidate",
    "UnitIndex",
    "kit_mask",
    "rank_units",
    "reset_unit_index",
    "unit_index",
]


@dataclass(frozen=True, slots=True)
class Candidate:
    unit_id: int
    distance_m: float  # exact great-circle (haversine, units.geo.EARTH_RADIUS_M)
    eta_s: int  # distance_m * DETOUR_FACTOR / WALK_SPEED_MPS, rounded up
    kit_fit: bool  # unit has the kit the incident kind needs
    on_duty: int  # members on duty
    available: int  # on_duty - post_min, never below 0: people it can send


# One bit per equipment kind, in catalogue order.
KIT_BITS: dict[str, int] = {kind.value: 1 << i for i, kind in enumerate(EquipmentKind)}

# Packed per-unit state (int64): on-duty count, post_min, active flag, ready flag
# (``units.readiness``'s, from the three before it), kit bits. One element per
# unit lets a writer change a unit with a single aligned store.
_U16 = 0xFFFF
_POST_SHIFT = 16
_ACTIVE_SHIFT = 32
_READY_SHIFT = 33
_KIT_SHIFT = 34
_KIT_WIDTH = 29
_ACTIVE_BIT = 1 << _ACTIVE_SHIFT
_READY_BIT = 1 << _READY_SHIFT
assert len(KIT_BITS) <= _KIT_WIDTH, "more equipment kinds than state bits"

# The search's distance bound and haversine distances differ by float rounding
# (~1e-9 m); a millimetre of slack keeps the stopping rule on the safe side.
_SLACK_M = 1e-3
# More changed units than this in one refresh: reload everything (also keeps
# ``id__in`` under SQLite's parameter limit).
_PARTIAL_RELOAD_MAX = 900
# RosterChange ids can commit out of order (PostgreSQL sequences): ids skipped
# over are re-asked for until they show up or this many seconds pass (a
# rolled-back insert leaves a permanent hole).
_GAP_TTL_S = 120.0
_GAP_WINDOW = 500

_DEFAULT_OVERLAY_MAX = 2000


def kit_mask(kinds: Iterable[str]) -> int:
    """Bitmask of equipment kinds, as stored per unit and given to ``from_arrays``."""
    mask = 0
    for kind in kinds:
        try:
            mask |= KIT_BITS[kind]
        except KeyError:
            raise ValueError(f"unknown equipment kind {kind!r}") from None
    return mask


def _pack(is_active, post_min, on_duty, kit_bits) -> np.ndarray:
    on = np.clip(np.asarray(on_duty, dtype=np.int64), 0, _U16)
    pm = np.clip(np.asarray(post_min, dtype=np.int64), 0, _U16)
    act = np.asarray(is_active, dtype=bool).astype(np.int64)
    kit = np.asarray(kit_bits, dtype=np.int64) & ((1 << _KIT_WIDTH) - 1)
    # The one definition of a ready unit (units.readiness), as the admin shows it,
    # kept as a bit so the per-slot search tests it with one operation.
    ready = ready_mask(act, on, pm).astype(np.int64)
    return (
        on
        | (pm << _POST_SHIFT)
        | (act << _ACTIVE_SHIFT)
        | (ready << _READY_SHIFT)
        | (kit << _KIT_SHIFT)
    )


def _eligible(state: np.ndarray, require_available: bool) -> np.ndarray:
    return (state & (_READY_BIT if require_available else _ACTIVE_BIT)) != 0


def _isin_sorted(sorted_values: np.ndarray, x: np.ndarray) -> np.ndarray:
    if sorted_values.size == 0:
        return np.zeros(x.shape, bool)
    pos = np.searchsorted(sorted_values, x)
    pos[pos == sorted_values.size] = 0
    return sorted_values[pos] == x


@dataclass(frozen=True, slots=True)
class _Rows:
    """Units sorted by id: position (degrees and radians) and packed state.

    Positions never change in place (a moved unit goes to the overlay); ``state``
    of base rows is written in place, one whole element per unit.
    """

    ids: np.ndarray
    lat: np.ndarray
    # (n, 3): phi (radians), lon (degrees), cos(phi) per unit, the haversine's
    # inputs; ``phi``, ``lon`` and ``cos_phi`` are its columns.
    geo: np.ndarray
    # ``state`` is a numpy view of ``py_state``'s memory: writers store through
    # the view, the per-slot search reads one element through the array, which
    # costs no numpy call (see _Grid).
    state: np.ndarray
    py_state: array.array

    @property
    def phi(self) -> np.ndarray:
        return self.geo[:, 0]

    @property
    def lon(self) -> np.ndarray:
        return self.geo[:, 1]

    @property
    def cos_phi(self) -> np.ndarray:
        return self.geo[:, 2]

    @classmethod
    def build(cls, ids, lat, lon, state) -> _Rows:
        ids = np.asarray(ids, dtype=np.int64)
        lat = np.asarray(lat, dtype=np.float64)
        lon = np.asarray(lon, dtype=np.float64)
        state = np.asarray(state, dtype=np.int64)
        if not (ids.shape == lat.shape == lon.shape == state.shape and ids.ndim == 1):
            raise ValueError("unit arrays must be one-dimensional and of equal length")
        order = np.argsort(ids, kind="stable")
        ids, lat, lon, state = ids[order], lat[order], lon[order], state[order]
        if ids.size > 1 and np.any(ids[1:] == ids[:-1]):
            raise ValueError("duplicate unit ids")
        if np.any(~((lat >= -90) & (lat <= 90) & (lon >= -180) & (lon <= 180))):
            raise ValueError("unit coordinates out of range")
        phi = np.radians(lat)
        py_state = array.array("q", state.tobytes())
        shared = np.frombuffer(py_state, dtype=np.int64) if ids.size else np.empty(0, np.int64)
        return cls(ids, lat, np.column_stack((phi, lon, np.cos(phi))), shared, py_state)

    @classmethod
    def empty(cls) -> _Rows:
        return cls.build(np.empty(0, np.int64), np.empty(0), np.empty(0), np.empty(0, np.int64))

    @property
    def size(self) -> int:
        return int(self.ids.size)

    def take(self, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self.ids[keep], self.lat[keep], self.lon[keep], self.state[keep]


# Units in the cell of a typical unit (the median over units): cells small where
# units are dense, so the block searched around a point is not much wider than
# the circle holding its answers, yet few cells are visited. Measured on
# Guangzhou-like units (bench/ranking.py --only-nearest).
_CELL_UNITS = 2.0
# Cells per unit at most: one int32 per cell, wherever the units leave gaps.
_CELLS_PER_UNIT_MAX = 64
_CELLS_MAX = 1 << 23


class _Grid:
    """The units of one ``_Rows`` bucketed by a fixed latitude/longitude grid over
    their bounding box, for the nearest search (``_Scan.search``).

    Cell order: units sorted by cell (row-major), so the cells of one grid row
    between two columns are one contiguous range of positions, and ``start[cell]``
    is the first position of a cell. Per position, plain ``array.array`` columns
    (slot in the rows, unit id, and phi/lon/cos(phi) interleaved) that a Python
    loop reads element by element: a search makes no numpy call, whose fixed
    cost, multiplied by cold CPU caches between calls a few ms apart, was most
    of a ranking call (as was ``cKDTree.query``'s, which this replaces).
    """

    __slots__ = (
        "col_lon",
        "geo",
        "ids",
        "inv_dlat",
        "inv_dlon",
        "lat0",
        "lon0",
        "lon_max",
        "ncols",
        "nrows",
        "row_phi",
        "rows",
        "slot",
        "slot_np",
        "start",
    )

    def __init__(self, rows: _Rows) -> None:
        self.rows = rows
        n = rows.size
        self.nrows = self.ncols = 0
        if not n:
            return
        lat, lon = rows.lat, rows.lon
        lat0, lat1 = float(lat.min()), float(lat.max())
        lon0, lon1 = float(lon.min()), float(lon.max())
        # A flat or single-point set still gets cells of a positive size.
        height, width = max(lat1 - lat0, 1e-9), max(lon1 - lon0, 1e-9)
        # Square cells on the ground: a degree of longitude is cos(lat) as long.
        squash = max(math.cos(math.radians((lat0 + lat1) / 2)), 0.05)
        cells_max = min(_CELLS_MAX, _CELLS_PER_UNIT_MAX * n)
        # Start from the bounding box's average, then resize until a typical
        # unit's cell holds about _CELL_UNITS units.
        side = math.sqrt(height * width * squash * _CELL_UNITS / n)
        for _ in range(4):
            nrows, ncols = _grid_shape(height, width * squash, side, cells_max)
            cell = self._cells(lat, lon, lat0, lon0, height / nrows, width / ncols, nrows, ncols)
            typical = float(np.median(np.bincount(cell)[cell]))
            if abs(typical - _CELL_UNITS) <= 0.5 * _CELL_UNITS:
                break
            side *= math.sqrt(_CELL_UNITS / typical)
        dlat, dlon = height / nrows, width / ncols
        self.nrows, self.ncols = nrows, ncols
        self.lat0, self.lon0, self.lon_max = lat0, lon0, lon1
        self.inv_dlat, self.inv_dlon = 1.0 / dlat, 1.0 / dlon
        # Cell edges, as the stopping bound (_Scan._reach) reads them.
        self.row_phi = [math.radians(lat0 + r * dlat) for r in range(nrows + 1)]
        self.col_lon = [lon0 + c * dlon for c in range(ncols + 1)]

        order = np.argsort(cell, kind="stable").astype(np.int64)
        start = np.zeros(nrows * ncols + 1, np.int32)
        np.cumsum(np.bincount(cell, minlength=nrows * ncols), out=start[1:])
        self.start = array.array("i", start.tobytes())
        self.slot_np = order
        self.slot = array.array("q", order.tobytes())
        self.ids = array.array("q", rows.ids[order].tobytes())
        self.geo = array.array("d", np.ascontiguousarray(rows.geo[order]).tobytes())

    @staticmethod
    def _cells(lat, lon, lat0, lon0, dlat, dlon, nrows, ncols) -> np.ndarray:
        # The same arithmetic as cell_of: (x - x0) * (1 / d), floored, clipped.
        r = np.clip(np.floor((lat - lat0) * (1.0 / dlat)), 0, nrows - 1).astype(np.int64)
        c = np.clip(np.floor((lon - lon0) * (1.0 / dlon)), 0, ncols - 1).astype(np.int64)
        return r * ncols + c

    def cell_of(self, lat: float, lon: float) -> tuple[int, int]:
        """The cell holding (lat, lon), or the nearest edge cell if outside."""
        r = math.floor((lat - self.lat0) * self.inv_dlat)
        c = math.floor((lon - self.lon0) * self.inv_dlon)
        return (
            0 if r < 0 else self.nrows - 1 if r >= self.nrows else r,
            0 if c < 0 else self.ncols - 1 if c >= self.ncols else c,
        )


def _grid_shape(height: float, width: float, side: float, cells_max: int) -> tuple[int, int]:
    """Rows and columns of cells about ``side`` wide over height x width, at most
    ``cells_max`` cells (then wider cells, still about square)."""
    for _ in range(8):
        nrows, ncols = max(1, math.ceil(height / side)), max(1, math.ceil(width / side))
        if nrows * ncols <= cells_max:
            return nrows, ncols
        side *= 1.05 * math.sqrt(nrows * ncols / cells_max)
    # A very flat box: one row or column of as many cells as allowed.
    return min(nrows, cells_max), max(1, min(ncols, cells_max // min(nrows, cells_max)))


def _arc_deg(a: float, b: float) -> float:
    """Degrees between two longitudes the short way round."""
    d = abs(a - b)
    return 360.0 - d if d > 180.0 else d


def _arc_to_span_deg(x: float, a: float, b: float) -> float:
    """Degrees from longitude ``x`` to the nearest longitude in [a, b] (a <= b)."""
    if a <= x <= b:
        return 0.0
    return min(_arc_deg(x, a), _arc_deg(x, b))


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """What a reader sees: the base rows and their grid, the base slots it must
    skip (moved or deleted units), and the overlay of changed units with a grid
    of its own, until the next rebuild folds it into the base."""

    base: _Rows
    grid: _Grid
    masked: np.ndarray  # sorted base slots
    overlay: _Rows
    masked_set: frozenset[int] = field(init=False)  # ``masked``, for per-slot checks
    overlay_grid: _Grid = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "masked_set", frozenset(self.masked.tolist()))
        object.__setattr__(self, "overlay_grid", _Grid(self.overlay))


_NO_ROWS = _Rows.empty()  # holds no element, so no state write can reach it


def _snapshot(base: _Rows) -> _Snapshot:
    return _Snapshot(base, _Grid(base), np.empty(0, np.int64), _Rows.empty())


@dataclass(frozen=True, slots=True)
class _Params:
    detour: float
    speed: float
    penalty: float
    need: int

    @classmethod
    def current(cls, incident_kind: str | None) -> _Params:
        # Cached: four settings reads and a kit mask were a tenth of a ranking
        # call with cold caches. Forgotten when a RANKING_ setting changes (tests).
        params = _params_cache.get(incident_kind)
        if params is None:
            params = _params_cache[incident_kind] = cls._read(incident_kind)
        return params

    @classmethod
    def _read(cls, incident_kind: str | None) -> _Params:
        detour = float(getattr(settings, "RANKING_DETOUR_FACTOR", 1.3))
        speed = float(getattr(settings, "RANKING_WALK_SPEED_MPS", 1.4))
        penalty = float(getattr(settings, "RANKING_KIT_PENALTY_S", 60.0))
        if not (detour > 0 and speed > 0 and penalty >= 0):
            raise ImproperlyConfigured(
                "RANKING_DETOUR_FACTOR and RANKING_WALK_SPEED_MPS must be > 0, "
                "RANKING_KIT_PENALTY_S >= 0."
            )
        need = 0
        if incident_kind is not None:
            kinds = getattr(settings, "RANKING_KIT_BY_KIND", {}).get(incident_kind, ())
            try:
                need = kit_mask(kinds)
            except ValueError as e:
                raise ImproperlyConfigured(f"RANKING_KIT_BY_KIND[{incident_kind!r}]: {e}") from e
        return cls(detour, speed, penalty, need)

    def eta_s(self, distance_m: float) -> int:
        return math.ceil(distance_m * self.detour / self.speed)


_params_cache: dict[str | None, _Params] = {}


def _forget_params(*, setting: str, **kwargs) -> None:
    if setting.startswith("RANKING_"):
        _params_cache.clear()


setting_changed.connect(_forget_params)


def walk_eta_s(distance_m: float) -> int:
    """The on-foot arrival estimate ranking gives a unit this far away, for units
    a caller named rather than ranked (a board's call)."""
    return _Params.current(None).eta_s(distance_m)


class UnitIndex:
    """Nearest-unit index of one process.

    ``UnitIndex()`` is empty until ``refresh()`` loads it from the database;
    ``from_arrays`` builds a detached one (no database, ``refresh`` does nothing).
    ``nearest`` never touches the database. Thread-safe: writers serialise on a
    lock, readers take none.
    """

    def __init__(self, *, overlay_max: int | None = None) -> None:
        self._lock = threading.RLock()
        self._snap = _snapshot(_Rows.empty())
        self._overlay_max = int(
            overlay_max
            if overlay_max is not None
            else getattr(settings, "RANKING_OVERLAY_MAX", _DEFAULT_OVERLAY_MAX)
        )
        self._detached = False
        self._last_change_id: int | None = None  # None: never loaded
        self._gaps: dict[int, float] = {}  # change id skipped over -> when first missed
        self._kit_date: date | None = None
        # Unit id -> name, for the intake's default address ("…附近"): kept
        # with the rows, so naming the nearest unit costs no query. Replaced
        # whole by a full load, updated under the lock by a partial one.
        self._names: dict[int, str] = {}
        self.rebuilds = 0  # base grid builds so far (for tests and monitoring)
        self.refreshed_at = -math.inf  # time.monotonic() of the last refresh
        self._local_seen = -1  # local_roster_version() as of the last refresh

    # --- building ------------------------------------------------------------

    @classmethod
    def from_arrays(
        cls,
        *,
        unit_ids: Sequence[int] | np.ndarray,
        lat: Sequence[float] | np.ndarray,
        lon: Sequence[float] | np.ndarray,
        is_active: Sequence[bool] | np.ndarray,
        post_min: Sequence[int] | np.ndarray,
        on_duty: Sequence[int] | np.ndarray,
        kit_bits: Sequence[int] | np.ndarray,
        overlay_max: int | None = None,
    ) -> UnitIndex:
        """A detached index over these units (``kit_bits`` from ``kit_mask``)."""
        index = cls(overlay_max=overlay_max)
        index._detached = True
        index._publish(
            _snapshot(
                _Rows.build(unit_ids, lat, lon, _pack(is_active, post_min, on_duty, kit_bits))
            ),
            rebuilt=True,
        )
        return index

    @property
    def size(self) -> int:
        """Units held (active or not)."""
        snap = self._snap
        return snap.base.size - snap.masked.size + snap.overlay.size

    @property
    def overlay_size(self) -> int:
        return self._snap.overlay.size

    def unit_states(self) -> dict[int, tuple[float, float, bool, int, int, int]]:
        """What the index holds, per unit id: (lat, lon, is_active, post_min,
        on_duty, kit_bits). For tests and checks; not a hot path."""
        snap = self._snap
        keep = np.ones(snap.base.size, bool)
        keep[snap.masked] = False
        out = {}
        for rows, take in ((snap.base, keep), (snap.overlay, slice(None))):
            ids, lat, lon, state = rows.take(take)
            for unit_id, la, lo, st in zip(
                ids.tolist(), lat.tolist(), lon.tolist(), state.tolist(), strict=True
            ):
                out[unit_id] = (
                    la,
                    lo,
                    bool((st >> _ACTIVE_SHIFT) & 1),
                    (st >> _POST_SHIFT) & _U16,
                    st & _U16,
                    st >> _KIT_SHIFT,
                )
        return out

    def _publish(self, snap: _Snapshot, *, rebuilt: bool) -> None:
        if rebuilt:
            self.rebuilds += 1
        self._snap = snap  # one reference store: readers see the old or the new

    # --- freshness -----------------------------------------------------------

    def refresh(self) -> None:
        """Apply RosterChange rows written since the last refresh.

        One query, whether or not something changed: the new log rows come back
        together with the changed units' rows, on-duty counts and usable kit, so a
        member clocking in costs the next call an in-memory write, not a reload.
        A full reload (four bulk queries) the first time, when a change names no
        unit, when many units changed, or when the date moved on (kit expiry).
        Runs database queries: from async code call it through ``sync_to_async``.
        """
        with self._lock:
            if self._detached:
                return
            # Read before the query: a change committed meanwhile counts as unseen.
            local = local_roster_version()
            self._refresh_locked()
            self._local_seen = local
            self.refreshed_at = time.monotonic()

    def _refresh_locked(self) -> None:
        """Caller holds the lock."""
        today = timezone.localdate()
        if self._last_change_id is None or self._kit_date != today:
            self._load_all(today)
            return
        last = self._last_change_id
        changes, fetched, names = _changes_fetch(last, sorted(self._gaps), today=today)
        position = _log_position(last, [change_id for change_id, _ in changes], self._gaps)
        unit_ids = {unit_id for _, unit_id in changes}
        if None in unit_ids or len(unit_ids) > _PARTIAL_RELOAD_MAX:
            self._load_all(today)
            return
        if unit_ids:
            deleted = sorted(unit_ids - set(fetched.ids.tolist()))
            # Names first: a unit the new rows rank has its name already.
            self._names.update(names)
            self._apply(fetched, np.asarray(deleted, dtype=np.int64))
            for unit_id in deleted:
                self._names.pop(unit_id, None)
        # Only now: a failed read leaves these changes to the next refresh.
        self._last_change_id, self._gaps = position

    def _load_all(self, today: date) -> None:
        # Read the log position before the units: a change committed after this
        # point has a later id and is applied by the next refresh.
        recent = list(
            RosterChange.objects.order_by("-id").values_list("id", flat=True)[:_GAP_WINDOW]
        )
        fetched, names = _fetch_units(today=today)
        self._names = names  # before the rows that rank them
        self._publish(_snapshot(fetched), rebuilt=True)
        floor = min(recent, default=1) - 1
        self._last_change_id, self._gaps = _log_position(floor, recent, {})
        self._kit_date = today

    def apply_units(
        self,
        *,
        unit_ids: Sequence[int] | np.ndarray,
        lat: Sequence[float] | np.ndarray,
        lon: Sequence[float] | np.ndarray,
        is_active: Sequence[bool] | np.ndarray,
        post_min: Sequence[int] | np.ndarray,
        on_duty: Sequence[int] | np.ndarray,
        kit_bits: Sequence[int] | np.ndarray,
        deleted_ids: Collection[int] = (),
    ) -> None:
        """Set these units' full state (added or changed) and drop ``deleted_ids``,
        in memory only. ``refresh`` does this with rows read from the database."""
        rows = _Rows.build(unit_ids, lat, lon, _pack(is_active, post_min, on_duty, kit_bits))
        with self._lock:
            self._apply(rows, np.asarray(sorted(set(deleted_ids)), dtype=np.int64))

    def _apply(self, rows: _Rows, deleted: np.ndarray) -> None:
        """Caller holds the lock."""
        snap = self._snap
        if not deleted.size and _write_states_in_place(snap, rows):
            return
        base, overlay = snap.base, snap.overlay
        touched = np.concatenate((rows.ids, deleted))

        slot = np.searchsorted(base.ids, touched)
        in_base = slot < base.size
        in_base[in_base] = base.ids[slot[in_base]] == touched[in_base]
        if snap.masked.size:
            in_base &= ~_isin_sorted(snap.masked, slot)

        # A unit still at its base position only changed state: write it in
        # place. Everything else (moved, new, deleted) hides its base entry.
        n = rows.size
        same_place = in_base[:n].copy()
        s = slot[:n][same_place]
        same_place[same_place] = (base.lat[s] == rows.lat[same_place]) & (
            base.lon[s] == rows.lon[same_place]
        )
        base.state[slot[:n][same_place]] = rows.state[same_place]

        to_overlay = ~same_place
        hide = slot[in_base & np.concatenate((to_overlay, np.ones(deleted.size, bool)))]
        masked = np.union1d(snap.masked, hide).astype(np.int64)

        stay = ~_isin_sorted(np.sort(touched), overlay.ids) if overlay.size else np.empty(0, bool)
        new_overlay = _Rows.build(
            *(
                np.concatenate(pair)
                for pair in zip(overlay.take(stay), rows.take(to_overlay), strict=True)
            )
        )
        if new_overlay.size + masked.size > self._overlay_max:
            self._rebuild(base, masked, new_overlay)
        elif new_overlay.size or hide.size or overlay.size:
            self._publish(_Snapshot(base, snap.grid, masked, new_overlay), rebuilt=False)

    def _rebuild(self, base: _Rows, masked: np.ndarray, overlay: _Rows) -> None:
        keep = np.ones(base.size, bool)
        keep[masked] = False
        parts = zip(base.take(keep), overlay.take(slice(None)), strict=True)
        self._publish(
            _snapshot(_Rows.build(*(np.concatenate(pair) for pair in parts))), rebuilt=True
        )

    # --- queries -------------------------------------------------------------

    def unit_name(self, unit_id: int) -> str | None:
        """The unit's name as of the last refresh; None for one not held (or
        an index built ``from_arrays``, which has no names)."""
        return self._names.get(unit_id)

    def nearest(
        self,
        *,
        lat: float,
        lon: float,
        limit: int,
        radius_m: float | None = None,
        incident_kind: str | None = None,
        exclude: Collection[int] = (),
        require_available: bool = True,
    ) -> list[Candidate]:
        """The ``limit`` best units for a point, best first; no database access."""
        if limit <= 0:
            return []
        if not geo.valid_latlon(lat, lon):
            raise ValueError("invalid coordinate")
        if radius_m is not None and not radius_m >= 0:
            raise ValueError("radius_m must be >= 0")
        p = _Params.current(incident_kind)
        snap = self._snap
        phi = math.radians(lat)
        scan = _Scan(
            phi=phi,
            lat=float(lat),
            lon=float(lon),
            cos_phi=math.cos(phi),
            max_d=math.inf if radius_m is None else float(radius_m),
            params=p,
            require_available=require_available,
            excluded=frozenset(int(unit_id) for unit_id in exclude),
            limit=limit,
        )
        # The overlay first, then the base: each search stops only when no unit
        # it has not seen can beat the answer so far, so the union is exact.
        picked = scan.search(snap.overlay_grid, None, [])
        picked = scan.search(snap.grid, snap, picked)
        return [
            Candidate(
                unit_id=unit_id,
                distance_m=dist,
                eta_s=p.eta_s(dist),
                kit_fit=fit,
                on_duty=state & _U16,
                available=unit_spare(on_duty=state & _U16, post_min=(state >> _POST_SHIFT) & _U16),
            )
            for _, unit_id, dist, fit, state in picked
        ]


# (score, unit id, distance_m, kit fits, packed state): sorts as the ranking does,
# by score, ties to the lower unit id (ids are unique, so never further).
_Found = tuple[float, int, float, bool, int]

# Up to this many units per step of a search are scored one by one in plain
# Python: for the few dozen a step usually meets, a loop over ``array.array``
# elements costs less than the fixed overhead of the ~30 numpy calls of the
# array path, mostly so when the CPU caches are cold (a call every few ms, as
# in real life). More (a wide search, a point far from every unit) go the array
# path. Both return the same floats: libm's, through the ``math`` module, in
# ``units.geo.haversine_m_radians``'s order of operations (the array path uses
# numpy only to choose which units to score so).
_SCAN_LIST_MAX = 300

# The first block searched: the point's cell and this many rings of cells around
# it. With cells of about _CELL_UNITS units, one ring usually holds enough units
# to settle the next block in one step (nearest-10 every 5 ms, A/B in one
# process: a ring of 1 about 8% faster than 0, and about as fast as 2).
_START_RING = 1


def _best(a: list[_Found], b: list[_Found], limit: int) -> list[_Found]:
    if not a:
        return b if len(b) <= limit else b[:limit]
    if not b:
        return a
    return sorted(a + b)[:limit]


class _Scan:
    """One ``nearest`` call's filters and scoring, and its search of a ``_Grid``."""

    __slots__ = (
        "cos_phi",
        "detour",
        "excluded",
        "lat",
        "limit",
        "lon",
        "max_d",
        "need",
        "penalty",
        "phi",
        "require_available",
        "speed",
    )

    def __init__(
        self, *, phi, lat, lon, cos_phi, max_d, params, require_available, excluded, limit
    ):
        self.phi, self.lat, self.lon, self.cos_phi, self.max_d = phi, lat, lon, cos_phi, max_d
        self.detour, self.speed = params.detour, params.speed
        self.penalty, self.need = params.penalty, params.need
        self.require_available = require_available
        self.excluded: frozenset[int] = excluded
        self.limit = limit

    def search(self, grid: _Grid, snap: _Snapshot | None, picked: list[_Found]) -> list[_Found]:
        """``picked`` and the eligible units of ``grid``: the ``limit`` best, best
        first (``snap``: skip its masked base slots).

        Scores the point's cell and a ring around it, then wider blocks. Every
        unit outside the block is at least ``_reach`` metres away, so its score is
        at least that distance's walking time: the search stops once that is past
        the radius, or worse than the ``limit``-th score kept (which may include a
        kit penalty: an unkitted near unit does not stop the search for a kitted
        one up to a penalty's walk further), or the block is the whole grid.
        """
        nrows, ncols = grid.nrows, grid.ncols
        if not nrows:
            return picked
        start, limit = grid.start, self.limit
        row, col = grid.cell_of(self.lat, self.lon)
        k = _START_RING
        r0, r1 = max(0, row - k), min(nrows - 1, row + k)
        c0, c1 = max(0, col - k), min(ncols - 1, col + k)
        ranges = [(start[r * ncols + c0], start[r * ncols + c1 + 1]) for r in range(r0, r1 + 1)]
        while True:
            if ranges:
                worst = picked[-1][0] if len(picked) == limit else math.inf
                picked = _best(picked, self.score(grid, ranges, snap, worst), limit)
            if r0 == 0 and c0 == 0 and r1 == nrows - 1 and c1 == ncols - 1:
                return picked
            reach = self._reach(grid, r0, r1, c0, c1) - _SLACK_M
            if reach > self.max_d:
                return picked
            if len(picked) == limit and reach * self.detour / self.speed > picked[-1][0]:
                return picked
            n0, n1, m0, m1 = self._grow(grid, r0, r1, c0, c1, picked)
            ranges = []
            # The cells new to the block: whole new rows, and the new columns
            # at both sides of the rows already searched.
            for r in range(n0, n1 + 1):
                first = r * ncols
                if r0 <= r <= r1:
                    if m0 < c0 and start[first + m0] < start[first + c0]:
                        ranges.append((start[first + m0], start[first + c0]))
                    if m1 > c1 and start[first + c1 + 1] < start[first + m1 + 1]:
                        ranges.append((start[first + c1 + 1], start[first + m1 + 1]))
                elif start[first + m0] < start[first + m1 + 1]:
                    ranges.append((start[first + m0], start[first + m1 + 1]))
            r0, r1, c0, c1 = n0, n1, m0, m1

    def _grow(self, grid: _Grid, r0: int, r1: int, c0: int, c1: int, picked: list[_Found]):
        """The next block: any larger block keeps the search exact; this one aims
        to stop it soon without scanning much more than needed.

        With ``limit`` units kept, the block that puts ``_reach`` past the walk of
        the worst kept score (or the radius) at once: usually a ring or two. With
        fewer, a block grown by what the density found so far suggests, at least
        half again as wide (so a point far from every unit takes a few steps, not
        one per cell), but no wider than the radius needs.
        """
        nrows, ncols = grid.nrows, grid.ncols
        found, limit = len(picked), self.limit
        need = self.max_d
        if found == limit:
            need = min(need, picked[-1][0] * self.speed / self.detour)
        t0, t1, u0, u1 = self._block_within(grid, need + 2 * _SLACK_M)
        if found == limit:
            n0, n1, m0, m1 = min(r0, t0), max(r1, t1), min(c0, u0), max(c1, u1)
        else:
            half = max(r1 - r0, c1 - c0) / 2 + 0.5
            ratio = math.sqrt(limit / found) - 1 if found else 1.0
            step = max(1, math.ceil(half * max(ratio, 0.5)))
            n0, n1 = max(r0 - step, min(r0, t0)), min(r1 + step, max(r1, t1))
            m0, m1 = max(c0 - step, min(c0, u0)), min(c1 + step, max(c1, u1))
        if (n0, n1, m0, m1) == (r0, r1, c0, c1):
            # Rounding at a cell edge: one more ring settles it.
            n0, n1, m0, m1 = r0 - 1, r1 + 1, c0 - 1, c1 + 1
        return max(0, n0), min(nrows - 1, n1), max(0, m0), min(ncols - 1, m1)

    def _block_within(self, grid: _Grid, distance_m: float) -> tuple[int, int, int, int]:
        """Rows and columns of the cells holding every point of ``grid``'s box
        within ``distance_m`` of the point (the inverse of ``_reach``): past this
        block, ``_reach`` is at least ``distance_m``."""
        nrows, ncols = grid.nrows, grid.ncols
        angle = distance_m / EARTH_RADIUS_M
        if angle >= math.pi / 2:
            return 0, nrows - 1, 0, ncols - 1
        d_lat = math.degrees(angle)
        r0, _ = grid.cell_of(self.lat - d_lat, self.lon)
        r1, _ = grid.cell_of(self.lat + d_lat, self.lon)
        x = math.sin(angle) / self.cos_phi if self.cos_phi > 0 else math.inf
        if x >= 1:
            return r0, r1, 0, ncols - 1
        arc = math.degrees(math.asin(x))
        if self.lon - arc < -180 or self.lon + arc > 180:
            return r0, r1, 0, ncols - 1  # round the antimeridian: the cells of both ends
        _, c0 = grid.cell_of(self.lat, self.lon - arc)
        _, c1 = grid.cell_of(self.lat, self.lon + arc)
        return r0, r1, c0, c1

    def _reach(self, grid: _Grid, r0: int, r1: int, c0: int, c1: int) -> float:
        """Metres from the point to any unit of ``grid`` outside the block of rows
        r0..r1 and columns c0..c1, at least (before rounding: see _SLACK_M).

        A unit in a row south of the block lies south of the block's south edge,
        and no two points are nearer than their difference in latitude; same to
        the north. A unit in a column outside the block lies at least ``arc``
        degrees of longitude away (the short way round); the shortest path to it
        crosses the meridian ``arc`` degrees from the point, which is no nearer
        than the great circle holding that meridian, at asin(cos(phi) sin(arc))
        radians (the pole lies on it too).
        """
        reach = math.inf
        if r0 > 0:
            reach = EARTH_RADIUS_M * max(0.0, self.phi - grid.row_phi[r0])
        if r1 < grid.nrows - 1:
            reach = min(reach, EARTH_RADIUS_M * max(0.0, grid.row_phi[r1 + 1] - self.phi))
        arc = math.inf
        if c0 > 0:
            arc = _arc_to_span_deg(self.lon, grid.lon0, grid.col_lon[c0])
        if c1 < grid.ncols - 1:
            arc = min(arc, _arc_to_span_deg(self.lon, grid.col_lon[c1 + 1], grid.lon_max))
        if arc != math.inf:
            sin_d = min(1.0, self.cos_phi * math.sin(math.radians(arc)))
            reach = min(reach, EARTH_RADIUS_M * math.asin(sin_d))
        return reach

    def score(
        self, grid: _Grid, ranges: list[tuple[int, int]], snap: _Snapshot | None, worst: float
    ) -> list[_Found]:
        """The ``limit`` best eligible units at these ranges of cell positions,
        best first (``snap``: skip its masked base slots), leaving out units
        scoring worse than ``worst``, the ``limit``-th score kept so far."""
        count = 0
        for a, b in ranges:
            count += b - a
        if count > _SCAN_LIST_MAX:
            positions = np.concatenate([np.arange(a, b) for a, b in ranges])
            return self._rows_vectorised(grid.rows, grid.slot_np[positions], snap)
        # Each unit's state is read once (one 8-byte element): a consistent state.
        state, slot_of, ids, pos = grid.rows.py_state, grid.slot, grid.ids, grid.geo
        masked = snap.masked_set if snap is not None else ()
        excluded = self.excluded
        eligible = _READY_BIT if self.require_available else _ACTIVE_BIT
        phi, lon, cos_phi, max_d = self.phi, self.lon, self.cos_phi, self.max_d
        detour, speed, penalty, need = self.detour, self.speed, self.penalty, self.need
        sin, asin, sqrt, radians = math.sin, math.asin, math.sqrt, math.radians
        # No two points are nearer than their difference in latitude: a unit
        # further north or south than this can be neither within the radius nor
        # better than ``worst``, and skips the haversine.
        cut = max_d if worst == math.inf else min(max_d, worst * speed / detour)
        cut_phi = (cut + 2 * _SLACK_M) / EARTH_RADIUS_M
        found: list[_Found] = []
        for a, b in ranges:
            for j in range(a, b):
                slot = slot_of[j]
                state_j = state[slot]
                if not state_j & eligible:
                    continue
                unit_id = ids[j]
                if unit_id in excluded or (masked and slot in masked):
                    continue
                k = 3 * j
                d_phi = pos[k] - phi
                if d_phi > cut_phi or -d_phi > cut_phi:
                    continue
                # units.geo.haversine_m_radians, the same operations in the same order.
                s_phi = sin(d_phi * 0.5)
                s_lam = sin(radians(pos[k + 1] - lon) * 0.5)
                h = s_phi * s_phi + (cos_phi * pos[k + 2]) * (s_lam * s_lam)
                dist = _TWO_R * asin(sqrt(h if h < 1.0 else 1.0))
                if dist > max_d:
                    continue
                fit = ((state_j >> _KIT_SHIFT) & need) == need
                score = dist * detour / speed + (0.0 if fit else penalty)
                if score <= worst:
                    found.append((score, unit_id, dist, fit, state_j))
        found.sort()
        return found[: self.limit]

    def _rows_vectorised(self, rows: _Rows, slots: np.ndarray, snap: _Snapshot | None):
        # numpy narrows the many units down to the few that can be among the
        # ``limit`` best; those are then scored exactly as ``score``'s loop does.
        # numpy's float64 arcsin may be a SIMD one that differs from libm's by an
        # ulp (numpy 2.4 on AVX-512), so its floats only choose, never answer:
        # both paths return the very same floats, whichever numpy is installed.
        state = rows.state[slots]  # read once: each unit's consistent state
        keep = _eligible(state, self.require_available)
        if snap is not None and snap.masked.size:
            keep &= ~_isin_sorted(snap.masked, slots)
        if self.excluded:
            excluded = np.asarray(sorted(self.excluded), dtype=np.int64)
            keep &= ~_isin_sorted(excluded, rows.ids[slots])
        slots, state = slots[keep], state[keep]
        phi_u, lon_u, cos_u = rows.phi[slots], rows.lon[slots], rows.cos_phi[slots]
        dist = haversine_m_radians(self.phi, self.lon, self.cos_phi, phi_u, lon_u, cos_u)
        # _SLACK_M covers the few ulps (~1e-9 m) the two arcsins can differ by.
        near = dist <= self.max_d + _SLACK_M
        fit = ((state >> _KIT_SHIFT) & self.need) == self.need
        score = dist * self.detour / self.speed + np.where(fit, 0.0, self.penalty)
        score[~near] = math.inf
        if self.limit < score.size:
            bar = np.partition(score, self.limit - 1)[self.limit - 1]
            near &= score <= bar + _SLACK_M
        slots, state = slots[near], state[near]
        return self._exact(
            rows.ids[slots].tolist(),
            rows.phi[slots].tolist(),
            rows.lon[slots].tolist(),
            rows.cos_phi[slots].tolist(),
            state.tolist(),
        )

    def _exact(self, ids, phis, lons, cos_phis, states) -> list[_Found]:
        """The ``limit`` best of these units, scored as ``score``'s loop does."""
        phi, lon, cos_phi, max_d = self.phi, self.lon, self.cos_phi, self.max_d
        detour, speed, penalty, need = self.detour, self.speed, self.penalty, self.need
        sin, asin, sqrt, radians = math.sin, math.asin, math.sqrt, math.radians
        found: list[_Found] = []
        for unit_id, phi_u, lon_u, cos_u, state_u in zip(
            ids, phis, lons, cos_phis, states, strict=True
        ):
            s_phi = sin((phi_u - phi) * 0.5)
            s_lam = sin(radians(lon_u - lon) * 0.5)
            h = s_phi * s_phi + (cos_phi * cos_u) * (s_lam * s_lam)
            dist = _TWO_R * asin(sqrt(h if h < 1.0 else 1.0))
            if dist > max_d:
                continue
            fit = ((state_u >> _KIT_SHIFT) & need) == need
            found.append(
                (dist * detour / speed + (0.0 if fit else penalty), unit_id, dist, fit, state_u)
            )
        found.sort()
        return found[: self.limit]


_TWO_R = 2 * EARTH_RADIUS_M


# A few units changed (a member clocked in): written in place one by one, cheaper
# than the vectorised general path's array rebuilds.
_IN_PLACE_MAX = 16


def _write_states_in_place(snap: _Snapshot, rows: _Rows) -> bool:
    """Write the new state of units that stay where they are (base or overlay) in
    place; False, writing nothing, when one moved, is new or is hidden. Caller
    holds the lock."""
    if rows.size > _IN_PLACE_MAX:
        return False
    base, overlay = snap.base, snap.overlay
    writes: list[tuple[np.ndarray, int, int]] = []
    for i in range(rows.size):
        unit_id, lat, lon = int(rows.ids[i]), rows.lat[i], rows.lon[i]
        at = int(np.searchsorted(overlay.ids, unit_id)) if overlay.size else 0
        if at < overlay.size and overlay.ids[at] == unit_id:
            target = overlay
        else:
            at = int(np.searchsorted(base.ids, unit_id))
            if at >= base.size or base.ids[at] != unit_id:
                return False  # new
            if snap.masked.size and _isin_sorted(snap.masked, np.asarray([at]))[0]:
                return False  # hidden: moved to the overlay, or deleted
            target = base
        if target.lat[at] != lat or target.lon[at] != lon:
            return False  # moved
        writes.append((target.state, at, int(rows.state[i])))
    for state, at, value in writes:
        state[at] = value  # one aligned int64 store: readers see before or after
    return True


def _log_position(
    last: int, seen_ids: list[int], gaps: dict[int, float]
) -> tuple[int, dict[int, float]]:
    """The log position after reading ``seen_ids`` (ids > ``last`` or in ``gaps``):
    the highest id seen, and the ids skipped over, each kept for _GAP_TTL_S."""
    now = time.monotonic()
    seen = set(seen_ids)
    new_last = max(seen, default=last)
    gaps = {i: t for i, t in gaps.items() if i not in seen and now - t < _GAP_TTL_S}
    for change_id in range(max(last + 1, new_last - _GAP_WINDOW), new_last):
        if change_id not in seen:
            gaps[change_id] = now
    return max(last, new_last), gaps


def _fetch_units(*, today: date) -> tuple[_Rows, dict[int, str]]:
    """Every unit's dispatch row, in three bulk queries, and its name."""
    units = Unit.objects.all()
    members = Member.objects.filter(on_duty=True, is_active=True)
    # Usable kit is units.readiness's rule: condition and date in SQL, the
    # quantity per kind in Python (ten OR-ed quantity terms cost more to compile
    # than the rows they would save).
    kit = Equipment.objects.filter(kit_in_service_q(today=today))

    rows = list(
        units.order_by("id").values_list("id", "lat", "lon", "is_active", "post_min", "name")
    )
    names = {row[0]: row[5] for row in rows}
    table = np.array([row[:5] for row in rows], dtype=np.float64).reshape(len(rows), 5)
    ids = table[:, 0].astype(np.int64)

    counts = (
        members.order_by().values("unit_id").annotate(n=Count("id")).values_list("unit_id", "n")
    )
    on_duty = np.zeros(ids.size, np.int64)
    slot, n = _slots(ids, list(counts))
    on_duty[slot] = n

    kit_rows = kit.order_by().values_list("unit_id", "kind", "quantity")
    usable = [
        (unit_id, KIT_BITS[kind])
        for unit_id, kind, quantity in kit_rows
        if kit_enough(kind=kind, quantity=quantity)
    ]
    kit_bits = np.zeros(ids.size, np.int64)
    slot, bits = _slots(ids, usable)
    np.bitwise_or.at(kit_bits, slot, bits)

    state = _pack(table[:, 3].astype(bool), table[:, 4], on_duty, kit_bits)
    return _Rows.build(ids, table[:, 1], table[:, 2], state), names


def _slots(ids: np.ndarray, pairs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """(slot in ``ids``, value) for the (unit_id, value) pairs whose unit is in ``ids``."""
    table = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    slot = np.searchsorted(ids, table[:, 0])
    ok = slot < ids.size
    ok[ok] = ids[slot[ok]] == table[ok, 0]
    return slot[ok], table[ok, 1]


_change_sql_cache: tuple[date, str, str, list] | None = None


def _change_sql(today: date) -> tuple[str, list]:
    """The refresh query for ``today``'s kit rule: RosterChange rows after a position
    (CTE ``ch``), the changed units' rows (their name in the last column, where
    the kit rows have their kind), on-duty counts and in-service kit rows, as one
    UNION ALL. Built from the same querysets as ``_fetch_units`` (so the rules
    cannot drift) and compiled once a day: the refresh runs on every call."""
    global _change_sql_cache
    cached = _change_sql_cache
    vendor = connection.vendor
    if cached is not None and cached[0] == today and cached[1] == vendor:
        return cached[2], cached[3]
    q = connection.ops.quote_name
    members, member_params = (
        Member.objects.filter(on_duty=True, is_active=True)
        .order_by()
        .values_list("unit_id")
        .query.sql_with_params()
    )
    kit, kit_params = (
        Equipment.objects.filter(kit_in_service_q(today=today))
        .order_by()
        .values_list("unit_id", "kind", "quantity")
        .query.sql_with_params()
    )
    unit, log = q(Unit._meta.db_table), q(RosterChange._meta.db_table)
    # Only table names and Django-compiled SQL go into the text; values are parameters.
    sql = (
        f"WITH ch AS (SELECT c.id, c.unit_id FROM {log} c WHERE {{where}}) "  # noqa: S608
        "SELECT 0, ch.id, ch.unit_id, u.lat, u.lon, u.is_active, u.post_min, NULL, u.name "
        f"FROM ch LEFT JOIN {unit} u ON u.id = ch.unit_id "
        "UNION ALL "
        "SELECT 1, NULL, m.unit_id, NULL, NULL, NULL, NULL, COUNT(*), NULL "
        f"FROM ({members}) m WHERE m.unit_id IN (SELECT unit_id FROM ch) GROUP BY m.unit_id "
        "UNION ALL "
        "SELECT 2, NULL, k.unit_id, NULL, NULL, NULL, NULL, k.quantity, k.kind "
        f"FROM ({kit}) k WHERE k.unit_id IN (SELECT unit_id FROM ch)"
    )
    params = [*member_params, *kit_params]
    _change_sql_cache = (today, vendor, sql, params)
    return sql, params


def _changes_fetch(
    last: int, gaps: list[int], *, today: date
) -> tuple[list[tuple[int, int | None]], _Rows, dict[int, str]]:
    """RosterChange (id, unit_id) rows after ``last`` or in ``gaps``, and the changed
    units' current dispatch rows and names (a deleted unit has none), in one query."""
    sql, params = _change_sql(today)
    where, where_params = "c.id > %s", [last]
    if gaps:
        where = f"(c.id > %s OR c.id IN ({', '.join(['%s'] * len(gaps))}))"
        where_params += gaps
    changes: list[tuple[int, int | None]] = []
    places: dict[int, tuple[float, float, bool, int]] = {}
    names: dict[int, str] = {}
    on_duty: dict[int, int] = {}
    kit: dict[int, int] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql.replace("{where}", where), [*where_params, *params])
        for part, change_id, unit_id, lat, lon, active, post_min, n, text in cursor.fetchall():
            if part == 0:
                changes.append((change_id, unit_id))
                if lat is not None:
                    places[unit_id] = (lat, lon, bool(active), post_min)
                    names[unit_id] = text
            elif part == 1:
                on_duty[unit_id] = n
            elif kit_enough(kind=text, quantity=n):
                kit[unit_id] = kit.get(unit_id, 0) | KIT_BITS[text]
    if not places:
        # The usual refresh: nothing changed. No array work: the refresher holds
        # the GIL meanwhile, and a ranking call in another thread waits for it.
        return changes, _NO_ROWS, names
    ids = sorted(places)
    rows = [places[i] for i in ids]
    state = _pack(
        [r[2] for r in rows],
        [r[3] for r in rows],
        [on_duty.get(i, 0) for i in ids],
        [kit.get(i, 0) for i in ids],
    )
    return changes, _Rows.build(ids, [r[0] for r in rows], [r[1] for r in rows], state), names


_index: UnitIndex | None = None
_index_lock = threading.Lock()


def unit_index() -> UnitIndex:
    """This process's index, loaded from the database on first use."""
    global _index
    index = _index
    if index is None:
        with _index_lock:
            if _index is None:
                index = UnitIndex()
                index.refresh()
                _index = index
            index = _index
    return index


def unit_name(unit_id: int) -> str | None:
    """A unit's name as of this process's index (``rank_units`` refreshed it or
    the refresher keeps it fresh); None for a unit it does not hold."""
    return unit_index().unit_name(unit_id)


def reset_unit_index() -> None:
    """Forget this process's index (tests: the database was rolled back)."""
    global _index
    with _index_lock:
        _index = None
        _refresher_stop()


def _refresher_stop() -> None:
    """Caller holds ``_index_lock``. The thread closes its connection and ends."""
    global _refresher
    if _refresher is not None:
        _refresher[2].set()
        _refresher = None


# --- the refresher: the index kept fresh off the ranking path -----------------------

# (pid, thread, stop): a thread does not survive a fork; reset_unit_index stops it.
_refresher: tuple[int, threading.Thread, threading.Event] | None = None


def _kept_fresh(index: UnitIndex) -> bool:
    """Can ``rank_units`` answer without refreshing first?

    Yes when the refresher thread runs and refreshed lately (at most a few
    periods ago: a roster change in another process reaches the ranking within
    about ``RANKING_REFRESH_S``), and no roster change of this process has
    committed since (that one is in the very next answer). Otherwise, or with
    ``RANKING_REFRESH_S`` = 0, the caller refreshes first, as before.
    """
    period = settings.RANKING_REFRESH_S
    if period <= 0:
        return False
    fresh = (
        index._local_seen == local_roster_version()
        and time.monotonic() - index.refreshed_at <= max(5 * period, 1.0)
    )
    current = _refresher
    # A thread that died leaves the index stale within a second: only then, or
    # in a new process (fork), is its liveness worth asking (a lock per call).
    if not fresh or current is None or current[0] != os.getpid():
        _refresher_ensure(period)
    return fresh


def _refresher_ensure(period: float) -> None:
    global _refresher
    pid = os.getpid()
    current = _refresher
    if current is not None and current[0] == pid and current[1].is_alive():
        return
    with _index_lock:
        current = _refresher
        if current is not None and current[0] == pid and current[1].is_alive():
            return
        stop = threading.Event()
        thread = threading.Thread(
            target=_refresh_forever, args=(period, stop), name="ranking-refresher", daemon=True
        )
        _refresher = (pid, thread, stop)
        thread.start()


def _refresh_forever(period: float, stop: threading.Event) -> None:
    """Refresh this process's index every ``period`` s, on the thread's own
    database connection. A failed refresh (the database away) is logged and
    tried again; meanwhile ``rank_units`` sees the index go stale and refreshes
    on its own call, as without the thread."""
    try:
        while not stop.wait(period):
            index = _index
            if index is None:
                continue
            try:
                index.refresh()
            except Exception:  # noqa: BLE001 - logged; the next period tries again
                log.warning("ranking index refresh failed", exc_info=True)
                connection.close()
    finally:
        # Its connection must not outlive it (a test database could not be dropped).
        connection.close()


def rank_units(
    *,
    lat: float,
    lon: float,
    limit: int,
    radius_m: float | None = None,
    incident_kind: str | None = None,
    exclude: Collection[int] = (),
    require_available: bool = True,
) -> list[Candidate]:
    """The ``limit`` best units to call to (lat, lon), best first, on a fresh roster.

    No database query while the process's refresher keeps the index fresh
    (``_kept_fresh``); otherwise one, applying the roster changes in memory
    (``UnitIndex.refresh``). Sync only.
    """
    index = unit_index()
    if not _kept_fresh(index):
        index.refresh()
    return index.nearest(
        lat=lat,
        lon=lon,
        limit=limit,
        radius_m=radius_m,
        incident_kind=incident_kind,
        exclude=exclude,
        require_available=require_available,
    )
