"""The board's reads: the area's map (outlines, streets, units) and the ranked
candidates an officer sees before sending."""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from dispatch.policy import policy_for
from dispatch.ranking import rank_units
from units.models import Region, Unit
from units.scoping import scope_filter, user_scope


def board_map(*, user) -> dict[str, Any]:
    """District outlines of the user's area (a street-scoped user's own district
    too), its streets' centres and its active units as compact rows."""
    scope = user_scope(user)
    districts = Region.objects.filter(level=Region.Level.DISTRICT, boundary__isnull=False)
    streets = Region.objects.filter(level=Region.Level.STREET, lat__isnull=False)
    if scope is not None:
        parts = scope.path.strip("/").split("/")
        ancestors = ["/".join(parts[: i + 1]) + "/" for i in range(len(parts))]
        districts = districts.filter(Q(path__startswith=scope.path) | Q(path__in=ancestors))
        streets = streets.filter(path__startswith=scope.path)
    units = Unit.objects.filter(scope_filter(user, "unit"), is_active=True)
    return {
        "outlines": [
            {"name": d.name, "geometry": d.boundary}
            for d in districts.only("name", "boundary").order_by("code")
        ],
        "streets": [
            [s.code, s.name, s.lat, s.lon]
            for s in streets.only("code", "name", "lat", "lon").order_by("code")
        ],
        # [id, code, name, lat, lon]: a city's 23,000 units stay a small download.
        "units": [
            [pk, code, name, round(lat, 6), round(lon, 6)]
            for pk, code, name, lat, lon in units.values_list(
                "pk", "code", "name", "lat", "lon"
            ).order_by("pk")
        ],
        "scope": scope.name if scope is not None else "",
    }


def board_candidates(
    *,
    user,
    lat: float,
    lon: float,
    kind: str,
    severity: int,
    exclude: set[int] | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The units wave 1 would alert (the policy's ``wave1`` of kind and severity),
    ranked: distance, walking ETA, people on duty, kit fit. Names and codes of
    units outside the user's area stay hidden."""
    spec = policy_for(kind=kind, severity=severity)["wave1"]
    candidates = rank_units(
        lat=lat,
        lon=lon,
        limit=int(limit or spec["units"]),
        radius_m=None if limit else spec.get("radius_m"),
        incident_kind=kind,
        exclude=exclude or (),
    )
    visible = {
        pk: (code, name)
        for pk, code, name in Unit.objects.filter(
            scope_filter(user, "unit"), pk__in=[c.unit_id for c in candidates]
        ).values_list("pk", "code", "name")
    }
    return [
        {
            "unit_id": c.unit_id,
            "code": visible.get(c.unit_id, ("", ""))[0],
            "name": visible.get(c.unit_id, ("", ""))[1],
            "distance_m": round(c.distance_m),
            "eta_s": c.eta_s,
            "on_duty": c.on_duty,
            "kit_fit": c.kit_fit,
        }
        for c in candidates
    ]
