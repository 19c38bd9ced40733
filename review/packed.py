"""Roll-up payloads stored as packed numpy records, not JSON or a row each.

A city-wide report reads a few dozen stored rows; what made it slow was what
was inside them: a year of per-second histograms as JSON (~600,000 entries
parsed one by one), and per-unit counts as a row per unit and week. Packed,
one stored row of a day or a week holds every district's histogram entries or
every unit's counts, and ``np.frombuffer`` reads it back without a Python loop.

Little-endian fixed-width records, so SQLite and PostgreSQL store the same
bytes (``BinaryField``: BLOB, bytea).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

# A histogram entry: duration (index into DURATIONS), whole seconds, count.
# Sorted by (duration, seconds); a count is never 0.
HIST = np.dtype([("d", "<i4"), ("v", "<i4"), ("c", "<i8")])
# A unit's counts under one key: the unit and its street and district (-1: none)
# when the facts were written, then alerted, accepted, declined, no answer, on site.
UNIT = np.dtype([("unit", "<i8"), ("street", "<i8"), ("district", "<i8"), ("n", "<i8", (5,))])


def hist_pack(d: np.ndarray, v: np.ndarray, c: np.ndarray) -> bytes:
    """Entries (duration index, seconds, count) as stored: summed per (d, v), zeros
    dropped, sorted. Counts may be negative on the way in (a difference)."""
    return hist_sum([(np.asarray(d), np.asarray(v), np.asarray(c))]).tobytes()


def hist_unpack(data: bytes | memoryview | None) -> np.ndarray:
    if not data:
        return np.empty(0, HIST)
    return np.frombuffer(bytes(data), dtype=HIST)


def hist_sum(parts: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    """Entries of several histograms added up (signed counts: a cumulative row of
    one week minus another's), as a sorted ``HIST`` array without zero counts."""
    ds, vs, cs = [], [], []
    for d, v, c in parts:
        ds.append(np.asarray(d, np.int64))
        vs.append(np.asarray(v, np.int64))
        cs.append(np.asarray(c, np.int64))
    if not ds:
        return np.empty(0, HIST)
    d, v, c = np.concatenate(ds), np.concatenate(vs), np.concatenate(cs)
    key, which = np.unique(d << 32 | v, return_inverse=True)
    total = np.bincount(which.ravel(), weights=c, minlength=key.size)
    # Counts are below 2**53: float sums are exact.
    total = np.rint(total).astype(np.int64)
    keep = total != 0
    out = np.empty(int(keep.sum()), HIST)
    out["d"], out["v"], out["c"] = key[keep] >> 32, key[keep] & 0xFFFFFFFF, total[keep]
    return out


def hist_of(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return arr["d"], arr["v"], arr["c"]


def units_pack(units: np.ndarray, street: np.ndarray, district: np.ndarray, n: np.ndarray) -> bytes:
    """Per-unit counts (``n``: rows of 5) under keys (unit, street, district), sorted."""
    out = np.empty(len(units), UNIT)
    out["unit"], out["street"], out["district"] = units, street, district
    out["n"] = np.asarray(n, np.int64).reshape(-1, 5)
    return np.sort(out, order=["unit", "street", "district"]).tobytes()


def units_unpack(data: bytes | memoryview | None) -> np.ndarray:
    if not data:
        return np.empty(0, UNIT)
    return np.frombuffer(bytes(data), dtype=UNIT)


def units_sum(parts: Iterable[tuple[np.ndarray, int]]) -> np.ndarray:
    """``UNIT`` arrays added up per key, each times its sign (+1 or -1); keys whose
    counts all come to zero are dropped."""
    arrays = [(a, sign) for a, sign in parts if a.size]
    if not arrays:
        return np.empty(0, UNIT)
    units = np.concatenate([a["unit"] for a, _s in arrays])
    street = np.concatenate([a["street"] for a, _s in arrays])
    district = np.concatenate([a["district"] for a, _s in arrays])
    n = np.concatenate([a["n"] * sign for a, sign in arrays])
    keys, which = group_rows(units, street, district)
    g = keys.shape[0]
    sums = np.column_stack(
        [np.bincount(which, weights=n[:, i], minlength=g) for i in range(5)]
    ).astype(np.int64)
    keep = sums.any(axis=1)
    out = np.empty(int(keep.sum()), UNIT)
    out["unit"], out["street"], out["district"] = keys[keep, 0], keys[keep, 1], keys[keep, 2]
    out["n"] = sums[keep]
    return out


# --- building packed rows from columns (seed_incidents and the beat alike) ---------------


def group_rows(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of these integer columns (each >= -1: -1 stands for NULL),
    sorted, and each input row's group. One sort of packed int64 keys when the
    columns fit in 62 bits, else a lexicographic sort."""
    shifted = [np.asarray(c, dtype=np.int64) + 1 for c in columns]
    if any(c.size and c.min() < 0 for c in shifted):
        raise ValueError("a roll-up key column is below -1")
    size = shifted[0].size
    bits = [max(1, int(c.max(initial=0)).bit_length()) for c in shifted]
    if sum(bits) <= 62:
        key = np.zeros(size, dtype=np.int64)
        for column, width in zip(shifted, bits, strict=True):
            key = key << width | column
        packed, group_of = np.unique(key, return_inverse=True)
        groups = np.empty((packed.size, len(columns)), dtype=np.int64)
        for i in range(len(columns) - 1, -1, -1):
            groups[:, i] = (packed & ((1 << bits[i]) - 1)) - 1
            packed = packed >> bits[i]
        return groups, group_of.ravel()
    if not size:
        return np.empty((0, len(columns)), np.int64), np.empty(0, np.int64)
    order = np.lexsort(shifted[::-1])
    ordered = [c[order] for c in shifted]
    change = np.zeros(size, dtype=bool)
    change[0] = True
    for c in ordered:
        change[1:] |= c[1:] != c[:-1]
    group_of = np.empty(size, dtype=np.int64)
    group_of[order] = np.cumsum(change) - 1
    return np.column_stack([c[change] - 1 for c in ordered]), group_of


def count_of(group_of: np.ndarray, mask: np.ndarray, g: int) -> np.ndarray:
    return np.bincount(group_of, weights=mask, minlength=g).astype(np.int64)


def incident_packs(
    keys: list[np.ndarray], durations: list[np.ndarray], ok: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, np.ndarray, list[bytes]]:
    """Incident facts grouped by the ``keys`` columns: (groups, sums, hists) with
    ``sums`` per group [n, ok_responded, ok_controlled, ok_handled, ok_all] and
    each group's packed histogram of the ``durations`` (-1: none)."""
    groups, group_of = group_rows(*keys)
    g = groups.shape[0]
    ok_r, ok_c, ok_h = (np.asarray(f, dtype=bool) for f in ok)
    sums = np.column_stack(
        [
            np.bincount(group_of, minlength=g),
            count_of(group_of, ok_r, g),
            count_of(group_of, ok_c, g),
            count_of(group_of, ok_h, g),
            count_of(group_of, ok_r & ok_c & ok_h, g),
        ]
    ).astype(np.int64)
    return groups, sums.reshape(-1, 5), _hists_of(group_of, g, durations)


def _hists_of(group_of: np.ndarray, g: int, durations: list[np.ndarray]) -> list[bytes]:
    gs, ks = [], []
    for i, values in enumerate(durations):
        values = np.asarray(values, dtype=np.int64)
        has = values >= 0
        gs.append(group_of[has].astype(np.int64))
        ks.append(np.int64(i) << 32 | values[has])
    packed, counts = np.unique(np.concatenate(gs) << 34 | np.concatenate(ks), return_counts=True)
    arr = np.empty(packed.size, HIST)
    arr["d"], arr["v"], arr["c"] = (packed >> 32) & 3, packed & 0xFFFFFFFF, counts
    bounds = np.searchsorted(packed >> 34, np.arange(g + 1))
    return [arr[bounds[i] : bounds[i + 1]].tobytes() for i in range(g)]


def unit_packs(
    keys: list[np.ndarray],
    unit: np.ndarray,
    street: np.ndarray,
    district: np.ndarray,
    accepted: np.ndarray,
    declined: np.ndarray,
    on_site: np.ndarray,
) -> tuple[np.ndarray, list[bytes]]:
    """Dispatch facts counted per ``keys`` (e.g. day and incident district) and unit
    key: (key groups, each group's packed ``UNIT`` records)."""
    k = len(keys)
    groups, group_of = group_rows(*keys, unit, street, district)
    g = groups.shape[0]
    accepted = np.asarray(accepted, dtype=bool)
    declined = np.asarray(declined, dtype=bool)
    n = np.column_stack(
        [
            np.bincount(group_of, minlength=g),
            count_of(group_of, accepted, g),
            count_of(group_of, declined, g),
            count_of(group_of, ~accepted & ~declined, g),
            count_of(group_of, np.asarray(on_site, dtype=bool), g),
        ]
    ).reshape(-1, 5)
    # Groups are sorted: each key's unit records are one run.
    outer, outer_of = group_rows(*(groups[:, i] for i in range(k)))
    bounds = np.searchsorted(outer_of, np.arange(outer.shape[0] + 1))
    packs = []
    for i in range(outer.shape[0]):
        s, e = bounds[i], bounds[i + 1]
        packs.append(units_pack(groups[s:e, k], groups[s:e, k + 1], groups[s:e, k + 2], n[s:e]))
    return outer, packs


def hist_cumulative(
    start: dict, weekly: dict[int, dict], first: int, last: int
) -> Iterable[tuple[int, dict]]:
    """``(week, {key: (sums, HIST array)})`` for each week from ``first`` to
    ``last``: ``start`` (the week before's totals) plus every week's, dense (a
    key keeps its row in weeks it had nothing)."""
    running = dict(start)
    for week in range(first, last + 1):
        for key, (sums, hist) in weekly.get(week, {}).items():
            if key in running:
                was_sums, was_hist = running[key]
                running[key] = (was_sums + sums, hist_sum([hist_of(was_hist), hist_of(hist)]))
            else:
                running[key] = (sums, hist)
        yield week, dict(running)


def units_cumulative(
    start: dict, weekly: dict[int, dict], first: int, last: int
) -> Iterable[tuple[int, dict]]:
    """As ``hist_cumulative`` for packed unit counts: ``{key: UNIT array}``."""
    running = dict(start)
    for week in range(first, last + 1):
        for key, units in weekly.get(week, {}).items():
            running[key] = units_sum([(running[key], 1), (units, 1)]) if key in running else units
        yield week, dict(running)
