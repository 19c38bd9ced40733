"""Review writes: coverage-gap snapshots, drills, index roll-ups.

Dispatch stays the owner of incidents, waves, dispatches and deliveries; a drill
opens, alerts and closes its incident through dispatch's public write API
(``incident_create``, ``wave_send``, ``incident_close``), so members' phones get
ordinary ``incident.alert`` frames (marked ``is_drill``) and the ordinary member
actions score it.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from dispatch import services as dispatch_services
from dispatch.models import Dispatch, Incident
from dispatch.policy import policy_for
from dispatch.ranking import unit_index
from units.geo import points_in_geometry
from units.models import Region, StaffProfile, Unit
from units.scoping import staff_profile

from .models import CoverageSnapshot, Drill
from .selectors.common import _utc_offset_s, week_bounds
from .selectors.facts import facts_watermark
from .selectors.incidents import incidents_annotated
from .selectors.stats import dispatches_annotated

METRES_PER_DEGREE_LAT = 111_320.0


def coverage_grid(
    *, cell_m: int, districts: list[Region] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """Centres of ``cell_m`` grid cells inside the district outlines.

    Returns (lat, lon, district_id, cell height in degrees, cell width in degrees);
    the grid is aligned on the outlines' bounding box.
    """
    if districts is None:
        districts = list(Region.objects.filter(level=Region.Level.DISTRICT, boundary__isnull=False))
    if not districts:
        empty = np.empty(0)
        return empty, empty, empty.astype(np.int64), 0.0, 0.0
    coords = []
    for d in districts:
        polys = (
            [d.boundary["coordinates"]]
            if d.boundary["type"] == "Polygon"
            else d.boundary["coordinates"]
        )
        for rings in polys:
            coords.append(np.asarray(rings[0], dtype=float))
    allc = np.concatenate(coords)
    min_lon, min_lat = allc.min(axis=0)
    max_lon, max_lat = allc.max(axis=0)
    dlat = cell_m / METRES_PER_DEGREE_LAT
    dlon = cell_m / (METRES_PER_DEGREE_LAT * math.cos(math.radians((min_lat + max_lat) / 2)))
    lats = np.arange(min_lat + dlat / 2, max_lat, dlat)
    lons = np.arange(min_lon + dlon / 2, max_lon, dlon)
    grid_lat, grid_lon = (a.ravel() for a in np.meshgrid(lats, lons, indexing="ij"))
    owner = np.zeros(grid_lat.size, dtype=np.int64)
    for d in districts:
        inside = points_in_geometry(grid_lat, grid_lon, d.boundary) & (owner == 0)
        owner[inside] = d.pk
    keep = owner != 0
    return grid_lat[keep], grid_lon[keep], owner[keep], dlat, dlon


def coverage_compute(*, cell_m: int | None = None, target_s: int | None = None) -> CoverageSnapshot:
    """Where can no ready unit arrive on foot within ``target_s``? One cell at a time
    through dispatch's own index (``UnitIndex.nearest``: the same candidates,
    distance and ETA rules as a real wave), then one snapshot row.

    ETAs are searched up to three times the target; a cell with nothing that
    close stores ``None``.
    """
    cell_m = int(cell_m or settings.REVIEW_GAP_CELL_M)
    target_s = int(target_s or settings.REVIEW_GAP_TARGET_S)
    started = time.monotonic()
    lat, lon, owner, dlat, dlon = coverage_grid(cell_m=cell_m)
    index = unit_index()
    index.refresh()  # the roster as of now, as rank_units would see it
    reach_m = (
        3
        * target_s
        * float(settings.RANKING_WALK_SPEED_MPS)
        / float(settings.RANKING_DETOUR_FACTOR)
    )
    cells = []
    gaps = 0
    for i in range(lat.size):
        found = index.nearest(
            lat=float(lat[i]), lon=float(lon[i]), limit=1, radius_m=reach_m, require_available=True
        )
        eta = found[0].eta_s if found else None
        if eta is None or eta > target_s:
            gaps += 1
        cells.append([round(float(lat[i]), 6), round(float(lon[i]), 6), eta, int(owner[i])])
    with transaction.atomic():
        snapshot = CoverageSnapshot.objects.create(
            cell_m=cell_m,
            target_s=target_s,
            cell_count=len(cells),
            gap_count=gaps,
            cells={"dlat": dlat, "dlon": dlon, "cells": cells},
            seconds=round(time.monotonic() - started, 3),
        )
        # Keep a few for comparison; the map reads the latest.
        old = CoverageSnapshot.objects.order_by("-computed_at", "-pk").values_list("pk", flat=True)[
            5:
        ]
        CoverageSnapshot.objects.filter(pk__in=list(old)).delete()
    return snapshot


# --- drills (拉动测试) -------------------------------------------------------------------

log = logging.getLogger(__name__)

DRILL_STARTER_ROLES = {StaffProfile.Role.POLICE_STATION}
# No drill ever stands units down for "enough accepted": every unit is scored.
_NEVER_ENOUGH = {str(s): 10**9 for s in Incident.Severity.values}


class DrillRefused(Exception):
    """The user may not start this drill, or its scope is wrong; nothing was written."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def drill_region_resolve(*, user, scope: str, code: str | None = None) -> Region:
    """The region a drill of ``scope`` covers, checked against the user's scope.

    ``area`` is the station's own jurisdiction; ``street`` and ``district`` take a
    code of that level inside it; ``city`` is the root, only for city-wide staff.
    """
    if scope not in Drill.Scope.values:
        raise DrillRefused("bad_scope", _("未知的演练范围：%(s)s") % {"s": scope})
    profile = staff_profile(user)
    own = profile.region if profile is not None and not user.is_superuser else None
    if scope == Drill.Scope.AREA:
        if own is None:
            raise DrillRefused("no_area", _("没有本辖区：请选择具体的街道、区或全市。"))
        return own
    if scope == Drill.Scope.CITY:
        region = Region.objects.filter(parent__isnull=True, level=Region.Level.CITY).first()
    else:
        if not code:
            raise DrillRefused("no_region", _("请选择演练的街道/镇或区。"))
        level = Region.Level.STREET if scope == Drill.Scope.STREET else Region.Level.DISTRICT
        region = Region.objects.filter(code=code, level=level).first()
    if region is None:
        raise DrillRefused("unknown_region", _("未知的区域编码：%(c)s") % {"c": code or ""})
    if own is not None and not region.path.startswith(own.path):
        raise DrillRefused("out_of_scope", _("该区域不在您的辖区内。"))
    return region


def drill_start(*, user, scope: str, code: str | None = None) -> Drill:
    """Start a no-notice drill: an ``is_drill`` incident for ``scope``; the units are
    alerted in batches by Celery after commit (a city-wide drill is ~23,000 units).

    Only police stations (and superusers) start drills, inside their own scope.
    """
    profile = staff_profile(user)
    if not user.is_superuser and (profile is None or profile.role not in DRILL_STARTER_ROLES):
        raise DrillRefused("not_station", _("只有派出所可以发起拉动测试。"))
    region = drill_region_resolve(user=user, scope=scope, code=code)
    station = profile.region if profile is not None else region
    units_total = Unit.objects.filter(region__path__startswith=region.path, is_active=True).count()
    if units_total == 0:
        raise DrillRefused("no_units", _("该区域没有可通知的单元。"))
    lat, lon = region.lat, region.lon
    if lat is None or lon is None:
        lat, lon = Unit.objects.filter(region__path__startswith=region.path).values_list(
            "lat", "lon"
        )[0]
    policy = policy_for(kind=Incident.Kind.OTHER, severity=Incident.Severity.LOW)
    # A drill keeps no escalation timers and never stands units down early.
    policy.update(tiers=[], enough_accepts=_NEVER_ENOUGH, drill=True)
    with transaction.atomic():
        incident = dispatch_services.incident_create(
            kind=Incident.Kind.OTHER,
            severity=Incident.Severity.LOW,
            lat=lat,
            lon=lon,
            address=region.name,
            description=_("拉动测试（演练）：%(r)s 全部单元，请立即到岗集结。")
            % {"r": region.name},
            source=Incident.Source.DRILL,
            region=region,
            created_by=user,
            is_drill=True,
            policy=policy,
            # Units are alerted in batches by ``drill_send_batch``, not ranked.
            send_wave1=False,
            event_data={"drill_scope": scope, "units": units_total},
        ).incident
        drill = Drill.objects.create(
            scope=scope,
            region=region,
            station=station,
            started_by=user,
            incident=incident,
            units_total=units_total,
        )
        transaction.on_commit(lambda: _drill_batch_enqueue(drill_id=drill.pk, after_unit_id=0))
    return drill


def _drill_batch_enqueue(*, drill_id: int, after_unit_id: int) -> None:
    from .tasks import drill_send_batch

    drill_send_batch.delay(drill_id, after_unit_id)


def drill_send_batch(*, drill_id: int, after_unit_id: int, batch: int | None = None) -> int:
    """Alert the next ``batch`` units of the drill (by unit id after ``after_unit_id``)
    as one wave: dispatches, deliveries, ``alerted`` events, pushes after commit,
    then enqueue the next batch. Idempotent: units already alerted are skipped.
    Returns how many units this call alerted.
    """
    batch = int(batch or settings.REVIEW_DRILL_BATCH)
    with transaction.atomic():
        drill = Drill.objects.select_related("region", "started_by").get(pk=drill_id)
        # Row lock: one batch at a time per drill (wave numbers, event seqs).
        incident = Incident.objects.select_for_update().get(pk=drill.incident_id)
        if drill.status == Drill.Status.CLOSED or incident.status != Incident.Status.OPEN:
            return 0
        unit_ids = list(
            Unit.objects.filter(
                region__path__startswith=drill.region.path, is_active=True, pk__gt=after_unit_id
            )
            .order_by("pk")
            .values_list("pk", flat=True)[:batch]
        )
        if not unit_ids:
            Drill.objects.filter(pk=drill_id).update(
                status=Drill.Status.SENT, sent_at=timezone.now()
            )
            return 0
        # Units already alerted (a retried batch) are skipped by wave_send.
        dispatches = dispatch_services.wave_send(
            incident=incident,
            unit_ids=unit_ids,
            reason="drill",
            actor=drill.started_by,
            at_own_post=True,
        )
        sent = len(dispatches)
        if sent:
            Drill.objects.filter(pk=drill_id).update(units_alerted=F("units_alerted") + sent)
        last_id = unit_ids[-1]
        Drill.objects.filter(pk=drill_id).update(status=Drill.Status.SENDING)
        transaction.on_commit(
            lambda: _drill_batch_enqueue(drill_id=drill_id, after_unit_id=last_id)
        )
    return sent


def drill_close(*, user, drill_id: int) -> Drill:
    """End a drill: the incident closes (no ``handled_at``: nothing was handled) and
    every unit still on it is told."""
    with transaction.atomic():
        drill = Drill.objects.select_for_update().select_related("incident").get(pk=drill_id)
        if drill.status == Drill.Status.CLOSED:
            return drill
        # No stand-down: each unit's last state is its score in the drill report.
        dispatch_services.incident_close(
            incident=drill.incident, actor=user, outcome="drill_ended", stand_down=False
        )
        Drill.objects.filter(pk=drill.pk).update(
            status=Drill.Status.CLOSED, closed_at=timezone.now()
        )
        drill.refresh_from_db()
    return drill


# --- roll-ups: incident and dispatch facts -------------------------------------------------

FACTS_CHUNK = 5000


def _fact_places(region_id, level, parent_id) -> tuple[int | None, int | None]:
    """(street id, district id) of an incident's or unit's region."""
    if level == Region.Level.STREET:
        return region_id, parent_id
    if level == Region.Level.DISTRICT:
        return None, region_id
    return None, None


def facts_sync(*, recent_hours: float | None = None, full: bool = False) -> int:
    """(Re)write the facts of incidents not yet in them, and of those discovered in
    the last ``recent_hours`` (their timestamps may still move). ``full`` rewrites
    all. Drills are not facts: they are reviewed apart. Returns incidents written.
    """
    from .models import DispatchFact, IncidentFact

    hours = recent_hours if recent_hours is not None else settings.REVIEW_FACTS_RESYNC_HOURS
    qs = Incident.objects.filter(is_drill=False)
    if not full:
        since = timezone.now() - dt.timedelta(hours=hours)
        qs = qs.filter(Q(pk__gt=facts_watermark()) | Q(discovered_at__gte=since))
    # One transaction: a report never sees facts whose weekly roll-ups lag behind.
    with transaction.atomic():
        ids = list(qs.order_by("pk").values_list("pk", flat=True))
        weeks: set[int] = set()
        for start in range(0, len(ids), FACTS_CHUNK):
            chunk = ids[start : start + FACTS_CHUNK]
            with transaction.atomic():
                weeks |= set(
                    IncidentFact.objects.filter(incident_id__in=chunk).values_list(
                        "week", flat=True
                    )
                )
                IncidentFact.objects.filter(incident_id__in=chunk).delete()
                DispatchFact.objects.filter(incident_id__in=chunk).delete()
                facts = list(_incident_facts(chunk))
                weeks |= {f.week for f in facts}
                IncidentFact.objects.bulk_create(facts, batch_size=1000)
                DispatchFact.objects.bulk_create(_dispatch_facts(chunk), batch_size=1000)
        if weeks:
            rollups_rebuild(weeks=weeks)
    return len(ids)


def _incident_facts(ids: list[int]):
    from .expressions import WeekNumber
    from .models import IncidentFact

    rows = (
        incidents_annotated(Incident.objects.filter(pk__in=ids))
        .annotate(week=WeekNumber("discovered_at", offset_s=_utc_offset_s()))
        .values_list(
            "pk", "region_id", "region__level", "region__parent_id", "kind", "discovered_at",
            "week", "to_response_s", "to_control_s", "to_handling_s",
            "ok_responded", "ok_controlled", "ok_handled",
        )
    )  # fmt: skip
    for pk, region_id, level, parent, kind, at, week, r, c, h, ok_r, ok_c, ok_h in rows:
        street, district = _fact_places(region_id, level, parent)
        yield IncidentFact(
            incident_id=pk,
            region_id=region_id,
            street_id=street,
            district_id=district,
            kind=kind,
            discovered_at=at,
            week=week,
            to_response_s=r,
            to_control_s=c,
            to_handling_s=h,
            ok_responded=bool(ok_r),
            ok_controlled=bool(ok_c),
            ok_handled=bool(ok_h),
            ok_all=bool(ok_r and ok_c and ok_h),
        )


def _dispatch_facts(ids: list[int]):
    from .models import DispatchFact

    rows = dispatches_annotated(Dispatch.objects.filter(incident_id__in=ids)).values_list(
        "pk", "incident_id", "unit_id", "unit__region_id", "unit__region__level",
        "unit__region__parent_id", "incident__region_id", "incident__region__level",
        "incident__region__parent_id", "incident__discovered_at", "incident__kind",
        "to_response_s", "to_control_s", "to_handling_s", "did_decline",
    )  # fmt: skip
    for (
        pk, incident_id, unit_id, u_region, u_level, u_parent, i_region, i_level, i_parent,
        at, kind, r, c, h, declined,
    ) in rows:  # fmt: skip
        street, district = _fact_places(i_region, i_level, i_parent)
        unit_street, unit_district = _fact_places(u_region, u_level, u_parent)
        yield DispatchFact(
            dispatch_id=pk,
            incident_id=incident_id,
            unit_id=unit_id,
            street_id=street,
            district_id=district,
            unit_street_id=unit_street,
            unit_district_id=unit_district,
            discovered_at=at,
            kind=kind,
            to_response_s=r,
            to_control_s=c,
            to_handling_s=h,
            declined=bool(declined),
        )


def rollups_rebuild(*, weeks: set[int] | None = None) -> int:
    """Rebuild the weekly roll-ups of these weeks (None: every week with facts)
    from the facts. Returns how many weeks were rebuilt."""
    from .models import DispatchFact, IncidentFact, UnitWeekly, WeeklyRollup

    if weeks is None:
        weeks = set(IncidentFact.objects.values_list("week", flat=True).distinct())
    for week in sorted(weeks):
        start, end = week_bounds(week)
        groups: dict[tuple, list] = {}
        for region, street, district, kind, r, c, h, ok_r, ok_c, ok_h, ok_all in (
            IncidentFact.objects.filter(discovered_at__gte=start, discovered_at__lt=end)
            .order_by()
            .values_list(
                "region_id", "street_id", "district_id", "kind", "to_response_s",
                "to_control_s", "to_handling_s", "ok_responded", "ok_controlled",
                "ok_handled", "ok_all",
            )
        ):  # fmt: skip
            g = groups.setdefault((region, street, district, kind), [0, 0, 0, 0, 0, {}, {}, {}])
            g[0] += 1
            g[1] += ok_r
            g[2] += ok_c
            g[3] += ok_h
            g[4] += ok_all
            for slot, value in ((5, r), (6, c), (7, h)):
                if value is not None:
                    g[slot][value] = g[slot].get(value, 0) + 1
        units: dict[tuple, list] = {}
        for unit, u_street, u_district, district, r, c, declined in (
            DispatchFact.objects.filter(discovered_at__gte=start, discovered_at__lt=end)
            .order_by()
            .values_list(
                "unit_id", "unit_street_id", "unit_district_id", "district_id",
                "to_response_s", "to_control_s", "declined",
            )
        ):  # fmt: skip
            u = units.setdefault((unit, u_street, u_district, district), [0] * 5)
            u[0] += 1
            u[1] += r is not None
            u[2] += bool(declined)
            u[3] += r is None and not declined
            u[4] += c is not None
        with transaction.atomic():
            WeeklyRollup.objects.filter(week=week).delete()
            UnitWeekly.objects.filter(week=week).delete()
            WeeklyRollup.objects.bulk_create(
                [
                    WeeklyRollup(
                        week=week,
                        region_id=region,
                        street_id=street,
                        district_id=district,
                        kind=kind,
                        n=g[0],
                        ok_responded=g[1],
                        ok_controlled=g[2],
                        ok_handled=g[3],
                        ok_all=g[4],
                        hist={"to_response_s": g[5], "to_control_s": g[6], "to_handling_s": g[7]},
                    )  # fmt: skip
                    for (region, street, district, kind), g in groups.items()
                ],
                batch_size=1000,
            )
            UnitWeekly.objects.bulk_create(
                [
                    UnitWeekly(
                        week=week,
                        unit_id=unit,
                        unit_street_id=u_street,
                        unit_district_id=u_district,
                        district_id=district,
                        alerted=u[0],
                        accepted=u[1],
                        declined=u[2],
                        no_answer=u[3],
                        on_site=u[4],
                    )
                    for (unit, u_street, u_district, district), u in units.items()
                ],
                batch_size=2000,
            )
    return len(weeks)
