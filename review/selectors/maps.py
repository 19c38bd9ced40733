"""Map reads: district outlines, coverage-gap cells, incident points."""

from __future__ import annotations

from typing import Any

from django.db.models import (
    Q,
)
from django.utils import timezone

from units.models import Region, Unit
from units.scoping import scope_filter, user_scope

from ..models import CoverageSnapshot
from .incidents import IncidentFilter, incident_list

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
