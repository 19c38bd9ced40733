"""Filters on the incident and dispatch facts kept by Celery (``facts_sync``):
the watermark, area, time and unit-scope conditions, whole weeks for roll-ups.
"""

from __future__ import annotations

from django.db.models import (
    Max,
    Q,
    QuerySet,
)

from dispatch.models import Incident
from units.models import Region
from units.scoping import scope_filter, staff_profile, user_scope

from ..expressions import WEEK_S
from ..models import IncidentFact
from .common import _utc_offset_s, week_bounds
from .incidents import IncidentFilter

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
    return IncidentFact.objects.aggregate(m=Max("incident_id"))["m"] or 0


def _area_q(*, user, filters: IncidentFilter, unit_scope: bool = False) -> Q | None:
    """The region, scope and kind of ``filters`` (already checked against the user's
    scope) as a filter on facts and roll-ups; None when they cannot answer it
    (drills, community-level regions)."""
    if filters.drills:
        return None
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
    w0 = (int(since.timestamp()) + shift) // WEEK_S  # the week holding since
    if week_bounds(w0)[0] < since:  # (a fraction of a second after its start included)
        w0 += 1  # the first week starting at or after since
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
