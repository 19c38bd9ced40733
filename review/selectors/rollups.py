"""Area statistics from the weekly roll-ups and facts, with the live incidents
newer than the facts merged in; counts for the paginator; unreliable units.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import repeat
from typing import Any

import numpy as np
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import (
    Q,
    QuerySet,
)

from ..models import (
    CityWeekly,
    DistrictCumulative,
    DistrictDaily,
    DistrictWeekly,
    IncidentFact,
    WeeklyRollup,
)
from ..packed import hist_sum, hist_unpack
from .common import DURATIONS, STEPS
from .facts import _area_q, _facts_q, _newer_than, _time_q, _whole_weeks, facts_watermark
from .incidents import IncidentFilter, incident_list
from .packed import city_packed_built, whole_days
from .stats import GroupStats, UnitStats, _merge, incident_stats

_FACT_GROUPS = {"district": "district_id", "street": "street_id", "week": "week", None: None}


def area_stats(*, user, filters: IncidentFilter, by: str | None) -> list[GroupStats]:
    """``incident_stats`` of ``incident_list(user, filters)``, from three exact parts:
    the weekly roll-ups for whole weeks, the facts for the partial weeks at the
    ends of the range, and the live rows of incidents newer than the facts."""
    return area_stats_many(user=user, filters=filters, bys=[by])[by]


def area_stats_many(
    *, user, filters: IncidentFilter, bys: Sequence[str | None]
) -> dict[str | None, list[GroupStats]]:
    """``area_stats`` for several groupings, reading the weekly roll-ups once."""
    live = incident_list(user=user, filters=filters)
    watermark = facts_watermark()
    area = _area_q(user=user, filters=filters) if watermark else None
    if area is None:
        return {by: incident_stats(qs=live, by=by) for by in bys}

    parts: dict[str | None, list[list[GroupStats]]] = {by: [] for by in bys}
    newer = _newer_than(live, watermark)
    pieces: list[tuple] = [(filters.since, filters.until)]
    if filters.compliant is None:
        w0, w1, pieces = _whole_weeks(filters.since, filters.until)
        city = _city_q(area) if set(bys) <= {None, "week", "district"} else None
        last = city_packed_built() if city is not None else None
        if last is not None:
            # The city: two cumulative rows per district, a row a week for the
            # trend, daily rows for the whole days of the partial weeks.
            packed, pieces = city_parts(
                located=city, last=last, w0=w0, w1=w1, pieces=pieces, bys=bys
            )
            for by, rows in packed.items():
                parts[by].append(rows)
        elif w1 > w0:
            rollups = WeeklyRollup.objects.filter(area, week__gte=w0, week__lt=w1)
            if city is not None:
                rollups = DistrictWeekly.objects.filter(city, week__gte=w0, week__lt=w1)
            by_column = {_FACT_GROUPS[b]: b for b in bys}
            for column, rows in _rollup_stats(rollups, list(by_column)).items():
                parts[by_column[column]].append(rows)
    for by in bys:
        if newer is not None:
            parts[by].append(incident_stats(qs=newer, by=by))
    for since, until in pieces:
        q = area & _time_q(since, until)
        if filters.compliant is not None:
            q &= Q(ok_all=filters.compliant)
        for by, rows in _fact_stats_many(IncidentFact.objects.filter(q), bys).items():
            parts[by].append(rows)
    return {by: _merge(parts[by], by=by) for by in bys}


# --- the city from the packed roll-ups ----------------------------------------------------

_SUMS = ("n", "ok_responded", "ok_controlled", "ok_handled", "ok_all")

_Entry = tuple[Any, np.ndarray, np.ndarray, int]  # key, sums, HIST entries, sign


def city_parts(
    *,
    located: Q,
    last: int,
    w0: int,
    w1: int,
    pieces: list[tuple],
    bys: Sequence[str | None],
) -> tuple[dict[str | None, list[GroupStats]], list[tuple]]:
    """Stats per grouping (None, "week", "district") of the whole weeks [w0, w1)
    and the whole days of ``pieces``, and the pieces left for the facts.
    ``located``: a filter on the roll-ups' ``located`` (city staff see only
    incidents with a region)."""
    entries: dict[str | None, list[_Entry]] = {by: [] for by in bys}
    through, before = min(w1 - 1, last), w0 - 1
    if w1 > w0 and through >= w0:
        if {None, "district"} & set(bys):
            rows = DistrictCumulative.objects.filter(located, week__in=[through, before])
            for week, district, hist, *sums in rows.values_list(
                "week", "district_id", "hist", *_SUMS
            ):
                sign = 1 if week == through else -1
                entry = (np.array(sums, np.int64), hist_unpack(hist), sign)
                for by in {None, "district"} & set(bys):
                    entries[by].append((district if by else None, *entry))
        if "week" in bys:
            rows = CityWeekly.objects.filter(located, week__gte=w0, week__lt=w1)
            for week, hist, *sums in rows.values_list("week", "hist", *_SUMS):
                entries["week"].append((week, np.array(sums, np.int64), hist_unpack(hist), 1))
    left: list[tuple] = []
    for since, until in pieces:
        d0, d1, rest = whole_days(since, until)
        left += rest
        if d1 <= d0:
            continue
        rows = DistrictDaily.objects.filter(located, day__gte=d0, day__lt=d1)
        for day, district, hist, *sums in rows.values_list("day", "district_id", "hist", *_SUMS):
            entry = (np.array(sums, np.int64), hist_unpack(hist), 1)
            keys = {None: None, "week": (day + 3) // 7, "district": district}
            for by in bys:
                entries[by].append((keys[by], *entry))
    return {by: _group_stats(rows) for by, rows in entries.items()}, left


def _group_stats(entries: list[_Entry]) -> list[GroupStats]:
    grouped: dict[Any, list[_Entry]] = {}
    for entry in entries:
        grouped.setdefault(entry[0], []).append(entry)
    out = []
    for key, items in grouped.items():
        n, ok_r, ok_c, ok_h, ok_all = (int(x) for x in sum(s * sign for _k, s, _h, sign in items))
        if not n:
            continue  # a district with incidents before the range only
        hist = hist_sum((h["d"], h["v"], h["c"] * sign) for _k, _s, h, sign in items)
        stats = GroupStats(
            key=key,
            incidents=n,
            compliant=ok_all,
            ok=dict(zip(STEPS, (ok_r, ok_c, ok_h), strict=True)),
        )
        for i, name in enumerate(DURATIONS):
            mine = hist[hist["d"] == i]
            if mine.size:
                stats.hist[name] = dict(zip(mine["v"].tolist(), mine["c"].tolist(), strict=True))
        out.append(stats)
    return out


_FACT_FLAGS = ("ok_responded", "ok_controlled", "ok_handled", "ok_all")


def _fact_stats_many(qs: QuerySet, bys: Sequence[str | None]) -> dict[str | None, list[GroupStats]]:
    """``_fact_stats`` for several groupings from one read of the facts: the ends
    of a range hold days of facts, and four grouped queries per grouping scanned
    them a dozen times."""
    columns = list(dict.fromkeys(_FACT_GROUPS[by] for by in bys if by))
    # Fetched by the cursor: Django's per-value converters (booleans) cost more
    # than the query for tens of thousands of rows. Flags come as 0/1 or bools.
    try:
        sql, params = (
            qs.order_by().values_list(*columns, *DURATIONS, *_FACT_FLAGS).query.sql_with_params()
        )
    except EmptyResultSet:  # a filter nothing can match (``pk__in=[]``)
        return {by: [] for by in bys}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    k = len(columns)
    out: dict[str | None, list[GroupStats]] = {}
    if not rows:
        return {by: [] for by in bys}
    table = list(zip(*rows, strict=True))
    flags = np.array(table[k + len(DURATIONS) :], dtype=np.int64)  # (4, n)
    durations = {
        name: np.array([-1 if v is None else v for v in table[k + i]], dtype=np.int64)
        for i, name in enumerate(DURATIONS)
    }
    for by in bys:
        if by in out:
            continue
        if by is None:
            keys, owner = [None], np.zeros(len(rows), dtype=np.int64)
        else:
            index: dict[Any, int] = {}
            column = table[columns.index(_FACT_GROUPS[by])]
            owner = np.fromiter(
                (index.setdefault(v, len(index)) for v in column), dtype=np.int64, count=len(rows)
            )
            keys = list(index)
        g = len(keys)
        n = np.bincount(owner, minlength=g).tolist()
        ok = [np.bincount(owner, weights=f, minlength=g).astype(np.int64).tolist() for f in flags]
        stats = [
            GroupStats(
                key=key,
                incidents=n[i],
                compliant=ok[3][i],
                ok={"responded": ok[0][i], "controlled": ok[1][i], "handled": ok[2][i]},
            )
            for i, key in enumerate(keys)
        ]
        for name, values in durations.items():
            has = values >= 0
            packed, counts = np.unique(owner[has] << 32 | values[has], return_counts=True)
            for pair, count in zip(packed.tolist(), counts.tolist(), strict=True):
                stats[pair >> 32].hist.setdefault(name, {})[pair & 0xFFFFFFFF] = count
        out[by] = stats
    return out


def _city_q(area: Q) -> Q | None:
    """``area`` as a filter on ``DistrictWeekly`` when it is the whole city (no kind):
    all incidents, or (city staff) those with a region; else None."""
    if area == Q():
        return Q()
    if area == Q(region_id__isnull=False):
        return Q(located=True)
    return None


def _rollup_stats(qs: QuerySet, groups: Sequence[str | None]) -> dict[str | None, list[GroupStats]]:
    """Sum roll-up rows into stats per grouping column (None: one total), one read.

    The rows are first summed into the finest groups the groupings need (each
    histogram entry kept in flat lists), then each grouping adds those up with
    numpy: a year of street roll-ups holds millions of histogram entries, too
    many to merge dict by dict for every grouping."""
    names = list(dict.fromkeys(g for g in groups if g))
    k = len(names)
    fine: dict[tuple, int] = {}
    sums: list[list[int]] = []
    entries: dict[str, tuple[list, list, list]] = {name: ([], [], []) for name in DURATIONS}
    rows = qs.order_by().values_list(
        *names, "n", "ok_responded", "ok_controlled", "ok_handled", "ok_all", "hist"
    )
    for row in rows:
        key = row[:k]
        at = fine.get(key)
        if at is None:
            at = fine[key] = len(sums)
            sums.append([0, 0, 0, 0, 0])
        total = sums[at]
        for i in range(5):
            total[i] += row[k + i]
        for name, counts in row[k + 5].items():
            into = entries.get(name)
            if into is None or not counts:
                continue
            into[0].extend(repeat(at, len(counts)))
            into[1].extend(counts)  # JSON keys: seconds as text
            into[2].extend(counts.values())
    fine_keys = list(fine)
    fine_sums = np.asarray(sums, dtype=np.int64).reshape(-1, 5)
    parsed = {
        name: (
            np.asarray(at, dtype=np.int64),
            np.asarray(values, dtype=np.int64) if values else np.empty(0, np.int64),
            np.asarray(counts, dtype=np.int64),
        )
        for name, (at, values, counts) in entries.items()
    }
    out: dict[str | None, list[GroupStats]] = {}
    for g in groups:
        if g in out:
            continue
        column = names.index(g) if g else None
        keys: dict[Any, int] = {}
        owner = np.fromiter(
            (keys.setdefault(key[column] if g else None, len(keys)) for key in fine_keys),
            dtype=np.int64,
            count=len(fine_keys),
        )
        stats = [GroupStats(key=key, ok={step: 0 for step in STEPS}) for key in keys]
        totals = np.zeros((len(keys), 5), dtype=np.int64)
        np.add.at(totals, owner, fine_sums)
        for s, (n, ok_r, ok_c, ok_h, ok_all) in zip(stats, totals.tolist(), strict=True):
            s.incidents, s.compliant = n, ok_all
            s.ok["responded"], s.ok["controlled"], s.ok["handled"] = ok_r, ok_c, ok_h
        for name, (at, values, counts) in parsed.items():
            if not values.size:
                continue
            packed, which = np.unique(owner[at] << 32 | values, return_inverse=True)
            added = np.bincount(which.ravel(), weights=counts).astype(np.int64)
            for pair, count in zip(packed.tolist(), added.tolist(), strict=True):
                stats[pair >> 32].hist.setdefault(name, {})[pair & 0xFFFFFFFF] = count
        out[g] = stats
    return out


def units_unreliable(
    stats: Iterable[UnitStats], *, min_alerts: int = 3, limit: int = 20
) -> list[UnitStats]:
    """Units that often decline or never answer: (declined + no answer) / alerted,
    among units alerted at least ``min_alerts`` times, worst first."""
    rows = [s for s in stats if s.alerted >= min_alerts and (s.declined + s.no_answer)]
    rows.sort(key=lambda s: (-(s.declined + s.no_answer) / s.alerted, -s.alerted, s.code))
    return rows[:limit]


def incident_count(*, user, filters: IncidentFilter) -> int:
    """``incident_list(user, filters).count()``, from the facts' covering index plus
    the live newer incidents: counting 150,000 incident rows takes SQLite a second."""
    live = incident_list(user=user, filters=filters)
    watermark = facts_watermark()
    q = _facts_q(user=user, filters=filters) if watermark else None
    if q is None:
        return live.count()

    newer = _newer_than(live, watermark)
    return IncidentFact.objects.filter(q).count() + (newer.count() if newer is not None else 0)


class CountedList:
    """A queryset whose ``count()`` comes from elsewhere (for the paginator)."""

    def __init__(self, qs: QuerySet, count: int) -> None:
        self.qs, self._count = qs, count

    def count(self) -> int:
        return self._count

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, item):
        return self.qs[item]
