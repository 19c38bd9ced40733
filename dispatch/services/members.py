"""What members do: accept, decline, on site, handled (the state machine is
dispatch/actions.py), delivery receipts and shared positions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from units.models import Member

from .. import inputs, payloads
from ..actions import EVENT_FOR_ACTION as _EVENT_FOR_ACTION
from ..actions import TRANSITIONS as _TRANSITIONS
from ..events import (
    events_record,
    incident_group,
    push_on_commit,
    to_supervisors,
)
from ..models import Delivery, Dispatch, Incident, IncidentEvent, MemberLocation
from ..sql import marks
from .dispatches import stand_down_if_enough, stand_down_rest, updates_for


class ActionRefused(Exception):
    """A member action that the incident's state does not allow; nothing changed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def dispatch_for_member(*, incident_id: int, member: Member) -> Dispatch:
    """The dispatch of the member's unit to this incident, or ActionRefused."""
    # An id past a 64-bit key names no incident; the driver would raise on it.
    if not inputs.id_in_range(incident_id):
        raise ActionRefused("not_alerted", _("你的单元没有被派往该警情。"))
    dispatch = Dispatch.objects.filter(incident_id=incident_id, unit_id=member.unit_id).first()
    if dispatch is None:
        raise ActionRefused("not_alerted", _("你的单元没有被派往该警情。"))
    return dispatch


def dispatch_act(
    *,
    incident_id: int,
    member: Member,
    action: str,
    lat: float | None = None,
    lon: float | None = None,
) -> Dispatch:
    """A member's accept / decline / on_site / handled, for their unit's dispatch.

    The dispatch moves with a conditional update (a stale or repeated action
    changes nothing and is refused); the incident's first-time timestamp is set
    only if still empty, so a second unit never moves it.
    """
    if action not in _TRANSITIONS:
        raise ActionRefused("unknown_action", _("未知操作：%(a)s") % {"a": action})
    sources, target = _TRANSITIONS[action]
    with transaction.atomic():
        # The incident row first: actions on one incident take turns, every writer
        # locks the incident before other units' dispatches (stand-down), so two
        # accepts cannot deadlock, and "now" is read under the lock, so first-time
        # timestamps follow the order in which the actions commit.
        incident = Incident.objects.select_for_update().filter(pk=incident_id).first()
        # A socket holds its member from connect time: re-read what may have changed.
        member = Member.objects.filter(pk=member.pk).first() or member
        if not member.is_active:
            raise ActionRefused("inactive", _("该队员已停用。"))
        dispatch = dispatch_for_member(incident_id=incident_id, member=member)
        dispatch.incident = incident
        if incident.status != Incident.Status.OPEN:
            raise ActionRefused("closed", _("该警情已结束。"))
        now = timezone.now()
        changes: dict[str, Any] = {"status": target}
        if action == "accept":
            changes.update(accepted_by=member, accepted_at=now)
        elif action == "on_site":
            changes["on_site_at"] = now
        elif action == "handled":
            changes["handled_at"] = now
        moved = Dispatch.objects.filter(pk=dispatch.pk, status__in=sources).update(**changes)
        if not moved:
            dispatch.refresh_from_db(fields=["status"])
            raise ActionRefused(
                "out_of_order",
                _("当前状态“%(s)s”下不能执行该操作。") % {"s": dispatch.get_status_display()},
            )
        dispatch.refresh_from_db()
        data: dict[str, Any] = {"member_name": member.name}
        if lat is not None and lon is not None:
            data.update(lat=lat, lon=lon)
        events = [
            IncidentEvent(
                type=_EVENT_FOR_ACTION[action], unit_id=member.unit_id, member=member, data=data
            )
        ]
        if _first_time_set(incident=incident, action=action, now=now) == "handled_at":
            events.append(
                IncidentEvent(type=IncidentEvent.Type.CLOSED, unit_id=member.unit_id, member=member)
            )
        recorded = events_record(incident_id=incident.pk, events=events)
        incident.refresh_from_db()
        messages = updates_for(incident=incident, events=recorded)
        if action == "accept":
            messages += stand_down_if_enough(incident=incident)
        if incident.status == Incident.Status.CLOSED:
            messages += stand_down_rest(incident=incident, closed=True)
        push_on_commit(messages)
    return dispatch


_FIRST_FIELD = {"accept": "responded_at", "on_site": "controlled_at", "handled": "handled_at"}


def _first_time_set(*, incident: Incident, action: str, now: dt.datetime) -> str | None:
    """Set the incident's first-time timestamp for this action if it is still empty.

    Returns the field name when this call was first, else None.
    """
    field_name = _FIRST_FIELD.get(action)
    if field_name is None:
        return None
    changes: dict[str, Any] = {field_name: now}
    if field_name == "handled_at":
        changes["status"] = Incident.Status.CLOSED
    won = Incident.objects.filter(pk=incident.pk, **{field_name: None}).update(**changes)
    return field_name if won else None


def delivery_ack(*, incident_id: int, member: Member, seen: bool = False) -> bool:
    """Record that the alert reached (or was seen on) the member's phone; first time only."""
    (first,) = deliveries_ack(acks=[DeliveryAck(incident_id=incident_id, member=member, seen=seen)])
    return first


@dataclass(frozen=True)
class DeliveryAck:
    """One receipt a member's phone sent: the alert arrived, or (``seen``) was seen."""

    incident_id: int
    member: Member
    seen: bool = False


def deliveries_ack(*, acks: Sequence[DeliveryAck]) -> list[bool]:
    """Record many receipts in one transaction (a socket process's batch: a
    city-wide alert brings thousands of acks within a second, and one
    transaction each queued them on daphne's one database thread).

    Per ack, in order: True if it was the first of its kind for that member's
    delivery (an ack repeated, even within the batch, records nothing). Each
    first one adds a ``delivered``/``seen`` event to its incident's timeline,
    pushed to the boards after commit. Seen implies delivered; the earlier
    delivery time is kept.
    """
    results = [False] * len(acks)
    wanted = [(i, a) for i, a in enumerate(acks) if inputs.id_in_range(a.incident_id)]
    if not wanted:
        return results
    members_by_incident: dict[int, set[int]] = {}
    for _i, a in wanted:
        members_by_incident.setdefault(a.incident_id, set()).add(a.member.pk)
    with transaction.atomic():
        now = timezone.now()
        state: dict[int, dict[str, Any]] = {}
        by_pair: dict[tuple[int, int], list[int]] = {}
        for pk, member_id, incident_id, not_delivered, not_seen in _receipts_open(
            members_by_incident
        ):
            # Only whether each time is empty matters: a set one is never moved.
            state[pk] = {
                "delivered_at": None if not_delivered else True,
                "seen_at": None if not_seen else True,
            }
            by_pair.setdefault((member_id, incident_id), []).append(pk)
        changed: dict[str, set[int]] = {"delivered_at": set(), "seen_at": set()}
        events: dict[int, list[IncidentEvent]] = {}
        for i, ack in wanted:
            pks = by_pair.get((ack.member.pk, ack.incident_id), [])
            if ack.seen:
                _first_times(pks, "delivered_at", state, changed, now)
            field_name = "seen_at" if ack.seen else "delivered_at"
            if not _first_times(pks, field_name, state, changed, now):
                continue
            results[i] = True
            events.setdefault(ack.incident_id, []).append(
                IncidentEvent(
                    type=IncidentEvent.Type.SEEN if ack.seen else IncidentEvent.Type.DELIVERED,
                    unit_id=ack.member.unit_id,
                    member_id=ack.member.pk,
                )
            )
        for field_name, pks in changed.items():
            if pks:
                _receipts_set(field_name, sorted(pks), now)
        recorded = {
            # In incident order: two batches lock incident rows in the same order.
            incident_id: events_record(incident_id=incident_id, events=events[incident_id])
            for incident_id in sorted(events)
        }
        incidents = Incident.objects.select_related("region").in_bulk(list(recorded))
        messages: list[tuple[str, dict[str, Any]]] = []
        for incident_id, rows_recorded in recorded.items():
            incident = incidents[incident_id]
            for event in rows_recorded:
                payload = payloads.update(event=event, incident=incident)
                # The boards show which channel reached each member, live (and by seq on resume).
                messages += [
                    (incident_group(incident_id), payload),
                    *to_supervisors(incident, payload),
                ]
        push_on_commit(messages)
    return results


# The two statements below are SQL on the models' own table and column names:
# a city-wide alert brings a socket process thousands of receipts a second,
# and Django compiled each id of their IN lists one by one, a sixth of the
# process's CPU in the alert (bench/city.py --profile raw).


def _receipts_open(members_by_incident: dict[int, set[int]]) -> list[tuple]:
    """(delivery id, member id, incident id, delivered_at empty, seen_at empty)
    of these members' deliveries of these incidents with a time still empty,
    locked (PostgreSQL) so a receipt for the same delivery in another process's
    batch waits and then sees this one's times: first time stays first time."""
    q = connection.ops.quote_name
    delivery, dispatch = q(Delivery._meta.db_table), q(Dispatch._meta.db_table)
    # One condition per incident, not per ack: a batch is mostly one incident.
    match, params = [], []
    for incident_id, member_ids in sorted(members_by_incident.items()):
        match.append(f"(p.incident_id = %s AND d.member_id IN ({marks(member_ids)}))")
        params += [incident_id, *sorted(member_ids)]
    lock = " FOR UPDATE OF d" if connection.features.has_select_for_update_of else ""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT d.id, d.member_id, p.incident_id, d.delivered_at IS NULL, d.seen_at IS NULL "  # noqa: S608
            f"FROM {delivery} d JOIN {dispatch} p ON p.id = d.dispatch_id "
            f"WHERE ({' OR '.join(match)}) AND (d.delivered_at IS NULL OR d.seen_at IS NULL) "
            f"ORDER BY d.id{lock}",
            params,
        )
        return cursor.fetchall()


def _receipts_set(field_name: str, pks: list[int], now: dt.datetime) -> None:
    q = connection.ops.quote_name
    column = q(Delivery._meta.get_field(field_name).column)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {q(Delivery._meta.db_table)} SET {column} = %s "  # noqa: S608
            f"WHERE id IN ({marks(pks)})",
            [connection.ops.adapt_datetimefield_value(now), *pks],
        )


def _first_times(
    pks: list[int],
    field_name: str,
    state: dict[int, dict[str, Any]],
    changed: dict[str, set[int]],
    now: dt.datetime,
) -> bool:
    """Set ``field_name`` on those of ``pks`` where it is empty; True if any was."""
    won = False
    for pk in pks:
        if state[pk][field_name] is None:
            state[pk][field_name] = now
            changed[field_name].add(pk)
            won = True
    return won


def member_location_record(
    *,
    member: Member,
    lat: float,
    lon: float,
    accuracy_m: float | None = None,
    incident_id: int | None = None,
) -> MemberLocation:
    """Store a responder's position; with an incident, show it on that incident's map.

    ``accuracy_m`` must be finite, from 0 to ``LOCATION_ACCURACY_MAX_M``
    (ValidationError on ``accuracy``): every edge a location enters by comes here.
    """
    report = LocationReport(
        member=member,
        lat=lat,
        lon=lon,
        accuracy_m=inputs.accuracy_clean(accuracy_m),
        incident_id=incident_id,
    )
    ((location, refused),) = member_locations_record(reports=[report])
    if refused is not None:
        raise refused
    return location


@dataclass(frozen=True)
class LocationReport:
    """One position a member sent; ``accuracy_m`` already checked (``inputs.accuracy_clean``)."""

    member: Member
    lat: float
    lon: float
    accuracy_m: float | None = None
    incident_id: int | None = None


_RESPONDING = {Dispatch.Status.ACCEPTED, Dispatch.Status.ON_SITE}


def member_locations_record(
    *, reports: Sequence[LocationReport]
) -> list[tuple[MemberLocation | None, ActionRefused | None]]:
    """Store many positions in one transaction (a socket process's batch: one
    database call for hundreds of responders moving, not one each), pushed to
    each incident's watchers after commit. Per report, in order: the stored row,
    or the refusal (position for an incident the member's unit is not responding
    to), and then nothing is stored for that report.
    """
    wanted = {
        (r.incident_id, r.member.unit_id)
        for r in reports
        if r.incident_id is not None and inputs.id_in_range(r.incident_id)
    }
    status = (
        {
            (incident_id, unit_id): st
            for incident_id, unit_id, st in Dispatch.objects.filter(
                incident_id__in={i for i, _u in wanted}, unit_id__in={u for _i, u in wanted}
            ).values_list("incident_id", "unit_id", "status")
        }
        if wanted
        else {}
    )
    out: list[tuple[MemberLocation | None, ActionRefused | None]] = []
    rows: list[MemberLocation] = []
    for r in reports:
        if r.incident_id is not None:
            st = status.get((r.incident_id, r.member.unit_id))
            if st is None:
                out.append((None, ActionRefused("not_alerted", _("你的单元没有被派往该警情。"))))
                continue
            if st not in _RESPONDING:
                refused = ActionRefused("not_responding", _("只有正在响应的队员才能共享位置。"))
                out.append((None, refused))
                continue
        row = MemberLocation(
            member=r.member,
            incident_id=r.incident_id,
            lat=r.lat,
            lon=r.lon,
            accuracy_m=r.accuracy_m,
        )
        rows.append(row)
        out.append((row, None))
    if not rows:
        return out
    with transaction.atomic():
        MemberLocation.objects.bulk_create(rows)
        push_on_commit(
            [
                (
                    incident_group(row.incident_id),
                    {
                        "type": "responder.location",
                        "id": None,
                        "incident_id": row.incident_id,
                        "member_id": row.member_id,
                        "unit_id": row.member.unit_id,
                        "lat": row.lat,
                        "lon": row.lon,
                        "accuracy_m": row.accuracy_m,
                        "at": row.created_at.isoformat(),
                    },
                )
                for row in rows
                if row.incident_id is not None
            ]
        )
    return out
