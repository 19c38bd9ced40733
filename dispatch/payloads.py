"""JSON frames sent to phones and dashboards. Every frame has a ``type`` and an ``id``
(the IncidentEvent id: the replay cursor a phone sends back with ``resume``)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from .actions import STATUS_AFTER_EVENT, next_actions
from .models import Dispatch, Incident, IncidentEvent


def iso(value) -> str | None:
    # Local time, as the REST API renders it, so clients can compare the strings.
    return timezone.localtime(value).isoformat() if value else None


_iso = iso


def actor_name(user) -> str:
    return (user.get_full_name() or user.get_username()) if user is not None else ""


def timestamps(incident: Incident) -> dict[str, str | None]:
    return {
        "discovered_at": _iso(incident.discovered_at),
        "responded_at": _iso(incident.responded_at),
        "controlled_at": _iso(incident.controlled_at),
        "handled_at": _iso(incident.handled_at),
    }


def gathering(incident: Incident) -> dict[str, Any] | None:
    """The gathering point (区域集结) responders head for instead of the scene, or None."""
    if incident.gather_lat is None or incident.gather_lon is None:
        return None
    return {
        "lat": incident.gather_lat,
        "lon": incident.gather_lon,
        "note": incident.gather_note,
        "set_at": _iso(incident.gather_set_at),
    }


def own_post(*, lat: float, lon: float) -> dict[str, Any]:
    """A drill's default destination: the unit's own post (到岗)."""
    return {"lat": lat, "lon": lon, "kind": "own_post"}


def _label(choices, value) -> str:
    """``get_FOO_display()`` without its cost: Django rebuilds a dict of every
    choice, translating each label, per call (a reconnect storm's replays spent
    a sixth of their time there)."""
    try:
        return str(choices(value).label)
    except ValueError:
        return str(value)


def incident_summary(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.pk,
        "kind": incident.kind,
        # A drill's headline says it is a drill, not its placeholder kind ("其他").
        "kind_display": _("拉动测试（演练）")
        if incident.is_drill
        else _label(Incident.Kind, incident.kind),
        "severity": incident.severity,
        "severity_display": _label(Incident.Severity, incident.severity),
        "lat": incident.lat,
        "lon": incident.lon,
        "address": incident.address,
        "description": incident.description,
        "status": incident.status,
        "is_drill": incident.is_drill,
        # A member's report: that member's phone shows its confirmation, not an alert.
        "reported_by": incident.reported_by_id,
        "gathering": gathering(incident),
        **timestamps(incident),
    }


def alert(
    *,
    event: IncidentEvent,
    incident_summary: dict[str, Any],
    dispatch: Dispatch,
    destination: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``destination`` is where this unit goes when the incident has no gathering
    point and it is not the scene (a drill: the unit's own post)."""
    return {
        "type": "incident.alert",
        "id": event.pk,
        "seq": event.seq,
        "incident": incident_summary,
        "dispatch": {
            "unit_id": dispatch.unit_id,
            "wave": event.data.get("wave"),
            "rank": dispatch.rank,
            "distance_m": dispatch.distance_m,
            "eta_s": dispatch.eta_s,
            "status": dispatch.status,
            "next_actions": next_actions(dispatch.status),
            "destination": destination,
        },
    }


def update(*, event: IncidentEvent, incident: Incident) -> dict[str, Any]:
    closed = event.type == IncidentEvent.Type.CLOSED
    after = STATUS_AFTER_EVENT.get(event.type) if event.unit_id else None
    # A unit's dispatch moved: its members' phones take the new state and the
    # buttons it allows from here.
    moved = {"dispatch_status": after, "next_actions": next_actions(after)} if after else {}
    return {
        "type": "incident.closed" if closed else "incident.update",
        "id": event.pk,
        "seq": event.seq,
        "incident_id": incident.pk,
        "event": event.type,
        "unit_id": event.unit_id,
        "member_id": event.member_id,
        "data": event.data,
        # Who acted (an officer's board command, a drill), for the boards' timelines.
        "by": actor_name(event.user) if event.user_id else None,
        "at": _iso(event.created_at),
        "status": incident.status,
        "flagged": incident.flagged,
        # Every frame carries the current gathering point: a phone that missed
        # the ``gathering`` event still gets it with the next frame.
        "gathering": gathering(incident),
        **timestamps(incident),
        **moved,
    }


def incident_opened(incident: Incident) -> dict[str, Any]:
    return {"type": "incident.opened", "id": None, "incident": incident_summary(incident)}


def no_units(incident: Incident, *, wave: int) -> dict[str, Any]:
    return {"type": "incident.no_units", "id": None, "incident_id": incident.pk, "wave": wave}
