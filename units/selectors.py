from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.db import connections
from django.db.models import (
    Count,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_lazy

from .geo import haversine_m_array
from .models import Equipment, Member, Region, Unit
from .readiness import (
    kit_complete,
    kit_complete_expression,
    kit_ok_q,
    members_unreachable,
    ready_expression,
    unit_is_ready,
    unit_unreachable,
)
from .scoping import scope_filter, user_scope


def _count_subquery(qs: QuerySet) -> Coalesce:
    counted = qs.values("unit").annotate(c=Count("*")).values("c")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def unit_annotate_readiness(qs: QuerySet[Unit]) -> QuerySet[Unit]:
    """Add ``on_duty_count``, ``kit_ok_count``, ``kit_complete`` and ``ready``.

    Readiness is derived from members and equipment, never stored twice; what
    it means is ``units.readiness`` (the rule dispatch ranking applies).
    """
    on_duty = Member.objects.filter(unit=OuterRef("pk"), on_duty=True, is_active=True)
    kit_ok = Equipment.objects.filter(kit_ok_q(), unit=OuterRef("pk"))
    return qs.annotate(
        on_duty_count=_count_subquery(on_duty),
        kit_ok_count=_count_subquery(kit_ok),
    ).annotate(
        kit_complete=kit_complete_expression("kit_ok_count"),
        ready=ready_expression("on_duty_count"),
    )


def unit_list(
    *, user, region: Region | None = None, kind: str | None = None, ready: bool | None = None
) -> QuerySet[Unit]:
    qs = Unit.objects.filter(scope_filter(user, "unit")).select_related("region")
    if region is not None:
        qs = qs.filter(region__path__startswith=region.path)
    if kind:
        qs = qs.filter(kind=kind)
    qs = unit_annotate_readiness(qs)
    if ready is not None:
        qs = qs.filter(ready=ready)
    return qs.order_by("code")


def unit_get(*, user, unit_id: int) -> Unit:
    """One unit in the user's scope with readiness; raises Unit.DoesNotExist."""
    return unit_list(user=user).prefetch_related("members", "equipment").get(pk=unit_id)


def unit_list_ready_nearest(*, lat: float, lon: float, limit: int) -> list[tuple[int, float]]:
    """(unit id, metres) of the ``limit`` ready units nearest (lat, lon), nearest
    first, ties to the lower id: whom dispatch ranking calls there for an
    incident that needs no particular kit.

    Reads every active unit: for commands and pages. The intake path asks
    ``dispatch.ranking``, whose in-memory index answers the same question fast.
    """
    if limit <= 0:
        return []
    on_duty = dict(
        Member.objects.filter(on_duty=True, is_active=True)
        .order_by()
        .values("unit_id")
        .annotate(n=Count("*"))
        .values_list("unit_id", "n")
    )
    rows = [
        (pk, unit_lat, unit_lon)
        for pk, unit_lat, unit_lon, post_min in Unit.objects.filter(is_active=True).values_list(
            "pk", "lat", "lon", "post_min"
        )
        if unit_is_ready(is_active=True, on_duty=on_duty.get(pk, 0), post_min=post_min)
    ]
    if not rows:
        return []
    table = np.array(rows, dtype=np.float64)
    ids = table[:, 0].astype(np.int64)
    dist = haversine_m_array(lat, lon, table[:, 1], table[:, 2])
    order = np.lexsort((ids, dist))[:limit]
    return [(int(ids[i]), float(dist[i])) for i in order]


def region_list(*, user) -> QuerySet[Region]:
    return Region.objects.filter(scope_filter(user, "region"))


# --- readiness overview ---------------------------------------------------------------


@dataclass
class ReadinessRow:
    """Readiness figures of one region's units (a district or a street)."""

    region: Region
    units: int = 0
    active: int = 0
    ready: int = 0
    kit_incomplete: int = 0  # active units whose standard kit is short, broken or expired
    no_one_on_duty: int = 0  # active units with nobody on duty
    # active units with people on duty, none of whom any channel reaches when
    # their page is closed (no push subscription and no number for SMS/voice,
    # or their last alert failed on every channel): units.readiness
    no_channel: int = 0
    members_on_duty: int = 0
    expired_items: int = 0
    expiring_items: int = 0  # still in date, expiring within ROSTER_EXPIRY_WARNING_DAYS
    inspection_due: int = 0  # never inspected or not for ROSTER_INSPECTION_INTERVAL_DAYS

    @property
    def not_ready(self) -> int:
        return self.units - self.ready


@dataclass
class ReadinessOverview:
    region: Region | None  # the region drilled into; None: the whole tree
    total: ReadinessRow
    rows: list[ReadinessRow] = field(default_factory=list)  # its children with units
    today: dt.date | None = None


def readiness_overview(*, user, region: Region | None = None) -> ReadinessOverview:
    """Readiness per child region of ``region`` (default: the user's scope).

    A handful of GROUP BY queries over the whole subtree, folded per region in
    Python: no per-unit subqueries, so a city of 23,000 units costs the same
    few queries as a street. ``region`` must already be one the user may see
    (``region_list``); the rows are limited to the user's scope either way.
    """
    if region is None:
        region = user_scope(user)
    today = timezone.localdate()
    node_path = region.path if region is not None else ""
    depth = node_path.count("/")
    children = {
        r.code: r
        for r in region_list(user=user).filter(path__startswith=node_path).defer("boundary")
        if r.path.count("/") == depth + 1
    }
    total = ReadinessRow(region=region or Region(name=str(_all_regions_label())))
    rows: dict[str, ReadinessRow] = {}

    def row_of(path: str) -> ReadinessRow | None:
        code = path[len(node_path) :].split("/", 1)[0]
        child = children.get(code)
        if child is None:
            return None
        if code not in rows:
            rows[code] = ReadinessRow(region=child)
        return rows[code]

    units = Unit.objects.filter(scope_filter(user, "unit"))
    if node_path:
        units = units.filter(region__path__startswith=node_path)
    unit_rows = _raw_rows(units.values_list("id", "region__path", "is_active", "post_min"))
    in_scope = {pk for pk, _p, _a, _m in unit_rows}

    def per_unit(qs: QuerySet) -> dict[int, int]:
        """{unit id: rows} for the units in scope. Small subtrees filter in SQL;
        the whole city is cheaper read as one GROUP BY without the join."""
        if len(in_scope) < 5000:
            qs = qs.filter(unit__in=units.values("pk"))
        counted = qs.order_by().values("unit_id").annotate(n=Count("*")).values_list("unit_id", "n")
        return {u: n for u, n in _raw_rows(counted) if u in in_scope}

    on_duty = per_unit(Member.objects.filter(on_duty=True, is_active=True))
    unreachable = per_unit(members_unreachable(Member.objects.filter(on_duty=True, is_active=True)))
    kit_ok = per_unit(Equipment.objects.filter(kit_ok_q(today=today)))
    warn = today + dt.timedelta(days=settings.ROSTER_EXPIRY_WARNING_DAYS)
    due = today - dt.timedelta(days=settings.ROSTER_INSPECTION_INTERVAL_DAYS)
    expired = per_unit(Equipment.objects.filter(expires__lt=today))
    expiring = per_unit(Equipment.objects.filter(expires__gte=today, expires__lte=warn))
    inspection = per_unit(
        Equipment.objects.filter(Q(last_inspected__lt=due) | Q(last_inspected__isnull=True))
    )
    for pk, path, active, post_min in unit_rows:
        row = row_of(path)
        duty = on_duty.get(pk, 0)
        complete = kit_complete(kit_ok.get(pk, 0))
        for target in (total, row) if row is not None else (total,):
            target.units += 1
            target.members_on_duty += duty
            target.expired_items += expired.get(pk, 0)
            target.expiring_items += expiring.get(pk, 0)
            target.inspection_due += inspection.get(pk, 0)
            if active:
                target.active += 1
                target.ready += unit_is_ready(is_active=active, on_duty=duty, post_min=post_min)
                target.kit_incomplete += not complete
                target.no_one_on_duty += not duty
                target.no_channel += unit_unreachable(
                    on_duty=duty, unreachable=unreachable.get(pk, 0)
                )
    ordered = sorted(rows.values(), key=lambda r: (-r.not_ready, r.region.code))
    return ReadinessOverview(region=region, total=total, rows=ordered, today=today)


def _raw_rows(qs: QuerySet) -> list[tuple]:
    """The rows of a values_list query as the driver returns them.

    Skips Django's per-value converters: at 23,000 units and 200,000 kit rows
    they cost more than the SQL. Only for ints, strings and booleans, which
    both drivers already return usable (SQLite's 0/1 work as booleans).
    """
    sql, params = qs.query.sql_with_params()
    with connections[qs.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _all_regions_label():
    return gettext_lazy("全部")
