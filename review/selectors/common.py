"""Shared inputs of the review pages: the durations and targets, time ranges,
the region a reviewer asks for, percentiles from histograms, week numbers.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from django.conf import settings
from django.db.models import (
    Count,
    QuerySet,
)
from django.utils import timezone
from django.utils.translation import gettext as _

from units.models import Region
from units.scoping import user_scope

from ..expressions import WEEK_S

# The three durations of the four firsts, from discovery.
DURATIONS: tuple[str, ...] = ("to_response_s", "to_control_s", "to_handling_s")
_DURATION_FIELDS = {
    "to_response_s": "responded_at",
    "to_control_s": "controlled_at",
    "to_handling_s": "handled_at",
}
# 1-3-5 steps and the duration each is judged on.
STEPS: dict[str, str] = {
    "responded": "to_response_s",
    "controlled": "to_control_s",
    "handled": "to_handling_s",
}
PERCENTILES = (0.5, 0.9)


class ReviewInputError(ValueError):
    """Bad filter input (dates, kind, region): the edge answers 400 with ``errors``."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class OutOfScope(PermissionError):
    """The region exists but lies outside the user's scope (the edge answers 404/403)."""


# --- input ------------------------------------------------------------------------------


def targets_s() -> dict[str, int]:
    return {step: int(settings.RESPONSE_TARGETS_S[step]) for step in STEPS}


def _parse_moment(value: str, *, end_of_day: bool) -> dt.datetime:
    value = value.strip()
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            moment = dt.datetime.combine(day, dt.time.min)
            if end_of_day:
                moment += dt.timedelta(days=1)
            return timezone.make_aware(moment)
        moment = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(value) from exc
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def time_range_parse(
    *, since: str | None, until: str | None, default_days: int = 90, max_days: int = 3660
) -> tuple[dt.datetime, dt.datetime]:
    """``since``/``until`` as dates (``2024-05-01``, ``until`` inclusive) or ISO times.

    Missing ``until`` is now; missing ``since`` is ``default_days`` before ``until``.
    Raises ReviewInputError for unreadable dates, an empty or reversed range, or
    one longer than ``max_days``.
    """
    errors: dict[str, str] = {}
    start = end = None
    if until:
        try:
            end = _parse_moment(until, end_of_day=True)
        except ValueError:
            errors["until"] = _("日期格式无效，应为 YYYY-MM-DD 或 ISO 8601 时间。")
    if since:
        try:
            start = _parse_moment(since, end_of_day=False)
        except ValueError:
            errors["since"] = _("日期格式无效，应为 YYYY-MM-DD 或 ISO 8601 时间。")
    if errors:
        raise ReviewInputError(errors)
    end = end or timezone.now()
    start = start or end - dt.timedelta(days=default_days)
    if start >= end:
        raise ReviewInputError({"since": _("开始时间必须早于结束时间。")})
    if end - start > dt.timedelta(days=max_days):
        raise ReviewInputError({"since": _("时间范围不能超过 %(d)s 天。") % {"d": max_days}})
    return start, end


def region_for_review(*, user, code: str | None) -> Region | None:
    """The region named by ``code`` if the user may review it.

    ``None``/empty code means the user's own scope (None for a superuser: the
    whole city). Unknown code: ReviewInputError. Known but outside the user's
    subtree: OutOfScope. Never another district's data.
    """
    scope = user_scope(user)  # PermissionError for a user with no staff role
    if not code:
        return scope
    region = Region.objects.filter(code=code).first()
    if region is None:
        raise ReviewInputError({"district": _("未知的区域编码：%(c)s") % {"c": code}})
    if scope is not None and not region.path.startswith(scope.path):
        raise OutOfScope(code)
    return region


# --- percentiles ------------------------------------------------------------------------


def percentile_cont(histogram: Sequence[tuple[int, int]], p: float) -> float | None:
    """PostgreSQL's ``percentile_cont(p)`` over values given as sorted (value, count).

    Linear interpolation between the two nearest ranks, as PostgreSQL does.
    """
    n = sum(c for _v, c in histogram)
    if n == 0:
        return None
    pos = p * (n - 1)
    lo_rank, hi_rank = math.floor(pos), math.ceil(pos)
    lo = hi = None
    seen = 0
    for value, count in histogram:
        if lo is None and lo_rank < seen + count:
            lo = value
        if hi_rank < seen + count:
            hi = value
            break
        seen += count
    assert lo is not None and hi is not None
    return lo + (hi - lo) * (pos - lo_rank)


def hist_percentiles(hist: dict[int, int], ps: Sequence[float]) -> tuple[int, list[float | None]]:
    """(count, [``percentile_cont(p)`` for p in ps]) of a {value: count} histogram,
    with numpy: a city-wide report finishes a few hundred histograms of up to
    thousands of distinct seconds each. Same interpolation, same floats."""
    if not hist:
        return 0, [None for _p in ps]
    values = np.fromiter(hist.keys(), dtype=np.int64, count=len(hist))
    counts = np.fromiter(hist.values(), dtype=np.int64, count=len(hist))
    order = np.argsort(values, kind="stable")
    values, seen = values[order], np.cumsum(counts[order])
    n = int(seen[-1])
    if n == 0:
        return 0, [None for _p in ps]
    out: list[float | None] = []
    for p in ps:
        pos = p * (n - 1)
        lo_rank, hi_rank = math.floor(pos), math.ceil(pos)
        # the first value whose cumulative count passes the rank
        lo = int(values[np.searchsorted(seen, lo_rank, side="right")])
        hi = int(values[np.searchsorted(seen, hi_rank, side="right")])
        out.append(lo + (hi - lo) * (pos - lo_rank))
    return n, out


def _histograms(
    qs: QuerySet, *, group: str | None, names: Iterable[str]
) -> dict[Any, dict[str, list[tuple[int, int]]]]:
    """{group value: {duration name: sorted [(seconds, count)]}}, one GROUP BY per name."""
    out: dict[Any, dict[str, list[tuple[int, int]]]] = defaultdict(dict)
    for name in names:
        keys = [group, name] if group else [name]
        rows = (
            qs.filter(**{f"{name}__isnull": False})
            .order_by()
            .values(*keys)
            .annotate(c=Count("*"))
            .values_list(*keys, "c")
            .order_by(*keys)
        )
        for row in rows:
            g = row[0] if group else None
            out[g].setdefault(name, []).append((row[-2], row[-1]))
    return out


def _utc_offset_s() -> int:
    offset = timezone.localtime().utcoffset()
    return int(offset.total_seconds()) if offset else 0


def week_start(week: int) -> dt.date:
    """The Monday (local date) that starts week number ``week`` of ``WeekNumber``."""
    return dt.date(1969, 12, 29) + dt.timedelta(days=7 * week)


def week_bounds(week: int) -> tuple[dt.datetime, dt.datetime]:
    start = timezone.make_aware(dt.datetime.combine(week_start(week), dt.time.min))
    return start, start + dt.timedelta(seconds=WEEK_S)
