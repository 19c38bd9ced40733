"""No-notice drills (拉动测试) started by police stations.

Dispatch stays the owner of incidents, waves, dispatches and deliveries; a drill
opens, alerts and closes its incident through dispatch's public write API
(``incident_create``, ``wave_send``, ``incident_close``), so members' phones get
ordinary ``incident.alert`` frames (marked ``is_drill``) and the ordinary member
actions score it.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from dispatch import services as dispatch_services
from dispatch.models import Incident
from dispatch.policy import policy_for
from units.models import Region, StaffProfile, Unit
from units.scoping import staff_profile

from ..models import Drill

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


def drill_start(*, user, scope: str, code: str | None = None, paid_channels: bool = False) -> Drill:
    """Start a no-notice drill: an ``is_drill`` incident for ``scope``; the units are
    alerted in batches by Celery after commit (a city-wide drill is ~23,000 units).

    The chain stays on the free channels (app, Web Push) unless ``paid_channels``
    (the officer ticked "use SMS/voice" after seeing ``drill_paid_estimate``).

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
            paid_channels=paid_channels,
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
    # review.tasks imports this package: the task is looked up when enqueued.
    from ..tasks import drill_send_batch

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
        drill = Drill.objects.select_for_update().get(pk=drill_id)
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
