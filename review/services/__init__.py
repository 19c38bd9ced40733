"""Review writes, by concern: coverage-gap snapshots, drills, fact roll-ups.

The package re-exports the public names, so callers import ``review.services``.
"""

from .coverage import METRES_PER_DEGREE_LAT, coverage_compute, coverage_grid
from .drills import (
    DRILL_STARTER_ROLES,
    DrillRefused,
    drill_close,
    drill_region_resolve,
    drill_send_batch,
    drill_start,
)
from .rollups import (
    FACTS_CHUNK,
    facts_sync,
    index_snapshots_refresh,
    rollups_rebuild,
    unit_cumulative_rebuild,
)

__all__ = [
    "DRILL_STARTER_ROLES",
    "FACTS_CHUNK",
    "METRES_PER_DEGREE_LAT",
    "DrillRefused",
    "coverage_compute",
    "coverage_grid",
    "drill_close",
    "drill_region_resolve",
    "drill_send_batch",
    "drill_start",
    "facts_sync",
    "index_snapshots_refresh",
    "rollups_rebuild",
    "unit_cumulative_rebuild",
]
