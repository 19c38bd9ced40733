"""Area statistics from the weekly roll-ups and facts, with the live incidents
newer than the facts merged in; counts for the paginator; unreliable units.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import repeat
from typing import Any

import numpy as np
from django.db.models import (
    Count,
    Q,
    QuerySet,
)

from ..models import DistrictWeekly, IncidentFact, WeeklyRollup
from .common import DURATIONS, STEPS, _histograms
from .facts import _area_q, _facts_q, _newer_than, _time_q, _whole_weeks, facts_watermark
from .incidents import IncidentFilter, incident_list
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
        if w1 > w0:
            rollups = WeeklyRollup.objects.filter(area, week__gte=w0, week__lt=w1)
            city = _city_q(area) if set(bys) <= {None, "week", "district"} else None
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
            parts[by].append(_fact_stats(IncidentFact.objects.filter(q), _FACT_GROUPS[by]))
    return {by: _merge(parts[by], by=by) for by in bys}


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


def _fact_stats(qs: QuerySet, group: str | None) -> list[GroupStats]:
    base = qs.order_by()
    aggregates = {
        "n": Count("*"),
        "n_ok_all": Count("pk", filter=Q(ok_all=True)),
        **{f"n_ok_{step}": Count("pk", filter=Q(**{f"ok_{step}": True})) for step in STEPS},
    }
    rows = base.values(group).annotate(**aggregates) if group else [base.aggregate(**aggregates)]
    stats: dict[Any, GroupStats] = {}
    for row in rows:
        key = row.get(group) if group else None
        if not row["n"]:
            continue
        stats[key] = GroupStats(
            key=key,
            incidents=row["n"],
            compliant=row["n_ok_all"],
            ok={step: row[f"n_ok_{step}"] for step in STEPS},
        )
    for key, hists in _histograms(base, group=group, names=DURATIONS).items():
        if key in stats:
            for name, hist in hists.items():
                stats[key].hist[name] = dict(hist)
    return list(stats.values())


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
