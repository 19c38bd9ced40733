"""The response report page: area statistics, trend and units in one read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from django.utils.translation import gettext as _

from units.models import Region, Unit

from .common import targets_s
from .incidents import IncidentFilter
from .rollups import area_stats_many, units_unreliable
from .stats import COUNTS, GroupStats, UnitStats, unit_counts, unit_stats

# --- the report -------------------------------------------------------------------------


@dataclass
class ResponseReport:
    filters: IncidentFilter
    by: str | None  # how ``areas`` is grouped: "district", "street" or None
    total: GroupStats
    areas: list[GroupStats]
    weeks: list[GroupStats]
    units: list[UnitStats] | None = None
    unreliable: list[UnitStats] | None = None
    unit_count: int = 0

    def as_dict(self) -> dict[str, Any]:
        region = self.filters.region
        return {
            "region": {"code": region.code, "name": region.name, "level": region.level}
            if region
            else None,
            "since": self.filters.since.isoformat() if self.filters.since else None,
            "until": self.filters.until.isoformat() if self.filters.until else None,
            "kind": self.filters.kind,
            "targets_s": targets_s(),
            "grouped_by": self.by,
            "total": self.total.as_dict(),
            "areas": [a.as_dict() for a in self.areas],
            "weeks": [w.as_dict() for w in self.weeks],
            **(
                {
                    "units": [u.as_dict() for u in self.units],
                    "unreliable_units": [u.as_dict() for u in self.unreliable or []],
                }
                if self.units is not None
                else {}
            ),
        }


UNITS_SHOWN = 200
UNRELIABLE_MIN_ALERTS = 3  # units_unreliable's defaults
UNRELIABLE_SHOWN = 20


def area_grouping(region: Region | None) -> str | None:
    """A city (or no region) breaks down by district, a district by street."""
    if region is None or region.level == Region.Level.CITY:
        return "district"
    if region.level == Region.Level.DISTRICT:
        return "street"
    return None


def response_report(*, user, filters: IncidentFilter, with_units: bool = True) -> ResponseReport:
    """Totals, the breakdown one level down, the weekly trend and (optionally) units."""
    by = area_grouping(filters.region)
    stats = area_stats_many(user=user, filters=filters, bys=[None, "week", *([by] if by else [])])
    totals = stats[None]
    report = ResponseReport(
        filters=filters,
        by=by,
        total=totals[0] if totals else GroupStats(key=None, label=_("合计")),
        areas=stats[by] if by else [],
        weeks=stats["week"],
    )
    if with_units:
        counts = unit_counts(user=user, filters=filters)
        shown, unreliable = _units_listed(counts)
        # The page lists the most-called units; their medians only (fast at any size).
        listed = [u.unit_id for u in shown + unreliable]
        timed = {
            u.unit_id: u
            for u in (
                unit_stats(user=user, filters=filters, unit_ids=listed, counts=False)
                if listed
                else []
            )
        }
        for u in shown + unreliable:
            if u.unit_id in timed:
                u.hist, u.durations = timed[u.unit_id].hist, timed[u.unit_id].durations
        report.units, report.unreliable = shown, unreliable
        report.unit_count = len(counts)
    return report


def _units_listed(counts: np.ndarray) -> tuple[list[UnitStats], list[UnitStats]]:
    """The ``UNITS_SHOWN`` most-alerted units (ties by code) and ``units_unreliable``
    of ``unit_counts`` rows, as counted ``UnitStats`` with labels. Only the
    candidates (the rows at or above each list's cut, ties included) become
    objects: the city has 23,000 units."""
    if not len(counts):
        return [], []
    alerted = counts[:, 1]
    cut = np.sort(alerted)[::-1][min(UNITS_SHOWN, alerted.size) - 1]
    bad = counts[:, 3] + counts[:, 4]
    worse = (alerted >= UNRELIABLE_MIN_ALERTS) & (bad > 0)
    share = np.where(worse, bad / np.maximum(alerted, 1), -1.0)
    if worse.sum() > UNRELIABLE_SHOWN:
        order = np.lexsort((-alerted, -share))[UNRELIABLE_SHOWN - 1]
        worse &= (share > share[order]) | ((share == share[order]) & (alerted >= alerted[order]))
    rows = counts[(alerted >= cut) | worse]
    stats = [UnitStats(int(r[0]), **dict(zip(COUNTS, map(int, r[1:]), strict=True))) for r in rows]
    labels = Unit.objects.filter(pk__in=[s.unit_id for s in stats]).values_list(
        "pk", "code", "name", "region__name"
    )
    by_id = {s.unit_id: s for s in stats}
    for pk, code, name, street in labels:
        s = by_id[pk]
        s.code, s.name, s.street = code, name, street
    shown = sorted(stats, key=lambda u: (-u.alerted, u.code))[:UNITS_SHOWN]
    unreliable = units_unreliable(stats, min_alerts=UNRELIABLE_MIN_ALERTS, limit=UNRELIABLE_SHOWN)
    return shown, unreliable
