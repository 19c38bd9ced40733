"""Aggregates: 1-3-5 statistics per district, street, week, and per unit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import (
    Count,
    Exists,
    OuterRef,
    Q,
    QuerySet,
    Sum,
)
from django.utils.translation import gettext as _

from dispatch.models import Dispatch, Incident, IncidentEvent
from units.models import Region, Unit

from ..expressions import SecondsBetween, WeekNumber
from ..models import DispatchFact, UnitWeekly
from .common import (
    DURATIONS,
    STEPS,
    _histograms,
    _utc_offset_s,
    hist_percentiles,
    targets_s,
    week_start,
)
from .facts import _area_q, _newer_than, _time_q, _unit_scope_q, _whole_weeks, facts_watermark
from .incidents import IncidentFilter, _district_id_expr, compliant_q, incident_list
from .packed import unit_area, unit_parts, units_packed_built

# --- aggregates -------------------------------------------------------------------------


@dataclass
class DurationStats:
    count: int = 0
    median: float | None = None
    p90: float | None = None


@dataclass
class GroupStats:
    """One row of an aggregate table: a district, street, unit or week."""

    key: Any
    label: str = ""
    code: str = ""
    incidents: int = 0
    durations: dict[str, DurationStats] = field(default_factory=dict)
    ok: dict[str, int] = field(default_factory=dict)  # per step: within target
    compliant: int = 0  # all three steps within target
    # {duration name: {seconds: count}}: kept so that parts (roll-ups + live) merge exactly
    hist: dict[str, dict[int, int]] = field(default_factory=dict, repr=False)

    def pct(self, step: str) -> float | None:
        return round(100.0 * self.ok.get(step, 0) / self.incidents, 1) if self.incidents else None

    @property
    def compliance_pct(self) -> float | None:
        return round(100.0 * self.compliant / self.incidents, 1) if self.incidents else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "code": self.code,
            "label": self.label,
            "incidents": self.incidents,
            "compliant": self.compliant,
            "compliance_pct": self.compliance_pct,
            **{f"{step}_pct": self.pct(step) for step in STEPS},
            **{
                f"{name}_{stat}": getattr(self.durations.get(name, DurationStats()), stat)
                for name in DURATIONS
                for stat in ("median", "p90")
            },
        }


GROUPS = {
    "district": "district_id",
    "street": "region_id",
    "week": "week",
    None: None,
}


def incident_stats(*, qs: QuerySet[Incident], by: str | None) -> list[GroupStats]:
    """Counts, compliance and median/p90 of each duration per district, street or week
    (``by``), or one row for everything (``by=None``). ``qs`` from ``incident_list``."""
    group = GROUPS[by]
    if by == "district":
        qs = qs.annotate(district_id=_district_id_expr())
    elif by == "week":
        qs = qs.annotate(week=WeekNumber("discovered_at", offset_s=_utc_offset_s()))
    base = qs.order_by()
    ok_all = compliant_q(True)
    aggregates = {
        "n": Count("*"),
        "ok_all": Count("pk", filter=ok_all),
        **{
            f"ok_{step}": Count("pk", filter=Q(**{f"{STEPS[step]}__lte": t}))
            for step, t in targets_s().items()
        },
    }
    rows = base.values(group).annotate(**aggregates) if group else [base.aggregate(**aggregates)]
    stats: dict[Any, GroupStats] = {}
    for row in rows:
        key = row.get(group) if group else None
        if group is None and not row["n"]:
            continue
        stats[key] = GroupStats(
            key=key,
            incidents=row["n"],
            compliant=row["ok_all"],
            ok={step: row[f"ok_{step}"] for step in STEPS},
        )
    for key, hists in _histograms(base, group=group, names=DURATIONS).items():
        target = stats.get(key)
        if target is None:
            continue
        for name, hist in hists.items():
            target.hist[name] = dict(hist)
    return _finish(list(stats.values()), by=by)


def _round(value: float | None) -> float | None:
    """Seconds to one decimal: interpolated percentiles carry float noise."""
    return None if value is None else round(value, 1)


def _finish(rows: list[GroupStats], *, by: str | None) -> list[GroupStats]:
    """Medians and p90 from the histograms, labels, order."""
    for row in rows:
        for name, hist in row.hist.items():
            row.durations[name] = _duration_stats(hist)
    _label(rows, by=by)
    return sorted(rows, key=lambda s: (s.code or "", str(s.key)))


def _duration_stats(hist: dict[int, int]) -> DurationStats:
    count, (median, p90) = hist_percentiles(hist, (0.5, 0.9))
    return DurationStats(count=count, median=_round(median), p90=_round(p90))


def _merge(parts: Iterable[list[GroupStats]], *, by: str | None) -> list[GroupStats]:
    """Add up stats of the same groups from several sources (counts and histograms
    add exactly, so medians of the merged histograms are exact)."""
    merged: dict[Any, GroupStats] = {}
    for rows in parts:
        for r in rows:
            m = merged.setdefault(r.key, GroupStats(key=r.key))
            m.incidents += r.incidents
            m.compliant += r.compliant
            for step in STEPS:
                m.ok[step] = m.ok.get(step, 0) + r.ok.get(step, 0)
            for name, hist in r.hist.items():
                into = m.hist.get(name)
                if into is None:
                    # The first part of a group (often the only one): copied whole,
                    # not entry by entry (a year's weekly trend holds 130,000).
                    m.hist[name] = dict(hist)
                    continue
                for value, count in hist.items():
                    into[value] = into.get(value, 0) + count
    for m in merged.values():
        m.durations = {}
    return _finish(list(merged.values()), by=by)


def _label(rows: list[GroupStats], *, by: str | None) -> None:
    if by in ("district", "street"):
        # Names only: a district row carries its outline (JSON).
        regions = Region.objects.only("name", "code").in_bulk(
            [r.key for r in rows if r.key is not None]
        )
        for r in rows:
            region = regions.get(r.key)
            r.label = region.name if region else _("未归属区域")
            r.code = region.code if region else ""
    elif by == "week":
        for r in rows:
            r.label = week_start(r.key).isoformat()
            r.code = r.label
    else:
        for r in rows:
            r.label = _("合计")


# --- units ------------------------------------------------------------------------------


@dataclass
class UnitStats:
    unit_id: int
    code: str = ""
    name: str = ""
    street: str = ""
    alerted: int = 0
    accepted: int = 0
    declined: int = 0
    no_answer: int = 0
    on_site: int = 0
    durations: dict[str, DurationStats] = field(default_factory=dict)
    hist: dict[str, dict[int, int]] = field(default_factory=dict, repr=False)

    @property
    def decline_pct(self) -> float | None:
        return round(100.0 * self.declined / self.alerted, 1) if self.alerted else None

    @property
    def no_answer_pct(self) -> float | None:
        return round(100.0 * self.no_answer / self.alerted, 1) if self.alerted else None

    @property
    def accept_pct(self) -> float | None:
        return round(100.0 * self.accepted / self.alerted, 1) if self.alerted else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "unit_id": self.unit_id,
            "code": self.code,
            "name": self.name,
            "street": self.street,
            "alerted": self.alerted,
            "accepted": self.accepted,
            "declined": self.declined,
            "no_answer": self.no_answer,
            "on_site": self.on_site,
            "accept_pct": self.accept_pct,
            "decline_pct": self.decline_pct,
            "no_answer_pct": self.no_answer_pct,
            **{
                f"{name}_{stat}": getattr(self.durations.get(name, DurationStats()), stat)
                for name in DURATIONS
                for stat in ("median", "p90")
            },
        }


def dispatches_annotated(qs: QuerySet[Dispatch]) -> QuerySet[Dispatch]:
    """A unit's own durations (from the incident's discovery) and whether it declined."""
    declined = IncidentEvent.objects.filter(
        incident_id=OuterRef("incident_id"),
        unit_id=OuterRef("unit_id"),
        type=IncidentEvent.Type.DECLINED,
    )
    return qs.annotate(
        to_response_s=SecondsBetween("accepted_at", "incident__discovered_at"),
        to_control_s=SecondsBetween("on_site_at", "incident__discovered_at"),
        to_handling_s=SecondsBetween("handled_at", "incident__discovered_at"),
        did_decline=Exists(declined),
    )


# The dispatches that have a time: the only ones a unit's medians read (and the
# condition of the facts' partial index ``dfact_unit_timed``, written the same).
TIMED = Q(to_response_s__isnull=False) | Q(to_control_s__isnull=False)


def _unit_rows(
    qs: QuerySet, *, accepted: str, declined: str, with_hist: bool = True, with_counts=True
) -> dict[int, UnitStats]:
    """Per-unit counts and histograms from dispatches (live) or dispatch facts."""
    qs = qs.order_by()
    stats: dict[int, UnitStats] = {}
    if with_counts:
        stats = _unit_count_stats(qs, accepted=accepted, declined=declined)
    if with_hist:
        # One GROUP BY over the three durations together, not one per duration:
        # a unit list is a few hundred units over a wide range of dispatches.
        joint = _int_table(
            qs.filter(TIMED).values_list("unit_id", *DURATIONS).annotate(c=Count("*")).order_by(),
            5,
            null=-1,
        )
        # Summed per (unit, seconds) with numpy, then one dict per unit and
        # duration: a year of 220 units is ~20,000 grouped rows.
        for i, name in enumerate(DURATIONS):
            has = joint[:, 1 + i] >= 0
            if not has.any():
                continue
            key, which = np.unique(joint[has, 0] << 32 | joint[has, 1 + i], return_inverse=True)
            counts = np.bincount(which.ravel(), weights=joint[has, 4]).astype(np.int64)
            units = key >> 32
            bounds = np.flatnonzero(np.diff(units)) + 1
            for start, end in zip(
                [0, *bounds.tolist()], [*bounds.tolist(), units.size], strict=True
            ):
                unit_id = int(units[start])
                s = stats.get(unit_id) or stats.setdefault(unit_id, UnitStats(unit_id=unit_id))
                seconds = (key[start:end] & 0xFFFFFFFF).tolist()
                s.hist[name] = dict(zip(seconds, counts[start:end].tolist(), strict=True))
    return stats


def _unit_count_stats(qs: QuerySet, *, accepted: str, declined: str) -> dict[int, UnitStats]:
    rows = qs.values("unit_id").annotate(
        n_alerted=Count("*"),
        n_accepted=Count(accepted),
        n_on_site=Count("to_control_s"),
        n_declined=Count("unit_id", filter=Q(**{declined: True})),
        n_no_answer=Count("unit_id", filter=Q(**{f"{accepted}__isnull": True, declined: False})),
    )
    return {
        r["unit_id"]: UnitStats(
            unit_id=r["unit_id"],
            alerted=r["n_alerted"],
            accepted=r["n_accepted"],
            declined=r["n_declined"],
            no_answer=r["n_no_answer"],
            on_site=r["n_on_site"],
        )
        for r in rows
    }


def _unit_weekly_rows(qs: QuerySet) -> dict[int, UnitStats]:
    rows = (
        qs.order_by()
        .values("unit_id")
        .annotate(
            n_alerted=Sum("alerted"),
            n_accepted=Sum("accepted"),
            n_declined=Sum("declined"),
            n_no_answer=Sum("no_answer"),
            n_on_site=Sum("on_site"),
        )
    )
    return {
        r["unit_id"]: UnitStats(
            unit_id=r["unit_id"],
            alerted=r["n_alerted"],
            accepted=r["n_accepted"],
            declined=r["n_declined"],
            no_answer=r["n_no_answer"],
            on_site=r["n_on_site"],
        )
        for r in rows
    }


COUNTS = ("alerted", "accepted", "declined", "no_answer", "on_site")


def unit_counts(*, user, filters: IncidentFilter) -> np.ndarray:
    """``unit_stats(durations=False)``'s counts as an array, one row per unit with
    an alert, by unit id: ``[unit_id, alerted, accepted, declined, no_answer,
    on_site]``. No label, no object per unit: a city-wide page counts 23,000
    units and shows 220 of them.

    Whole weeks cost two stored rows per incident district (``UnitCumulative``:
    the range's last week minus the week before its first), the whole days of
    the partial weeks at the ends a row per day and district (``UnitDaily``), the
    partial days the dispatch facts, and incidents newer than the facts the live
    rows."""
    watermark = facts_watermark()
    area = None
    if watermark and filters.compliant is None:
        area = _area_q(user=user, filters=filters, unit_scope=True)
    parts: list[np.ndarray] = []
    incidents = incident_list(user=user, filters=filters)
    if area is not None:
        pieces: list[tuple] = [(filters.since, filters.until)]
        weekly_ok = not filters.kind and (
            filters.region is None or filters.region.level != Region.Level.STREET
        )
        if weekly_ok:
            w0, w1, pieces = _whole_weeks(filters.since, filters.until)
            last, packed = units_packed_built(), unit_area(area)
            if last is not None and packed is not None:
                counted, pieces = unit_parts(
                    table=packed[0], mask=packed[1], last=last, w0=w0, w1=w1, pieces=pieces
                )
                parts += counted
            elif w1 > w0:
                parts.append(_unit_weeks_counts(area, w0, w1))
        for since, until in pieces:
            facts = DispatchFact.objects.filter(area & _time_q(since, until))
            parts.append(_fact_count_rows(facts))
        incidents = _newer_than(incidents, watermark)
    if incidents is not None:
        qs = Dispatch.objects.filter(_unit_scope_q(user), incident__in=incidents.values("pk"))
        parts.append(
            _unit_count_rows(
                dispatches_annotated(qs), accepted="accepted_at", declined="did_decline"
            )
        )
    table = np.concatenate([np.empty((0, 6), np.int64), *parts])
    units, owner = np.unique(table[:, 0], return_inverse=True)
    sums = np.zeros((units.size, 5), np.int64)
    np.add.at(sums, owner.ravel(), table[:, 1:])
    keep = sums[:, 0] > 0  # a unit alerted before the range only: not in it
    return np.column_stack([units[keep], sums[keep]])


def _unit_count_rows(qs: QuerySet, *, accepted: str, declined: str) -> np.ndarray:
    rows = (
        qs.order_by()
        .values("unit_id")
        .annotate(
            n_alerted=Count("*"),
            n_accepted=Count(accepted),
            n_declined=Count("unit_id", filter=Q(**{declined: True})),
            n_no_answer=Count(
                "unit_id", filter=Q(**{f"{accepted}__isnull": True, declined: False})
            ),
            n_on_site=Count("to_control_s"),
        )
        .values_list("unit_id", "n_alerted", "n_accepted", "n_declined", "n_no_answer", "n_on_site")
    )
    return _int_table(rows, 6)


def _fact_count_rows(qs: QuerySet) -> np.ndarray:
    """``_unit_count_rows`` of dispatch facts, counted with numpy: grouped in SQL,
    SQLite read the facts of a few hours through the unit-first index, a seek
    for each of 23,000 units (0.3 s at a million incidents); ungrouped it reads
    the time-first index's range."""
    facts = _int_table(
        qs.order_by().values_list("unit_id", "to_response_s", "to_control_s", "declined"),
        4,
        null=-1,
    )
    if not facts.size:
        return np.empty((0, 6), np.int64)
    units, of = np.unique(facts[:, 0], return_inverse=True)
    accepted, on_site, declined = facts[:, 1] >= 0, facts[:, 2] >= 0, facts[:, 3] > 0
    columns = [np.ones(len(facts), bool), accepted, declined, ~accepted & ~declined, on_site]
    counts = [np.bincount(of.ravel(), weights=c, minlength=units.size) for c in columns]
    return np.column_stack([units, *counts]).astype(np.int64)


def _int_table(qs: QuerySet, width: int, null: int | None = None) -> np.ndarray:
    """A ``values_list`` of integers as an array, fetched by the cursor: Django's
    per-value converters cost more than the query for 23,000 grouped rows."""
    try:
        sql, params = qs.query.sql_with_params()
    except EmptyResultSet:  # e.g. ``unit_id__in=[]``: the ORM's own iterator returns []
        return np.empty((0, width), dtype=np.int64)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if null is not None:
        rows = [[null if v is None else v for v in row] for row in rows]
    return np.array(rows, dtype=np.int64).reshape(-1, width)


def _unit_weeks_counts(area: Q, w0: int, w1: int) -> np.ndarray:
    """Counts per unit of the whole weeks [w0, w1) in ``area`` summed from
    ``UnitWeekly``: while the packed roll-ups are not built (a database from
    before them, or being built), or for an area they cannot answer."""
    weekly = UnitWeekly.objects.filter(area, week__gte=w0, week__lt=w1).order_by()
    summed = weekly.values("unit_id").annotate(**{f"n_{c}": Sum(c) for c in COUNTS})
    return _int_table(summed.values_list("unit_id", *(f"n_{c}" for c in COUNTS)), 6)


def unit_stats(
    *,
    user,
    filters: IncidentFilter,
    unit_ids: Sequence[int] | None = None,
    durations: bool = True,
    counts: bool = True,
) -> list[UnitStats]:
    """Per unit in scope: alerts, accepts, declines, never answered, on site, and
    median/p90 of its own response, arrival and handling times.

    Read from the dispatch facts kept by Celery where they exist (with
    ``durations=False``, counts only, whole weeks from the weekly roll-up), plus
    the live rows of newer incidents (exact: counts and histograms add up).
    ``counts=False``: the durations only (no counts, no labels), for units whose
    counts the caller has."""
    watermark = facts_watermark()
    area = None
    if watermark and filters.compliant is None:
        area = _area_q(user=user, filters=filters, unit_scope=True)
    parts: list[dict[int, UnitStats]] = []
    incidents = incident_list(user=user, filters=filters)
    if area is not None:
        if unit_ids is not None:
            area &= Q(unit_id__in=list(unit_ids))
        pieces: list[tuple] = [(filters.since, filters.until)]
        weekly_ok = not filters.kind and (
            filters.region is None or filters.region.level != Region.Level.STREET
        )
        if not durations and weekly_ok and counts:
            # Counts only: whole weeks from the weekly roll-up, the ends from facts.
            w0, w1, pieces = _whole_weeks(filters.since, filters.until)
            if w1 > w0:
                weekly = UnitWeekly.objects.filter(area, week__gte=w0, week__lt=w1)
                parts.append(_unit_weekly_rows(weekly))
        for since, until in pieces:
            fq = DispatchFact.objects.filter(area & _time_q(since, until))
            parts.append(
                _unit_rows(
                    fq,
                    accepted="to_response_s",
                    declined="declined",
                    with_hist=durations,
                    with_counts=counts,
                )
            )
        incidents = _newer_than(incidents, watermark)
    if incidents is not None:
        qs = Dispatch.objects.filter(_unit_scope_q(user), incident__in=incidents.values("pk"))
        if unit_ids is not None:
            qs = qs.filter(unit_id__in=list(unit_ids))
        parts.append(
            _unit_rows(
                dispatches_annotated(qs),
                accepted="accepted_at",
                declined="did_decline",
                with_hist=durations,
                with_counts=counts,
            )
        )
    merged: dict[int, UnitStats] = {}
    for part in parts:
        for unit_id, s in part.items():
            m = merged.setdefault(unit_id, UnitStats(unit_id=unit_id))
            for attr in ("alerted", "accepted", "declined", "no_answer", "on_site"):
                setattr(m, attr, getattr(m, attr) + getattr(s, attr))
            for name, hist in s.hist.items():
                into = m.hist.setdefault(name, {})
                for value, count in hist.items():
                    into[value] = into.get(value, 0) + count
    for m in merged.values():
        for name, hist in m.hist.items():
            m.durations[name] = _duration_stats(hist)
    if not counts:
        return list(merged.values())
    labels = Unit.objects.filter(pk__in=list(merged)).values_list(
        "pk", "code", "name", "region__name"
    )
    for pk, code, name, street in labels:
        s = merged[pk]
        s.code, s.name, s.street = code, name, street
    return sorted(merged.values(), key=lambda s: s.code)
