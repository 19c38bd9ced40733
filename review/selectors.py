"""Review reads: incidents with durations and 1-3-5 compliance, aggregates per
district, street and unit, weekly trends, arrival proof and responder trails.

Everything is scoped: a reviewer sees only their own region's subtree
(``units.scoping``). Aggregates run in the database; medians and p90 come from
per-second histograms computed by a GROUP BY (exact, and the same on SQLite,
which has no percentile functions, and PostgreSQL).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.utils import timezone
from django.utils.translation import gettext as _

from dispatch.models import Dispatch, Incident, IncidentEvent, MemberLocation
from units.models import Region, Unit
from units.scoping import scope_filter, user_scope

from .expressions import WEEK_S, SecondsBetween, WeekNumber

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


# --- incidents ------------------------------------------------------------------------


def _district_id_expr():
    return Case(
        When(region__level=Region.Level.DISTRICT, then=F("region_id")),
        default=F("region__parent_id"),
        output_field=IntegerField(),
    )


def incidents_annotated(qs: QuerySet[Incident]) -> QuerySet[Incident]:
    """Add the three durations (whole seconds, rounded up), per-step compliance and
    ``compliant`` (all three steps within 1-3-5)."""
    t = targets_s()
    qs = qs.annotate(
        to_response_s=SecondsBetween("responded_at", "discovered_at"),
        to_control_s=SecondsBetween("controlled_at", "discovered_at"),
        to_handling_s=SecondsBetween("handled_at", "discovered_at"),
    )
    ok = {step: Q(**{f"{STEPS[step]}__lte": t[step]}) for step in STEPS}
    return qs.annotate(
        ok_responded=Case(When(ok["responded"], then=Value(1)), default=Value(0)),
        ok_controlled=Case(When(ok["controlled"], then=Value(1)), default=Value(0)),
        ok_handled=Case(When(ok["handled"], then=Value(1)), default=Value(0)),
    )


def compliant_q(value: bool = True) -> Q:
    t = targets_s()
    q = Q()
    for step, name in STEPS.items():
        q &= Q(**{f"{name}__lte": t[step]})
    return q if value else ~q


@dataclass(frozen=True)
class IncidentFilter:
    region: Region | None = None  # a district, street or the city; None: whole scope
    kind: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    compliant: bool | None = None
    drills: bool = False  # drills are reviewed apart; real incidents by default


def incident_filter_build(
    *,
    user,
    district: str | None = None,
    street: str | None = None,
    kind: str | None = None,
    since: str | None = None,
    until: str | None = None,
    compliant: str | None = None,
    default_days: int = 90,
) -> IncidentFilter:
    """Parse raw query parameters into an IncidentFilter (errors name the field)."""
    errors: dict[str, str] = {}
    region = None
    try:
        region = region_for_review(user=user, code=street or district)
    except ReviewInputError as exc:
        errors["street" if street else "district"] = exc.errors["district"]
    if kind and kind not in Incident.Kind.values:
        errors["kind"] = _("未知的警情类型：%(k)s") % {"k": kind}
    flag = None
    if compliant not in (None, ""):
        if compliant not in ("1", "0", "true", "false", "yes", "no"):
            errors["compliant"] = _("compliant 只能是 1 或 0。")
        flag = compliant in ("1", "true", "yes")
    try:
        start, end = time_range_parse(since=since, until=until, default_days=default_days)
    except ReviewInputError as exc:
        errors.update(exc.errors)
        start = end = None
    if errors:
        raise ReviewInputError(errors)
    return IncidentFilter(region=region, kind=kind or None, since=start, until=end, compliant=flag)


def incident_list(*, user, filters: IncidentFilter) -> QuerySet[Incident]:
    """Incidents in the user's scope matching ``filters``, with durations and compliance."""
    qs = Incident.objects.filter(scope_filter(user, "incident"))
    if filters.region is not None:
        qs = qs.filter(region__path__startswith=filters.region.path)
    qs = qs.filter(is_drill=filters.drills)
    if filters.kind:
        qs = qs.filter(kind=filters.kind)
    if filters.since is not None:
        qs = qs.filter(discovered_at__gte=filters.since)
    if filters.until is not None:
        qs = qs.filter(discovered_at__lt=filters.until)
    qs = incidents_annotated(qs)
    if filters.compliant is not None:
        qs = qs.filter(compliant_q(filters.compliant))
    return qs.select_related("region", "region__parent").order_by("-discovered_at", "-pk")


def incident_for_review(*, user, incident_id: int) -> Incident | None:
    """One incident in the user's scope (drill or not), annotated; None otherwise."""
    qs = incidents_annotated(Incident.objects.filter(scope_filter(user, "incident")))
    return qs.select_related("region", "region__parent").filter(pk=incident_id).first()


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
            pairs = sorted(hist.items())
            row.durations[name] = DurationStats(
                count=sum(hist.values()),
                median=_round(percentile_cont(pairs, 0.5)),
                p90=_round(percentile_cont(pairs, 0.9)),
            )
    _label(rows, by=by)
    return sorted(rows, key=lambda s: (s.code or "", str(s.key)))


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
                into = m.hist.setdefault(name, {})
                for value, count in hist.items():
                    into[value] = into.get(value, 0) + count
    for m in merged.values():
        m.durations = {}
    return _finish(list(merged.values()), by=by)


def _utc_offset_s() -> int:
    offset = timezone.localtime().utcoffset()
    return int(offset.total_seconds()) if offset else 0


def week_start(week: int) -> dt.date:
    """The Monday (local date) that starts week number ``week`` of ``WeekNumber``."""
    return dt.date(1969, 12, 29) + dt.timedelta(days=7 * week)


def _label(rows: list[GroupStats], *, by: str | None) -> None:
    if by in ("district", "street"):
        regions = Region.objects.in_bulk([r.key for r in rows if r.key is not None])
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


def _unit_rows(
    qs: QuerySet, *, accepted: str, declined: str, with_hist: bool = True
) -> dict[int, UnitStats]:
    """Per-unit counts and histograms from dispatches (live) or dispatch facts."""
    qs = qs.order_by()
    rows = qs.values("unit_id").annotate(
        n_alerted=Count("*"),
        n_accepted=Count(accepted),
        n_on_site=Count("to_control_s"),
        n_declined=Count("pk", filter=Q(**{declined: True})),
        n_no_answer=Count("pk", filter=Q(**{f"{accepted}__isnull": True, declined: False})),
    )
    stats = {
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
    if with_hist:
        # One GROUP BY over the three durations together, not one per duration:
        # a unit list is a few hundred units over a wide range of dispatches.
        joint = (
            qs.filter(Q(to_response_s__isnull=False) | Q(to_control_s__isnull=False))
            .values_list("unit_id", *DURATIONS)
            .annotate(c=Count("*"))
            .order_by()
        )
        for unit_id, *values, count in joint:
            s = stats[unit_id]
            for name, value in zip(DURATIONS, values, strict=True):
                if value is not None:
                    into = s.hist.setdefault(name, {})
                    into[value] = into.get(value, 0) + count
    return stats


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


def unit_stats(
    *,
    user,
    filters: IncidentFilter,
    unit_ids: Sequence[int] | None = None,
    durations: bool = True,
) -> list[UnitStats]:
    """Per unit in scope: alerts, accepts, declines, never answered, on site, and
    median/p90 of its own response, arrival and handling times.

    Read from the dispatch facts kept by Celery where they exist (with
    ``durations=False``, counts only, whole weeks from the weekly roll-up), plus
    the live rows of newer incidents (exact: counts and histograms add up)."""
    watermark = facts_watermark()
    area = None
    if watermark and filters.compliant is None:
        area = _area_q(user=user, filters=filters, unit_scope=True)
    parts: list[dict[int, UnitStats]] = []
    incidents = incident_list(user=user, filters=filters)
    if area is not None:
        from .models import DispatchFact, UnitWeekly

        if unit_ids is not None:
            area &= Q(unit_id__in=list(unit_ids))
        pieces: list[tuple] = [(filters.since, filters.until)]
        weekly_ok = not filters.kind and (
            filters.region is None or filters.region.level != Region.Level.STREET
        )
        if not durations and weekly_ok:
            # Counts only: whole weeks from the weekly roll-up, the ends from facts.
            w0, w1, pieces = _whole_weeks(filters.since, filters.until)
            if w1 > w0:
                weekly = UnitWeekly.objects.filter(area, week__gte=w0, week__lt=w1)
                parts.append(_unit_weekly_rows(weekly))
        for since, until in pieces:
            fq = DispatchFact.objects.filter(area & _time_q(since, until))
            parts.append(
                _unit_rows(fq, accepted="to_response_s", declined="declined", with_hist=durations)
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
            pairs = sorted(hist.items())
            m.durations[name] = DurationStats(
                count=sum(hist.values()),
                median=_round(percentile_cont(pairs, 0.5)),
                p90=_round(percentile_cont(pairs, 0.9)),
            )
    labels = Unit.objects.filter(pk__in=list(merged)).values_list(
        "pk", "code", "name", "region__name"
    )
    for pk, code, name, street in labels:
        s = merged[pk]
        s.code, s.name, s.street = code, name, street
    return sorted(merged.values(), key=lambda s: s.code)


# --- roll-ups: facts kept by Celery ------------------------------------------------------


LIVE_IDS_MAX = 50_000


def _newer_than(qs: QuerySet, watermark: int) -> QuerySet | None:
    """``qs`` limited to incidents newer than the facts (None if there are none).

    The ids are read first from the primary key: filtering ``pk > watermark``
    next to a date range lets SQLite scan the date index instead, the whole
    range, to find a handful of rows."""
    newer = list(
        Incident.objects.filter(pk__gt=watermark)
        .order_by("pk")
        .values_list("pk", flat=True)[: LIVE_IDS_MAX + 1]
    )
    if not newer:
        return None
    if len(newer) > LIVE_IDS_MAX:
        return qs.filter(pk__gt=watermark)
    return qs.filter(pk__in=newer)


def facts_watermark() -> int:
    """The highest incident id with a fact row: newer incidents are read live."""
    from django.db.models import Max

    from .models import IncidentFact

    return IncidentFact.objects.aggregate(m=Max("incident_id"))["m"] or 0


def _area_q(*, user, filters: IncidentFilter, unit_scope: bool = False) -> Q | None:
    """The region, scope and kind of ``filters`` (already checked against the user's
    scope) as a filter on facts and roll-ups; None when they cannot answer it
    (drills, community-level regions)."""
    if filters.drills:
        return None
    from units.scoping import staff_profile

    profile = staff_profile(user)
    if not user.is_superuser and (profile is None or profile.role == profile.Role.UNIT_LEADER):
        return Q(pk__in=[])
    scope = user_scope(user)

    def region_q(region: Region | None, prefix: str) -> Q | None:
        if region is None or region.level == Region.Level.CITY:
            return Q()
        if region.level == Region.Level.DISTRICT:
            return Q(**{f"{prefix}district_id": region.pk})
        if region.level == Region.Level.STREET:
            return Q(**{f"{prefix}street_id": region.pk})
        return None

    q = region_q(filters.region or scope, "")
    if q is None:
        return None
    if filters.region is None and scope is not None and not unit_scope:
        # City-level staff (not superusers) never see incidents with no region.
        q &= Q(region_id__isnull=False) if scope.level == Region.Level.CITY else Q()
    if unit_scope:
        own = region_q(scope, "unit_")
        if own is None:
            return None
        q &= own
    if filters.kind:
        q &= Q(kind=filters.kind)
    return q


def _time_q(since, until) -> Q:
    q = Q()
    if since is not None:
        q &= Q(discovered_at__gte=since)
    if until is not None:
        q &= Q(discovered_at__lt=until)
    return q


def _facts_q(*, user, filters: IncidentFilter, unit_scope: bool = False) -> Q | None:
    q = _area_q(user=user, filters=filters, unit_scope=unit_scope)
    if q is None:
        return None
    q &= _time_q(filters.since, filters.until)
    if filters.compliant is not None and not unit_scope:
        q &= Q(ok_all=filters.compliant)
    return q


def _whole_weeks(since, until) -> tuple[int, int, list[tuple]]:
    """[w0, w1): the whole local weeks inside [since, until), and the partial
    pieces at either end as (since, until) pairs, read from the facts."""
    if since is None or until is None:
        return 0, 0, [(since, until)]
    offset = _utc_offset_s()
    shift = offset + 3 * 86400
    w0 = -((-(int(since.timestamp()) + shift)) // WEEK_S)  # ceil: first week starting >= since
    w1 = (int(until.timestamp()) + shift) // WEEK_S  # floor: the week holding until
    if w1 <= w0:
        return 0, 0, [(since, until)]
    pieces = []
    start0, _end = week_bounds(w0)
    start1, _end = week_bounds(w1)
    if since < start0:
        pieces.append((since, start0))
    if start1 < until:
        pieces.append((start1, until))
    return w0, w1, pieces


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
    from .models import IncidentFact, WeeklyRollup

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


def _unit_scope_q(user) -> Q:
    q = scope_filter(user, "unit")
    # scope_filter speaks of Unit rows; from Dispatch, prefix it with "unit__".
    return _prefix_q(q, "unit__")


def _prefix_q(q: Q, prefix: str) -> Q:
    out = Q()
    out.connector, out.negated = q.connector, q.negated
    for child in q.children:
        if isinstance(child, Q):
            out.children.append(_prefix_q(child, prefix))
        else:
            key, value = child
            out.children.append((prefix + ("id" if key == "pk" else key), value))
    return out


def units_unreliable(
    stats: Iterable[UnitStats], *, min_alerts: int = 3, limit: int = 20
) -> list[UnitStats]:
    """Units that often decline or never answer: (declined + no answer) / alerted,
    among units alerted at least ``min_alerts`` times, worst first."""
    rows = [s for s in stats if s.alerted >= min_alerts and (s.declined + s.no_answer)]
    rows.sort(key=lambda s: (-(s.declined + s.no_answer) / s.alerted, -s.alerted, s.code))
    return rows[:limit]


# --- one incident -------------------------------------------------------------------------


def incident_durations_s(incident: Incident) -> dict[str, int | None]:
    """The three durations in whole seconds (rounded up), as in the aggregates."""
    out: dict[str, int | None] = {}
    for name, field_name in _DURATION_FIELDS.items():
        value = getattr(incident, field_name)
        out[name] = (
            math.ceil((value - incident.discovered_at).total_seconds())
            if value is not None
            else None
        )
    return out


def incident_timeline(*, incident: Incident) -> QuerySet[IncidentEvent]:
    return incident.events.select_related("unit", "member", "user").order_by("seq")


@dataclass
class Trail:
    member_id: int
    member_name: str
    unit_code: str
    points: list[tuple[float, float, str]]  # (lat, lon, iso time)


def responder_trails(*, incident: Incident) -> list[Trail]:
    """Each responder's positions on this incident, oldest first: shared locations
    plus the positions the phone sent with its on-site report."""
    trails: dict[int, Trail] = {}
    locations = (
        MemberLocation.objects.filter(incident=incident)
        .select_related("member__unit")
        .order_by("created_at", "pk")
    )
    points: dict[int, list[tuple[dt.datetime, float, float]]] = defaultdict(list)
    for loc in locations:
        m = loc.member
        trails.setdefault(m.pk, Trail(m.pk, m.name, m.unit.code, []))
        points[m.pk].append((loc.created_at, loc.lat, loc.lon))
    on_site = incident.events.filter(
        type=IncidentEvent.Type.ON_SITE, member__isnull=False
    ).select_related("member__unit")
    for event in on_site:
        lat, lon = event.data.get("lat"), event.data.get("lon")
        if lat is None or lon is None:
            continue
        m = event.member
        trails.setdefault(m.pk, Trail(m.pk, m.name, m.unit.code, []))
        points[m.pk].append((event.created_at, float(lat), float(lon)))
    for member_id, trail in trails.items():
        trail.points = [(lat, lon, at.isoformat()) for at, lat, lon in sorted(points[member_id])]
    return list(trails.values())


def week_bounds(week: int) -> tuple[dt.datetime, dt.datetime]:
    start = timezone.make_aware(dt.datetime.combine(week_start(week), dt.time.min))
    return start, start + dt.timedelta(seconds=WEEK_S)


__all__ = [
    "DURATIONS",
    "IncidentFilter",
    "OutOfScope",
    "ReviewInputError",
    "incident_filter_build",
    "incident_list",
    "incident_stats",
    "percentile_cont",
    "unit_stats",
]


# --- exports ----------------------------------------------------------------------------

EXPORT_MAX_ROWS = 200_000


def incident_export_rows(*, user, filters: IncidentFilter) -> tuple[list[str], Iterable[list]]:
    """Header and rows for the incident export; phone numbers always masked
    (exports leave the system: a reviewer's report needs no full numbers)."""
    from django.db.models import Subquery

    from units.models import phone_mask

    first = Dispatch.objects.filter(incident_id=OuterRef("pk"), accepted_at__isnull=False).order_by(
        "accepted_at", "pk"
    )
    qs = incident_list(user=user, filters=filters).annotate(
        first_unit_code=Subquery(first.values("unit__code")[:1]),
        first_member_name=Subquery(first.values("accepted_by__name")[:1]),
        first_member_phone=Subquery(first.values("accepted_by__phone")[:1]),
    )
    header = [
        _("编号"),
        _("类型"),
        _("区"),
        _("街道/镇"),
        _("地址"),
        _("第一时间发现"),
        _("第一时间响应"),
        _("第一时间管控"),
        _("第一时间处置"),
        _("响应用时(秒)"),
        _("到场用时(秒)"),
        _("处置用时(秒)"),
        _("1分钟响应"),
        _("3分钟到场"),
        _("5分钟处置"),
        _("首个响应单元"),
        _("首个响应队员"),
        _("队员手机(脱敏)"),
    ]
    yes, no = _("是"), _("否")

    def iso(value):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else ""

    def rows():
        for i in qs[:EXPORT_MAX_ROWS].iterator(chunk_size=2000):
            district = i.region.parent if i.region and i.region.level == "street" else i.region
            yield [
                i.pk,
                i.get_kind_display(),
                district.name if district else "",
                i.region.name if i.region and i.region.level == "street" else "",
                i.address,
                iso(i.discovered_at),
                iso(i.responded_at),
                iso(i.controlled_at),
                iso(i.handled_at),
                i.to_response_s if i.to_response_s is not None else "",
                i.to_control_s if i.to_control_s is not None else "",
                i.to_handling_s if i.to_handling_s is not None else "",
                yes if i.ok_responded else no,
                yes if i.ok_controlled else no,
                yes if i.ok_handled else no,
                i.first_unit_code or "",
                i.first_member_name or "",
                phone_mask(i.first_member_phone) if i.first_member_phone else "",
            ]

    return header, rows()


def stats_export_rows(rows: Iterable[GroupStats]) -> tuple[list[str], list[list]]:
    header = [
        _("区域/周"),
        _("代码"),
        _("警情数"),
        _("1-3-5达标数"),
        _("达标率(%)"),
        _("1分钟响应率(%)"),
        _("3分钟到场率(%)"),
        _("5分钟处置率(%)"),
        _("响应中位数(秒)"),
        _("响应P90(秒)"),
        _("到场中位数(秒)"),
        _("到场P90(秒)"),
        _("处置中位数(秒)"),
        _("处置P90(秒)"),
    ]
    out = []
    for r in rows:
        d = r.as_dict()
        out.append(
            [
                r.label,
                r.code,
                r.incidents,
                r.compliant,
                d["compliance_pct"],
                d["responded_pct"],
                d["controlled_pct"],
                d["handled_pct"],
                *[d[f"{n}_{s}"] for n in DURATIONS for s in ("median", "p90")],
            ]
        )
    return header, out


def unit_export_rows(rows: Iterable[UnitStats]) -> tuple[list[str], list[list]]:
    header = [
        _("单元编码"),
        _("单元名称"),
        _("街道/镇"),
        _("被调派"),
        _("接受"),
        _("拒绝"),
        _("未应答"),
        _("到场"),
        _("响应中位数(秒)"),
        _("响应P90(秒)"),
        _("到场中位数(秒)"),
        _("到场P90(秒)"),
    ]
    out = []
    for s in rows:
        d = s.as_dict()
        out.append(
            [
                s.code,
                s.name,
                s.street,
                s.alerted,
                s.accepted,
                s.declined,
                s.no_answer,
                s.on_site,
                d["to_response_s_median"],
                d["to_response_s_p90"],
                d["to_control_s_median"],
                d["to_control_s_p90"],
            ]
        )
    return header, out


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


# --- arrival proof ----------------------------------------------------------------------


@dataclass
class ArrivalCheck:
    """One on-site report and whether the phone's position proves the arrival."""

    event_id: int
    at: dt.datetime
    unit_id: int | None
    unit_code: str
    member_id: int | None
    member_name: str
    source: str  # "report": sent with the on-site report; "location": nearest shared position
    lat: float | None
    lon: float | None
    distance_m: int | None
    verified: bool

    FLAG_FAR = "far"
    FLAG_NO_POSITION = "no_position"

    @property
    def flag(self) -> str | None:
        if self.verified:
            return None
        return self.FLAG_NO_POSITION if self.distance_m is None else self.FLAG_FAR

    @property
    def flag_display(self) -> str:
        return {
            self.FLAG_FAR: _("位置离现场过远"),
            self.FLAG_NO_POSITION: _("无位置，无法核验"),
        }.get(self.flag or "", "")

    @property
    def source_display(self) -> str:
        return {"report": _("到场上报时的定位"), "location": _("时间最近的位置共享")}.get(
            self.source, _("无")
        )


def arrival_checks(*, incident: Incident) -> list[ArrivalCheck]:
    """Judge every on-site report of ``incident``: it counts as an arrival only if
    the phone was within ``REVIEW_ARRIVAL_RADIUS_M`` of the scene.

    The position is the one sent with the report (``event.data`` lat/lon), else
    the member's shared location nearest in time (within
    ``REVIEW_ARRIVAL_LOCATION_WINDOW_S``). For a drill the scene is each unit's
    own post: the drill tests that people muster there.
    """
    from units.geo import haversine_m

    radius = float(settings.REVIEW_ARRIVAL_RADIUS_M)
    window = dt.timedelta(seconds=settings.REVIEW_ARRIVAL_LOCATION_WINDOW_S)
    events = list(
        incident.events.filter(type=IncidentEvent.Type.ON_SITE)
        .select_related("unit", "member")
        .order_by("seq")
    )
    member_ids = {e.member_id for e in events if e.member_id}
    locations: dict[int, list[MemberLocation]] = defaultdict(list)
    if member_ids:
        first = min(e.created_at for e in events) - window
        last = max(e.created_at for e in events) + window
        for loc in MemberLocation.objects.filter(
            member_id__in=member_ids, created_at__gte=first, created_at__lte=last
        ).order_by("created_at"):
            locations[loc.member_id].append(loc)
    checks = []
    for e in events:
        lat, lon, source = e.data.get("lat"), e.data.get("lon"), "report"
        if lat is None or lon is None:
            source = "none"
            near = [
                loc
                for loc in locations.get(e.member_id, [])
                if abs(loc.created_at - e.created_at) <= window
            ]
            if near:
                best = min(near, key=lambda loc: abs(loc.created_at - e.created_at))
                lat, lon, source = best.lat, best.lon, "location"
        scene = (incident.lat, incident.lon)
        if incident.is_drill and e.unit is not None:
            scene = (e.unit.lat, e.unit.lon)
        distance = None
        if lat is not None and lon is not None:
            distance = round(haversine_m(float(lat), float(lon), *scene))
        checks.append(
            ArrivalCheck(
                event_id=e.pk,
                at=e.created_at,
                unit_id=e.unit_id,
                unit_code=e.unit.code if e.unit else "",
                member_id=e.member_id,
                member_name=e.member.name if e.member else "",
                source=source,
                lat=float(lat) if lat is not None else None,
                lon=float(lon) if lon is not None else None,
                distance_m=distance,
                verified=distance is not None and distance <= radius,
            )
        )
    return checks


# --- maps -------------------------------------------------------------------------------


def scope_districts(*, user, region: Region | None = None) -> list[Region]:
    """District rows (with outlines) the user may see, narrowed to ``region``."""
    qs = Region.objects.filter(
        scope_filter(user, "region") | _ancestor_q(user), level=Region.Level.DISTRICT
    )
    if region is not None and region.level != Region.Level.CITY:
        district_path = (
            region.path
            if region.level == Region.Level.DISTRICT
            else region.path.rsplit("/", 2)[0] + "/"
        )
        qs = qs.filter(path=district_path)
    return list(qs.order_by("code"))


def _ancestor_q(user) -> Q:
    """A street-scoped user still sees its own district's outline (not its data)."""
    scope = user_scope(user)
    if scope is None:
        return Q()
    parts = scope.path.strip("/").split("/")
    return Q(path__in=["/".join(parts[: i + 1]) + "/" for i in range(len(parts))])


def coverage_cells(*, user, region: Region | None = None) -> dict[str, Any] | None:
    """The latest coverage snapshot's cells in the user's districts, or None."""
    from .models import CoverageSnapshot

    snapshot = CoverageSnapshot.objects.order_by("-computed_at", "-pk").first()
    if snapshot is None:
        return None
    allowed = {d.pk for d in scope_districts(user=user, region=region)}
    data = snapshot.cells
    cells = [c for c in data["cells"] if c[3] in allowed]
    target = snapshot.target_s
    gaps = sum(1 for c in cells if c[2] is None or c[2] > target)
    return {
        "computed_at": timezone.localtime(snapshot.computed_at).strftime("%Y-%m-%d %H:%M"),
        "cell_m": snapshot.cell_m,
        "target_s": target,
        "dlat": data["dlat"],
        "dlon": data["dlon"],
        "cells": cells,
        "cell_count": len(cells),
        "gap_count": gaps,
        "gap_pct": round(100.0 * gaps / len(cells), 1) if cells else None,
    }


def map_points(*, user, filters: IncidentFilter, max_incidents: int = 3000) -> dict[str, list]:
    """Incidents of the period (most recent first, capped) and units in scope."""
    incidents = incident_list(user=user, filters=filters).values_list(
        "pk", "lat", "lon", "kind", "ok_responded", "ok_controlled", "ok_handled"
    )[:max_incidents]
    units = Unit.objects.filter(scope_filter(user, "unit"), is_active=True)
    if filters.region is not None:
        units = units.filter(region__path__startswith=filters.region.path)
    return {
        "incidents": [
            [pk, lat, lon, kind, bool(a and b and c)] for pk, lat, lon, kind, a, b, c in incidents
        ],
        "units": [[round(la, 5), round(lo, 5)] for la, lo in units.values_list("lat", "lon")],
    }


# --- drills -----------------------------------------------------------------------------

DRILL_ACK_TARGET_S = "responded"  # a drill is judged on the same 1-3-5 targets
DRILL_ARRIVE_TARGET_S = "controlled"


def drills_visible(*, user):
    """Drills in the user's scope: over a region inside it, or run by a station in it."""
    from .models import Drill

    scope = user_scope(user)
    qs = Drill.objects.select_related("region", "station", "incident", "started_by")
    if scope is not None:
        qs = qs.filter(
            Q(region__path__startswith=scope.path) | Q(station__path__startswith=scope.path)
        )
    return qs.order_by("-created_at")


def _drill_dispatches(*, user, drill_ids=None, since=None, until=None) -> QuerySet[Dispatch]:
    from .models import Drill

    # The drills' incidents first, from the small drill table: a join on
    # ``incident.is_drill`` would read every dispatch of a million incidents.
    drills = Drill.objects.all()
    if drill_ids is not None:
        drills = drills.filter(pk__in=list(drill_ids))
    if since is not None:
        drills = drills.filter(incident__discovered_at__gte=since)
    if until is not None:
        drills = drills.filter(incident__discovered_at__lt=until)
    incident_ids = list(drills.values_list("incident_id", flat=True))
    qs = Dispatch.objects.filter(_unit_scope_q(user), incident_id__in=incident_ids)
    # Durations and delivery only: the "declined" subquery of dispatches_annotated
    # would scan a city drill's 23,000 events once per dispatch.
    return qs.annotate(
        to_response_s=SecondsBetween("accepted_at", "incident__discovered_at"),
        to_control_s=SecondsBetween("on_site_at", "incident__discovered_at"),
        to_handling_s=SecondsBetween("handled_at", "incident__discovered_at"),
        delivered=_delivered_exists(),
    )


def _delivered_exists():
    from dispatch.models import Delivery

    return Exists(Delivery.objects.filter(dispatch_id=OuterRef("pk"), delivered_at__isnull=False))


@dataclass
class DrillRow:
    """A league-table row, or one unit's line in a drill report."""

    key: Any
    label: str
    units: int = 0  # unit alerts (a unit in two drills counts twice)
    delivered: int = 0
    acknowledged: int = 0
    ack_in_target: int = 0
    arrived: int = 0
    arrived_in_target: int = 0
    ack_median_s: float | None = None
    arrival_median_s: float | None = None

    def _pct(self, n: int) -> float | None:
        return round(100.0 * n / self.units, 1) if self.units else None

    @property
    def delivered_pct(self):
        return self._pct(self.delivered)

    @property
    def ack_pct(self):
        return self._pct(self.acknowledged)

    @property
    def arrived_pct(self):
        return self._pct(self.arrived)

    @property
    def score(self) -> float | None:
        """Mean of the 1-minute acknowledgement and 3-minute arrival rates (0-100)."""
        if not self.units:
            return None
        return round(50.0 * (self.ack_in_target + self.arrived_in_target) / self.units, 1)


_DRILL_GROUPS = {
    "station": ("incident__drill__station_id", "station"),
    "street": ("unit__region_id", "street"),
    "district": ("unit__region__parent_id", "district"),
    "unit": ("unit_id", "unit"),
    "drill": ("incident__drill__id", "drill"),
}


def drill_league(*, user, by: str, since=None, until=None, drill_ids=None) -> list[DrillRow]:
    """League table of drills per police station, street or unit, best score first."""
    group, _kind = _DRILL_GROUPS[by]
    t = targets_s()
    qs = _drill_dispatches(user=user, drill_ids=drill_ids, since=since, until=until).order_by()
    rows = qs.values(group).annotate(
        n=Count("*"),
        delivered_n=Count("pk", filter=Q(delivered=True)),
        ack=Count("accepted_at"),
        ack_ok=Count("pk", filter=Q(to_response_s__lte=t[DRILL_ACK_TARGET_S])),
        arrived_n=Count("on_site_at"),
        arrived_ok=Count("pk", filter=Q(to_control_s__lte=t[DRILL_ARRIVE_TARGET_S])),
    )
    out: dict[Any, DrillRow] = {}
    for r in rows:
        out[r[group]] = DrillRow(
            key=r[group],
            label="",
            units=r["n"],
            delivered=r["delivered_n"],
            acknowledged=r["ack"],
            ack_in_target=r["ack_ok"],
            arrived=r["arrived_n"],
            arrived_in_target=r["arrived_ok"],
        )
    for key, hists in _histograms(qs, group=group, names=("to_response_s", "to_control_s")).items():
        if key in out:
            out[key].ack_median_s = _round(percentile_cont(hists.get("to_response_s", []), 0.5))
            out[key].arrival_median_s = _round(percentile_cont(hists.get("to_control_s", []), 0.5))
    _drill_labels(list(out.values()), by=by)
    return sorted(
        out.values(),
        key=lambda r: (-(r.score or 0), r.arrival_median_s or math.inf, str(r.label)),
    )


def _drill_labels(rows: list[DrillRow], *, by: str) -> None:
    keys = [r.key for r in rows]
    if by in ("station", "street", "district"):
        names = dict(Region.objects.filter(pk__in=keys).values_list("pk", "name"))
    elif by == "unit":
        names = {
            pk: f"{code} {name}"
            for pk, code, name in Unit.objects.filter(pk__in=keys).values_list("pk", "code", "name")
        }
    else:
        names = {k: f"#{k}" for k in keys}
    for r in rows:
        r.label = names.get(r.key, str(r.key))


@dataclass
class DrillUnitLine:
    unit_id: int
    unit_code: str
    unit_name: str
    street: str
    on_duty_alerted: int  # members the alert was addressed to
    received: int  # of them, phones that confirmed delivery
    first_received_s: int | None
    acknowledged_s: int | None
    arrived_s: int | None
    arrival_verified: bool | None
    status: str


def drill_report(*, user, drill) -> tuple[DrillRow, list[DrillUnitLine]]:
    """Who received (delivery receipts), acknowledged, arrived, and how fast, per unit
    in the user's scope; plus the drill's totals."""
    from dispatch.models import Delivery

    totals = drill_league(user=user, by="drill", drill_ids=[drill.pk])
    total = totals[0] if totals else DrillRow(key=drill.pk, label=f"#{drill.pk}")
    incident = drill.incident
    dispatches = (
        _drill_dispatches(user=user, drill_ids=[drill.pk])
        .select_related("unit__region")
        .order_by("unit__code")
    )
    receipts: dict[int, list] = defaultdict(list)
    for dispatch_id, delivered_at in Delivery.objects.filter(
        dispatch__incident=incident
    ).values_list("dispatch_id", "delivered_at"):
        receipts[dispatch_id].append(delivered_at)
    verified: dict[int, bool] = {}
    for check in arrival_checks(incident=incident):
        if check.unit_id is not None:
            verified[check.unit_id] = verified.get(check.unit_id, False) or check.verified
    lines = []
    for d in dispatches:
        got = [t for t in receipts.get(d.pk, []) if t is not None]
        first = min(got) if got else None
        lines.append(
            DrillUnitLine(
                unit_id=d.unit_id,
                unit_code=d.unit.code,
                unit_name=d.unit.name,
                street=d.unit.region.name,
                on_duty_alerted=len(receipts.get(d.pk, [])),
                received=len(got),
                first_received_s=math.ceil((first - incident.discovered_at).total_seconds())
                if first
                else None,
                acknowledged_s=d.to_response_s,
                arrived_s=d.to_control_s,
                arrival_verified=verified.get(d.unit_id) if d.on_site_at else None,
                status=d.get_status_display(),
            )
        )
    return total, lines


def incident_count(*, user, filters: IncidentFilter) -> int:
    """``incident_list(user, filters).count()``, from the facts' covering index plus
    the live newer incidents: counting 150,000 incident rows takes SQLite a second."""
    live = incident_list(user=user, filters=filters)
    watermark = facts_watermark()
    q = _facts_q(user=user, filters=filters) if watermark else None
    if q is None:
        return live.count()
    from .models import IncidentFact

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
