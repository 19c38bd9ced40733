"""Arrival proof: did a unit reach the scene (positions near it) in time?"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.utils.translation import gettext as _

from dispatch.models import Incident, IncidentEvent, MemberLocation
from units.geo import haversine_m

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
    ``REVIEW_ARRIVAL_LOCATION_WINDOW_S``). The point is where the unit was sent
    (``Incident.destination``): the gathering point if one was set, else for a
    drill each unit's own post (the drill tests that people muster there), else
    the scene.
    """
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
        post = (e.unit.lat, e.unit.lon) if e.unit is not None else None
        _kind, *scene = incident.destination(post=post)
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
