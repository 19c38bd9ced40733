"""Reads of the supervisor socket (``/ws/supervisor/``) and the command board built
on it: one incident's whole state as a board draws it, and the timeline frames
after a per-incident ``seq`` (a reconnecting board resumes without gaps).

The board is a client of the socket: these reads are dispatch's, so the board
app (above dispatch) can use them and the consumer (in dispatch) can send them.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from units.models import Member
from units.scoping import phone_for

from . import payloads
from .models import Delivery, Dispatch, Incident, IncidentEvent, MemberLocation, NotificationAttempt
from .selectors import incident_list

# A resuming board gets at most this many missed events of one incident as
# frames; the ``incident.state`` that follows carries everything else.
REPLAY_MAX = 500
TIMELINE_TAIL = 60


def supervisor_incidents(*, user, ids: list[int] | None = None) -> list[Incident]:
    """Open incidents in the user's scope, plus those of ``ids`` in scope whatever
    their state (a board that knew them learns they closed)."""
    q = Q(status=Incident.Status.OPEN)
    if ids:
        q |= Q(pk__in=ids)
    return list(incident_list(user=user).filter(q).order_by("received_at"))


def events_after(*, incident: Incident, after_seq: int) -> list[dict[str, Any]]:
    """The incident's timeline after ``after_seq`` as update frames (``replay``)."""
    events = (
        IncidentEvent.objects.filter(incident=incident, seq__gt=after_seq)
        .select_related("user")
        .order_by("seq")[:REPLAY_MAX]
    )
    return [{**payloads.update(event=e, incident=incident), "replay": True} for e in events]


def incident_state(*, user, incident: Incident) -> dict[str, Any]:
    """Everything a board shows of one incident: summary, waves, each alerted unit's
    state with its receipts by channel and its leader's phone (masked for roles
    that must not see it), responders' last positions and the timeline's tail."""
    dispatches = list(
        Dispatch.objects.filter(incident=incident)
        .select_related("unit", "wave")
        .annotate(
            members_n=Count("deliveries", distinct=True),
            delivered_n=Count(
                "deliveries", filter=Q(deliveries__delivered_at__isnull=False), distinct=True
            ),
        )
        .order_by("rank")
    )
    unit_ids = [d.unit_id for d in dispatches]
    # Each member's channels as the board shows them (and updates from the feed's
    # delivered / seen / reached / notify_failed frames): [member, unit, channel,
    # "reached" | "failed"]; a unit shows the channels that reached any member.
    reach: list[list[Any]] = [
        [member_id, unit_id, "app", "reached"]
        for member_id, unit_id in Delivery.objects.filter(
            dispatch__incident=incident, delivered_at__isnull=False
        ).values_list("member_id", "dispatch__unit_id")
    ]
    for member_id, unit_id, channel, reached_at, status in NotificationAttempt.objects.filter(
        delivery__dispatch__incident=incident
    ).values_list(
        "delivery__member_id", "delivery__dispatch__unit_id", "channel", "reached_at", "status"
    ):
        if reached_at is not None:
            reach.append([member_id, unit_id, channel, "reached"])
        elif status == NotificationAttempt.Status.FAILED:
            reach.append([member_id, unit_id, channel, "failed"])
    channels: dict[int, set[str]] = defaultdict(set)
    failed: dict[int, set[str]] = defaultdict(set)
    for _member_id, unit_id, channel, state in reach:
        (channels if state == "reached" else failed)[unit_id].add(channel)
    leaders: dict[int, Member] = {}
    for m in Member.objects.filter(
        unit_id__in=unit_ids, role=Member.Role.LEADER, is_active=True
    ).order_by("unit_id", "id"):
        leaders.setdefault(m.unit_id, m)
    units = []
    for d in dispatches:
        leader = leaders.get(d.unit_id)
        units.append(
            {
                "unit_id": d.unit_id,
                "code": d.unit.code,
                "name": d.unit.name,
                "lat": d.unit.lat,
                "lon": d.unit.lon,
                "wave": d.wave.number,
                "rank": d.rank,
                "distance_m": d.distance_m,
                "eta_s": d.eta_s,
                "status": d.status,
                "alerted_at": payloads.iso(d.created_at),
                "accepted_at": payloads.iso(d.accepted_at),
                "on_site_at": payloads.iso(d.on_site_at),
                "members": d.members_n,
                "delivered": d.delivered_n,
                "channels": sorted(channels.get(d.unit_id, ())),
                "failed_channels": sorted(
                    failed.get(d.unit_id, set()) - channels.get(d.unit_id, set())
                ),
                "leader": (
                    {"name": leader.name, "phone": phone_for(user, leader.phone)}
                    if leader
                    else None
                ),
            }
        )
    waves = [
        {"number": w.number, "reason": w.reason, "at": payloads.iso(w.created_at)}
        for w in incident.waves.order_by("number")
    ]
    positions = _last_positions(incident)
    tail = list(
        IncidentEvent.objects.filter(incident=incident)
        .select_related("user", "unit", "member")
        .order_by("-seq")[:TIMELINE_TAIL]
    )
    timeline = [
        {**payloads.update(event=e, incident=incident), "unit_code": e.unit.code if e.unit else ""}
        for e in reversed(tail)
    ]
    return {
        "type": "incident.state",
        "id": None,
        "incident": {
            **payloads.incident_summary(incident),
            "flagged": incident.flagged,
            "received_at": payloads.iso(incident.received_at),
            "street": incident.region.name if incident.region_id else "",
        },
        "seq": incident.last_seq,
        "targets_at": _targets(incident),
        "waves": waves,
        "units": units,
        "positions": positions,
        "reach": reach,
        "timeline": timeline,
    }


def _last_positions(incident: Incident) -> list[dict[str, Any]]:
    rows = (
        MemberLocation.objects.filter(incident=incident)
        .select_related("member")
        .order_by("member_id", "-created_at")
    )
    seen: dict[int, dict[str, Any]] = {}
    for loc in rows[:5000]:
        if loc.member_id in seen:
            continue
        seen[loc.member_id] = {
            "member_id": loc.member_id,
            "unit_id": loc.member.unit_id,
            "name": loc.member.name,
            "lat": loc.lat,
            "lon": loc.lon,
            "at": loc.created_at.isoformat(),
        }
    return list(seen.values())


def _targets(incident: Incident) -> dict[str, str]:
    """The 1-3-5 / 10 / 20-minute marks of the incident's clock, from discovery."""
    marks = {**settings.RESPONSE_TARGETS_S, **settings.BOARD_RING_TARGETS_S}
    start = incident.discovered_at
    return {name: payloads.iso(start + timezone.timedelta(seconds=s)) for name, s in marks.items()}
