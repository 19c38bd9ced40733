"""Area statistics from the weekly roll-ups and facts, with the live incidents
newer than the facts merged in; counts for the paginator; unreliable units.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db.models import (
    Count,
    Q,
    QuerySet,
)

from ..models import IncidentFact, WeeklyRollup
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


def _rollup_stats(qs: QuerySet, groups: Sequence[str | None]) -> dict[str | None, list[GroupStats]]:
    """Sum roll-up rows into stats per grouping column (None: one total), one read."""
    stats: dict[str | None, dict[Any, GroupStats]] = {g: {} for g in groups}
    rows = qs.order_by().values_list(
        "district_id", "street_id", "week",
        "n", "ok_responded", "ok_controlled", "ok_handled", "ok_all", "hist",
    )  # fmt: skip
    column = {"district_id": 0, "street_id": 1, "week": 2}
    for row in rows:
        n, ok_r, ok_c, ok_h, ok_all, hist = row[3:]
        for g in groups:
            key = row[column[g]] if g else None
            s = stats[g].get(key)
            if s is None:
                s = stats[g][key] = GroupStats(key=key, ok={step: 0 for step in STEPS})
            s.incidents += n
            s.compliant += ok_all
            s.ok["responded"] += ok_r
            s.ok["controlled"] += ok_c
            s.ok["handled"] += ok_h
            for name, counts in hist.items():
                into = s.hist.setdefault(name, {})
                for value, count in counts.items():  # JSON keys: seconds as text
                    into[value] = into.get(value, 0) + count
    out = {}
    for g, rows in stats.items():
        for r in rows.values():
            r.hist = {name: {int(v): c for v, c in h.items()} for name, h in r.hist.items()}
        out[g] = list(rows.values())
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
