"""Reads of the packed roll-ups (``review.packed``): the city's districts and total
over whole weeks from two cumulative rows per district, the weekly trend from one
row a week, and the whole days at the ends of a range from daily rows; per-unit
counts the same way. Each read answers exactly what the facts would: the
callers add the partial days (facts) and the incidents newer than the facts
(live rows), as for the other roll-ups.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import numpy as np
from django.db.models import Max, Q
from django.utils import timezone

from ..models import (
    CityWeekly,
    DistrictCumulative,
    DistrictWeekly,
    UnitCumulative,
    UnitDaily,
    UnitWeekly,
)
from ..packed import UNIT, units_sum, units_unpack
from .common import _utc_offset_s


def _day_start(day: int) -> dt.datetime:
    return timezone.make_aware(
        dt.datetime.combine(dt.date(1970, 1, 1) + dt.timedelta(days=day), dt.time.min)
    )


def whole_days(since, until) -> tuple[int, int, list[tuple]]:
    """[d0, d1): the whole local days inside [since, until), and the partial pieces
    at either end as (since, until) pairs, read from the facts."""
    if since is None or until is None:
        return 0, 0, [(since, until)]
    offset = _utc_offset_s()
    d0 = (int(since.timestamp()) + offset) // 86400
    if _day_start(d0) < since:
        d0 += 1
    d1 = (int(until.timestamp()) + offset) // 86400
    if d1 <= d0:
        return 0, 0, [(since, until)]
    pieces = []
    if since < _day_start(d0):
        pieces.append((since, _day_start(d0)))
    if _day_start(d1) < until:
        pieces.append((_day_start(d1), until))
    return d0, d1, pieces


def _last_week(model) -> int | None:
    return model.objects.aggregate(m=Max("week"))["m"]


def city_packed_built() -> int | None:
    """The last week of the packed city roll-ups when they are built up to the
    weekly ones' last week, else None (not built yet, or being built)."""
    last = _last_week(DistrictWeekly)
    if last is None or _last_week(DistrictCumulative) != last or _last_week(CityWeekly) != last:
        return None
    return last


def units_packed_built() -> int | None:
    """As ``city_packed_built``, for the units' packed roll-ups."""
    last = _last_week(UnitWeekly)
    if last is None or _last_week(UnitCumulative) != last:
        return None
    return last


# --- units -------------------------------------------------------------------------------


def unit_area(area: Q) -> tuple[Q, Callable[[np.ndarray], np.ndarray]] | None:
    """``area`` (``facts._area_q`` with ``unit_scope``) as a filter on the packed
    unit tables' incident district and a mask over their ``UNIT`` records; None
    when they cannot answer it (a street, a kind)."""
    table = Q()
    checks: list[tuple[str, Any]] = []

    def walk(q: Q) -> bool:
        if q.negated or (q.connector != Q.AND and len(q.children) > 1):
            return False
        for child in q.children:
            if isinstance(child, Q):
                if not walk(child):
                    return False
                continue
            lookup, value = child
            if lookup == "district_id":
                nonlocal table
                table &= Q(district_id=value)
            elif lookup in ("unit_district_id", "unit_street_id"):
                checks.append((lookup.removeprefix("unit_").removesuffix("_id"), value))
            elif lookup == "pk__in" and not value:
                table &= Q(pk__in=[])
            else:
                return False
        return True

    if not walk(area):
        return None

    def mask(units: np.ndarray) -> np.ndarray:
        keep = np.ones(units.size, dtype=bool)
        for field, value in checks:
            keep &= units[field] == value
        return keep

    return table, mask


def unit_parts(
    *,
    table: Q,
    mask: Callable[[np.ndarray], np.ndarray],
    last: int,
    w0: int,
    w1: int,
    pieces: list[tuple],
) -> tuple[list[np.ndarray], list[tuple]]:
    """Per-unit counts ``[unit_id, alerted, accepted, declined, no_answer, on_site]``
    of the whole weeks [w0, w1) and the whole days of ``pieces``, and the pieces
    left for the facts."""
    signed: list[tuple[np.ndarray, int]] = []
    through, before = min(w1 - 1, last), w0 - 1
    if w1 > w0 and through >= w0:
        rows = UnitCumulative.objects.filter(table, week__in=[through, before])
        for week, units in rows.values_list("week", "units"):
            signed.append((units_unpack(units), 1 if week == through else -1))
    left: list[tuple] = []
    for since, until in pieces:
        d0, d1, rest = whole_days(since, until)
        left += rest
        if d1 > d0:
            rows = UnitDaily.objects.filter(table, day__gte=d0, day__lt=d1)
            signed += [(units_unpack(units), 1) for units in rows.values_list("units", flat=True)]
    summed = units_sum((u[mask(u)], sign) for u, sign in signed) if signed else np.empty(0, UNIT)
    return [np.column_stack([summed["unit"], summed["n"]]).reshape(-1, 6)], left
