"""The response report page: area statistics, trend and units in one read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext as _

from units.models import Region

from .common import targets_s
from .incidents import IncidentFilter
from .rollups import area_stats_many, units_unreliable
from .stats import GroupStats, UnitStats, unit_stats

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
        counts = unit_stats(user=user, filters=filters, durations=False)
        report.unreliable = units_unreliable(counts)
        # The page lists the most-called units; their medians only (fast at any size).
        shown = sorted(counts, key=lambda u: (-u.alerted, u.code))[:UNITS_SHOWN]
        timed = {
            u.unit_id: u
            for u in unit_stats(
                user=user,
                filters=filters,
                unit_ids=[u.unit_id for u in shown] + [u.unit_id for u in report.unreliable],
            )
        }
        report.units = [timed.get(u.unit_id, u) for u in shown]
        report.unreliable = [timed.get(u.unit_id, u) for u in report.unreliable]
        report.unit_count = len(counts)
    return report
