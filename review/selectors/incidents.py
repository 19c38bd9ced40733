"""Incidents in the reviewer's scope, annotated with durations and 1-3-5
compliance; one incident's timeline and responder trails.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass

from django.db.models import (
    Case,
    F,
    IntegerField,
    Q,
    QuerySet,
    Value,
    When,
)
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from dispatch.models import Delivery, Incident, IncidentEvent, MemberLocation, NotificationAttempt
from units.models import Region
from units.scoping import scope_filter

from ..expressions import SecondsBetween
from .common import (
    _DURATION_FIELDS,
    STEPS,
    ReviewInputError,
    region_for_review,
    targets_s,
    time_range_parse,
)

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


# --- which channel reached each member ------------------------------------------------------

REACH_CHANNELS = ("push", "sms", "voice")
REACH_ROWS_MAX = 500
REACH_LABELS = {
    "app": gettext_lazy("应用页面"),
    "push": gettext_lazy("推送通知"),
    "sms": gettext_lazy("短信"),
    "voice": gettext_lazy("语音电话"),
}


@dataclass
class ChannelTry:
    status: str  # NotificationAttempt.Status value
    status_display: str
    at: dt.datetime
    detail: str = ""


@dataclass
class MemberReach:
    """How one alerted member was reached for one incident: the open page's
    receipt and each step of the chain (push, SMS, voice)."""

    unit_code: str
    member_name: str
    app_at: dt.datetime | None
    tries: dict[str, ChannelTry]
    first_channel: str | None = None  # "app" or a chain channel: the first that reached
    first_at: dt.datetime | None = None

    @property
    def first_label(self) -> str:
        return str(REACH_LABELS.get(self.first_channel, self.first_channel or ""))

    @property
    def cells(self) -> list[ChannelTry | None]:
        return [self.tries.get(c) for c in REACH_CHANNELS]


def incident_reach(*, incident: Incident, limit: int = REACH_ROWS_MAX) -> list[MemberReach]:
    """Per alerted member, which channel reached them and when (two queries).

    A chain step counts as reaching the member when sent (the provider took it);
    the page counts when it acknowledged the alert (``Delivery.delivered_at``).
    """
    deliveries = list(
        Delivery.objects.filter(dispatch__incident=incident)
        .select_related("member", "dispatch__unit")
        .order_by("dispatch__unit__code", "member__name", "pk")[:limit]
    )
    tries: dict[int, dict[str, ChannelTry]] = defaultdict(dict)
    attempts = NotificationAttempt.objects.filter(
        delivery_id__in=[d.pk for d in deliveries]
    ).order_by("created_at")
    for a in attempts:
        tries[a.delivery_id][a.channel] = ChannelTry(
            status=a.status,
            status_display=a.get_status_display(),
            at=a.created_at,
            detail=a.detail,
        )
    rows = []
    for d in deliveries:
        row = MemberReach(
            unit_code=d.dispatch.unit.code,
            member_name=d.member.name,
            app_at=d.delivered_at,
            tries=tries.get(d.pk, {}),
        )
        reached = [(t.at, c) for c, t in row.tries.items() if t.status == "sent"]
        if d.delivered_at is not None:
            reached.append((d.delivered_at, "app"))
        if reached:
            row.first_at, row.first_channel = min(reached)
        rows.append(row)
    return rows
