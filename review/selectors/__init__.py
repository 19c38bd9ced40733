"""Review reads, by concern: incidents with durations and 1-3-5 compliance,
aggregates per district, street and unit, weekly trends, roll-ups, exports,
arrival proof and responder trails, maps, drills.

Everything is scoped: a reviewer sees only their own region's subtree
(``units.scoping``). Aggregates run in the database; medians and p90 come from
per-second histograms computed by a GROUP BY (exact, and the same on SQLite,
which has no percentile functions, and PostgreSQL).

This package re-exports the public names, so callers import ``review.selectors``.
"""

from .arrival import (
    ArrivalCheck,
    arrival_checks,
)
from .common import (
    DURATIONS,
    PERCENTILES,
    STEPS,
    OutOfScope,
    ReviewInputError,
    percentile_cont,
    region_for_review,
    targets_s,
    time_range_parse,
    week_bounds,
    week_start,
)
from .drills import (
    DRILL_ACK_TARGET_S,
    DRILL_ARRIVE_TARGET_S,
    DrillRow,
    DrillUnitLine,
    PaidEstimate,
    drill_league,
    drill_leagues,
    drill_paid_estimate,
    drill_report,
    drills_visible,
)
from .exports import (
    EXPORT_MAX_ROWS,
    incident_export_rows,
    stats_export_rows,
    unit_export_rows,
)
from .facts import (
    LIVE_IDS_MAX,
    facts_watermark,
)
from .incidents import (
    IncidentFilter,
    Trail,
    compliant_q,
    incident_durations_s,
    incident_filter_build,
    incident_for_review,
    incident_list,
    incident_reach,
    incident_timeline,
    incidents_annotated,
    responder_trails,
)
from .maps import (
    coverage_cells,
    map_points,
    scope_districts,
)
from .report import (
    UNITS_SHOWN,
    ResponseReport,
    area_grouping,
    response_report,
)
from .rollups import (
    CountedList,
    area_stats,
    area_stats_many,
    incident_count,
    units_unreliable,
)
from .snapshots import (
    index_snapshot_area,
    index_snapshot_for,
)
from .stats import (
    GROUPS,
    DurationStats,
    GroupStats,
    UnitStats,
    dispatches_annotated,
    incident_stats,
    unit_counts,
    unit_stats,
)

__all__ = [
    "ArrivalCheck",
    "CountedList",
    "DRILL_ACK_TARGET_S",
    "DRILL_ARRIVE_TARGET_S",
    "DURATIONS",
    "DrillRow",
    "DrillUnitLine",
    "DurationStats",
    "EXPORT_MAX_ROWS",
    "GROUPS",
    "GroupStats",
    "IncidentFilter",
    "LIVE_IDS_MAX",
    "OutOfScope",
    "PERCENTILES",
    "ResponseReport",
    "ReviewInputError",
    "STEPS",
    "Trail",
    "UNITS_SHOWN",
    "UnitStats",
    "area_grouping",
    "area_stats",
    "area_stats_many",
    "arrival_checks",
    "compliant_q",
    "coverage_cells",
    "dispatches_annotated",
    "drill_league",
    "drill_leagues",
    "drill_paid_estimate",
    "PaidEstimate",
    "drill_report",
    "drills_visible",
    "facts_watermark",
    "incident_count",
    "incident_durations_s",
    "incident_export_rows",
    "incident_filter_build",
    "incident_for_review",
    "incident_reach",
    "incident_list",
    "incident_stats",
    "incident_timeline",
    "index_snapshot_area",
    "index_snapshot_for",
    "incidents_annotated",
    "map_points",
    "percentile_cont",
    "region_for_review",
    "responder_trails",
    "response_report",
    "scope_districts",
    "stats_export_rows",
    "targets_s",
    "time_range_parse",
    "unit_export_rows",
    "unit_counts",
    "unit_stats",
    "units_unreliable",
    "week_bounds",
    "week_start",
]
