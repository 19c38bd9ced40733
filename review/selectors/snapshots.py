"""Which stored index snapshot (kept by Celery beat) answers an index request."""

from __future__ import annotations

import datetime as dt

from django.conf import settings

from units.models import Region
from units.scoping import user_scope

from ..models import IndexSnapshot


def index_snapshot_area(*, user, region: Region | None) -> tuple[bool, int | None]:
    """(whether a snapshot can answer, its ``area_id``) for this user and region
    filter: the city (None) or one district; a street or below is read live (few
    units: fast enough), as is any user whose scope is not the city or a district."""
    area = region or user_scope(user)
    if area is None or area.level == Region.Level.CITY:
        return True, None
    if area.level == Region.Level.DISTRICT:
        return True, area.pk
    return False, None


def index_snapshot_for(
    *,
    user,
    level: str,
    region: Region | None,
    since: dt.datetime,
    until: dt.datetime,
    head_only: bool = False,
) -> IndexSnapshot | None:
    """The stored snapshot that answers ``index_scores`` for these arguments, or None.

    A snapshot answers the default period (``REVIEW_INDEX_DAYS`` up to now) when it
    was computed within ``REVIEW_INDEX_STALE_S`` of the request's end; any other
    period, or an older snapshot, is computed live. ``head_only``: ``rows`` is
    left unread (deferred), for a page that shows the head."""
    usable, area_id = index_snapshot_area(user=user, region=region)
    if not usable or until - since != dt.timedelta(days=settings.REVIEW_INDEX_DAYS):
        return None
    stale = dt.timedelta(seconds=settings.REVIEW_INDEX_STALE_S)
    snapshots = IndexSnapshot.objects.defer("rows") if head_only else IndexSnapshot.objects
    return (
        snapshots.filter(area_id=area_id, level=level, until__gte=until - stale, until__lte=until)
        .order_by("-until")
        .first()
    )
