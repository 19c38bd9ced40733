"""Drill (拉动测试) reads: league tables by unit, station, street, drill, and
one drill's report.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import (
    Exists,
    OuterRef,
    Q,
    QuerySet,
)

from dispatch.models import Delivery, Dispatch
from units.models import Member, Region, Unit
from units.scoping import user_scope

from ..expressions import SecondsBetween
from ..models import Drill
from .arrival import arrival_checks
from .common import targets_s
from .facts import _unit_scope_q
from .stats import _round

# --- drills -----------------------------------------------------------------------------

DRILL_ACK_TARGET_S = "responded"  # a drill is judged on the same 1-3-5 targets
DRILL_ARRIVE_TARGET_S = "controlled"


@dataclass(frozen=True)
class PaidEstimate:
    """What ticking "use SMS/voice" may cost a drill: the worst case, where no
    on-duty member answers before the chain's SMS and voice steps."""

    members: int  # on duty now in the drill's active units
    sms: int
    calls: int
    cost_cny: float


def drill_paid_estimate(*, region: Region) -> PaidEstimate:
    """One SMS and one call per on-duty member for each SMS / voice step of
    ``settings.NOTIFY_CHAIN``, priced by ``settings.NOTIFY_COST_CNY``."""
    members = Member.objects.filter(
        on_duty=True,
        is_active=True,
        unit__is_active=True,
        unit__region__path__startswith=region.path,
    ).count()
    steps = [spec["channel"] for spec in settings.NOTIFY_CHAIN]
    sms = members * steps.count("sms")
    calls = members * steps.count("voice")
    prices = settings.NOTIFY_COST_CNY
    cost = sms * float(prices.get("sms", 0)) + calls * float(prices.get("voice", 0))
    return PaidEstimate(members=members, sms=sms, calls=calls, cost_cny=round(cost, 2))


def drills_visible(*, user):
    """Drills in the user's scope: over a region inside it, or run by a station in it."""

    scope = user_scope(user)
    qs = Drill.objects.select_related("region", "station", "incident", "started_by")
    if scope is not None:
        qs = qs.filter(
            Q(region__path__startswith=scope.path) | Q(station__path__startswith=scope.path)
        )
    return qs.order_by("-created_at")


def _drill_dispatches(*, user, drill_ids=None, since=None, until=None) -> QuerySet[Dispatch]:

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
    return drill_leagues(user=user, by=(by,), since=since, until=until, drill_ids=drill_ids)[by]


def drill_leagues(
    *, user, by: Sequence[str], since=None, until=None, drill_ids=None
) -> dict[str, list[DrillRow]]:
    """League tables for several groupings from one pass over the drill alerts.

    The drills page shows three (station, street, unit): grouped in SQL, each
    re-read every alert and then its per-second duration histograms, seconds a
    page on a city with a few weeks of drills. Here each alert is read once and
    counted into every grouping; medians come from the same exact histograms."""
    t = targets_s()
    ack_target, arrive_target = t[DRILL_ACK_TARGET_S], t[DRILL_ARRIVE_TARGET_S]
    groups = [_DRILL_GROUPS[b][0] for b in by]
    qs = _drill_dispatches(user=user, drill_ids=drill_ids, since=since, until=until).order_by()
    out: dict[str, dict[Any, DrillRow]] = {b: {} for b in by}
    acks: dict[str, dict[Any, list[int]]] = {b: defaultdict(list) for b in by}
    arrivals: dict[str, dict[Any, list[int]]] = {b: defaultdict(list) for b in by}
    for *keys, delivered, to_response, to_control in qs.values_list(
        *groups, "delivered", "to_response_s", "to_control_s"
    ):
        for b, key in zip(by, keys, strict=True):
            row = out[b].get(key)
            if row is None:
                row = out[b][key] = DrillRow(key=key, label="")
            row.units += 1
            row.delivered += bool(delivered)
            if to_response is not None:  # accepted
                row.acknowledged += 1
                row.ack_in_target += to_response <= ack_target
                acks[b][key].append(to_response)
            if to_control is not None:  # on site
                row.arrived += 1
                row.arrived_in_target += to_control <= arrive_target
                arrivals[b][key].append(to_control)
    leagues = {}
    for b in by:
        rows = list(out[b].values())
        for row in rows:
            row.ack_median_s = _round(_median(acks[b].get(row.key)))
            row.arrival_median_s = _round(_median(arrivals[b].get(row.key)))
        _drill_labels(rows, by=b)
        leagues[b] = sorted(
            rows, key=lambda r: (-(r.score or 0), r.arrival_median_s or math.inf, str(r.label))
        )
    return leagues


def _median(values: list[int] | None) -> float | None:
    """``percentile_cont(0.5)`` of the values (interpolated, as PostgreSQL's)."""
    if not values:
        return None
    values.sort()
    pos = (len(values) - 1) / 2
    lo, hi = values[math.floor(pos)], values[math.ceil(pos)]
    return lo + (hi - lo) * (pos - math.floor(pos))


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
