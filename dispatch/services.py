"""Dispatch rules: intake, waves, member actions, escalation.

Views, consumers, tasks and commands all call these functions. Each write runs
in one transaction; first-time timestamps and wave numbers are claimed with
conditional updates; pushes and task enqueues happen after commit.

The public write API - the only way anything outside dispatch writes
incidents, waves or dispatches (intake, drills, a police-station command
board):

- ``incident_create``: open an incident (and, by default, send wave 1);
- ``wave_send``: send a wave to units the caller names;
- ``units_stand_down``: release named units from an incident;
- ``incident_close``: close an incident that nobody reported handled.

Each records who acted (``actor``, a staff user) on the timeline event and
pushes to phones and boards only after the transaction commits.

Size (about 800 lines) is earned for now: every writer of an incident is here,
so the lock order (incident row first) and the after-commit rule read in one
file. It becomes a package (intake, waves, actions, escalation) once the
member-action state machine (``dispatch/actions.py``) has landed beside it.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from units.geo import haversine_m
from units.locate import street_at
from units.models import Member, Region, Unit
from units.services import location_validate

from . import inputs, intake, notify, payloads
from .actions import ACTIONS  # noqa: F401  (re-exported: dispatch.api's choices)
from .actions import EVENT_FOR_ACTION as _EVENT_FOR_ACTION
from .actions import TRANSITIONS as _TRANSITIONS
from .events import (
    Message,
    event_record,
    events_record,
    incident_group,
    push_on_commit,
    to_supervisors,
    unit_group,
)
from .intake import IntakeRefused  # noqa: F401  (public: the edges catch it)
from .models import Deadline, Delivery, Dispatch, Incident, IncidentEvent, MemberLocation, Wave
from .policy import enough_accepts, policy_for, tier_get
from .ranking import Candidate, rank_units

log = logging.getLogger(__name__)


class ActionRefused(Exception):
    """A member action that the incident's state does not allow; nothing changed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class IntakeResult:
    incident: Incident
    created: bool
    wave: Wave | None = None
    candidates: list[Candidate] = field(default_factory=list)


# --- Intake ---------------------------------------------------------------------------


def incident_create(
    *,
    kind: str,
    lat: float,
    lon: float,
    source: str,
    severity: int = Incident.Severity.MEDIUM,
    address: str = "",
    description: str = "",
    external_id: str | None = None,
    discovered_at: dt.datetime | None = None,
    reported_by: Member | None = None,
    created_by=None,
    is_drill: bool = False,
    region: Region | None = None,
    policy: dict[str, Any] | None = None,
    send_wave1: bool = True,
    event_data: dict[str, Any] | None = None,
) -> IntakeResult:
    """Open an incident and send wave 1, straight from the request.

    Runs its own transaction (a savepoint inside the caller's); pushes to the
    supervisors' boards and enqueues escalation timers after commit.
    Idempotent on ``external_id``: a repeat returns the stored incident with
    ``created=False`` and sends nothing.

    For callers that are not intake (a drill): ``region`` names the incident's
    region outright (the point is that region's centre, not a reported place,
    so it is not checked against the service area); ``policy`` replaces the
    policy of kind and severity; ``send_wave1=False`` leaves the units to
    ``wave_send``; ``event_data`` is added to the ``created`` event.
    """
    # What the caller sent, to tell a repeat of the same report from another one.
    sent = {
        "kind": kind,
        "severity": severity,
        "lat": lat,
        "lon": lon,
        "source": source,
        "address": address,
        "description": description,
        "discovered_at": discovered_at,
    }
    if external_id:
        existing = Incident.objects.filter(external_id=external_id).first()
        if existing is not None:
            return _intake_repeat(existing, created_by=created_by, sent=sent)
    now = timezone.now()
    discovery = intake.discovery_settle(discovered_at, now=now)
    if region is None:
        district = location_validate(lat=lat, lon=lon)
        region = street_at(lat=lat, lon=lon, district=district)
        # Drills name their region and were scoped by their caller; intake by
        # the place. Checked before anything is written or anyone alerted.
        intake.scope_check(user=created_by, region=region)
    if discovery.skew_s is not None and discovery.skew_s > settings.DISCOVERY_CLOCK_SKEW_S:
        log.warning("intake %s: clock %.1f s ahead, clamped", external_id, discovery.skew_s)
    if policy is None:
        policy = policy_for(kind=kind, severity=severity)
    try:
        with transaction.atomic():
            incident = Incident.objects.create(
                kind=kind,
                severity=severity,
                lat=lat,
                lon=lon,
                address=address,
                description=description,
                source=source,
                external_id=external_id or None,
                discovered_at=discovery.at,
                reported_by=reported_by,
                created_by=created_by,
                is_drill=is_drill,
                policy=policy,
                region=region,
            )
            event_record(
                incident_id=incident.pk,
                type=IncidentEvent.Type.CREATED,
                member=reported_by,
                user=created_by,
                data={"source": source, **discovery.event_data(), **(event_data or {})},
            )
            wave, candidates = (
                _wave_send(incident=incident, number=1, spec=policy["wave1"], reason="intake")
                if send_wave1
                else (None, [])
            )
            deadlines = _deadlines_create(incident=incident, policy=policy)
            push_on_commit(to_supervisors(incident, payloads.incident_opened(incident)))
    except IntegrityError:
        # A concurrent POST with the same external_id won the race.
        if external_id:
            existing = Incident.objects.filter(external_id=external_id).first()
            if existing is not None:
                return _intake_repeat(existing, created_by=created_by, sent=sent)
        raise
    transaction.on_commit(lambda: _deadlines_schedule(deadlines))
    return IntakeResult(incident=incident, created=True, wave=wave, candidates=candidates)


def _intake_repeat(existing: Incident, *, created_by, sent: dict[str, Any]) -> IntakeResult:
    """A repeated ``external_id``: the stored incident if it is the same report
    and the caller may see it; otherwise a conflict that names nothing of it."""
    if not intake.region_in_scope(user=created_by, region=existing.region):
        raise intake.conflict()
    reported_at = None
    if sent["discovered_at"] not in {None, existing.discovered_at}:
        # Perhaps clamped (a fast clock): the created event kept what it said.
        created = existing.events.filter(type=IncidentEvent.Type.CREATED)
        reported = (created.values_list("data", flat=True).first() or {}).get(
            "discovered_at_reported"
        )
        reported_at = dt.datetime.fromisoformat(reported) if reported else None
    if not intake.same_report(existing, reported_discovered_at=reported_at, **sent):
        raise intake.conflict()
    return IntakeResult(incident=existing, created=False)


def _wave_send(
    *, incident: Incident, number: int, spec: dict[str, Any], reason: str
) -> tuple[Wave | None, list[Candidate]]:
    """Create wave ``number`` with its dispatches, deliveries and alert events.

    Caller holds a transaction and has claimed the right to send this wave.
    """
    # Wave 1 has nobody to leave out: spare the hot path the query.
    already = (
        set(Dispatch.objects.filter(incident=incident).values_list("unit_id", flat=True))
        if number > 1
        else set()
    )
    candidates = rank_units(
        lat=incident.lat,
        lon=incident.lon,
        limit=int(spec["units"]),
        radius_m=spec.get("radius_m"),
        incident_kind=incident.kind,
        exclude=already,
    )
    wave = Wave.objects.create(
        incident=incident, number=number, radius_m=int(spec.get("radius_m") or 0), reason=reason
    )
    if not candidates:
        event_record(
            incident_id=incident.pk,
            type=IncidentEvent.Type.NO_UNITS,
            data={"wave": number, "radius_m": spec.get("radius_m")},
        )
        push_on_commit(to_supervisors(incident, payloads.no_units(incident, wave=number)))
        return wave, []
    _wave_write(
        incident=incident,
        wave=wave,
        units=[(c.unit_id, c.distance_m, c.eta_s) for c in candidates],
        rank0=0,
    )
    return wave, candidates


def _wave_write(
    *,
    incident: Incident,
    wave: Wave,
    units: list[tuple[int, float, int]],
    rank0: int,
    actor=None,
) -> list[Dispatch]:
    """Dispatches, deliveries and ``alerted`` events of one wave to ``units``
    ((unit id, distance m, ETA s), best first); pushes and the Web Push / SMS /
    voice chain after commit. Caller holds the transaction and the wave."""
    data: dict[str, Any] = {"drill": True} if incident.is_drill else {}
    dispatches = Dispatch.objects.bulk_create(
        [
            Dispatch(
                incident=incident,
                wave=wave,
                unit_id=unit_id,
                # Ranks continue across waves; the column is a smallint (a city drill).
                rank=min(rank0 + i + 1, 32767),
                distance_m=round(distance_m),
                eta_s=eta_s,
            )
            for i, (unit_id, distance_m, eta_s) in enumerate(units)
        ]
    )
    on_duty = list(
        Member.objects.filter(
            unit_id__in=[unit_id for unit_id, _d, _e in units], on_duty=True, is_active=True
        ).values_list("id", "unit_id")
    )
    by_unit = {d.unit_id: d for d in dispatches}
    Delivery.objects.bulk_create(
        [Delivery(dispatch=by_unit[unit_id], member_id=member_id) for member_id, unit_id in on_duty]
    )
    events = events_record(
        incident_id=incident.pk,
        events=[
            IncidentEvent(
                type=IncidentEvent.Type.ALERTED,
                unit_id=d.unit_id,
                user=actor,
                data={
                    "wave": wave.number,
                    "rank": d.rank,
                    "distance_m": d.distance_m,
                    "eta_s": d.eta_s,
                    **data,
                },
            )
            for d in dispatches
        ],
    )
    alert = payloads.incident_summary(incident)
    messages: list[Message] = [
        (unit_group(d.unit_id), payloads.alert(event=e, incident_summary=alert, dispatch=d))
        for d, e in zip(dispatches, events, strict=True)
    ]
    messages.append(
        (incident_group(incident.pk), payloads.update(event=events[-1], incident=incident))
    )
    push_on_commit(messages)
    # Pages that are closed get Web Push, then SMS, then voice (dispatch/notify.py).
    notify.chain_start_on_commit(wave_id=wave.pk)
    return dispatches


def wave_send(
    *,
    incident: Incident,
    unit_ids: list[int],
    reason: str,
    actor=None,
    at_own_post: bool = False,
) -> list[Dispatch]:
    """Send the next wave of ``incident`` to these units, in this order: a
    command board's call, a drill's batch. Returns the new dispatches.

    Runs its own transaction (a savepoint inside the caller's) under the
    incident row lock, so wave numbers and event seqs of one incident are
    taken in turn. Units already on the incident and inactive units are
    skipped; with none left, no wave is written and ``[]`` returned.
    Each ``alerted`` event records ``actor``; phones are pushed and the Web
    Push / SMS / voice chain starts after commit. ``at_own_post`` (a drill)
    calls each unit to its own post: ETA 0, nothing to walk.
    """
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        already = Dispatch.objects.filter(incident=incident)
        on_incident = already.count()
        skip = set(already.filter(unit_id__in=unit_ids).values_list("unit_id", flat=True))
        position = {
            pk: (lat, lon)
            for pk, lat, lon in Unit.objects.filter(pk__in=unit_ids, is_active=True).values_list(
                "pk", "lat", "lon"
            )
        }
        todo = [u for u in dict.fromkeys(unit_ids) if u in position and u not in skip]
        if not todo:
            return []
        number = (
            incident.waves.order_by("-number").values_list("number", flat=True).first() or 0
        ) + 1
        wave = Wave.objects.create(incident=incident, number=number, radius_m=0, reason=reason)
        units = []
        for unit_id in todo:
            distance = haversine_m(incident.lat, incident.lon, *position[unit_id])
            units.append((unit_id, distance, 0 if at_own_post else _walk_eta_s(distance)))
        return _wave_write(
            incident=incident, wave=wave, units=units, rank0=on_incident, actor=actor
        )


def _walk_eta_s(distance_m: float) -> int:
    # Ranking's walking ETA (dispatch/ranking.py, ``Candidate.eta_s``) for units
    # the caller picked rather than ranking.
    detour = float(getattr(settings, "RANKING_DETOUR_FACTOR", 1.3))
    speed = float(getattr(settings, "RANKING_WALK_SPEED_MPS", 1.4))
    return math.ceil(distance_m * detour / speed)


def _deadlines_create(*, incident: Incident, policy: dict[str, Any]) -> list[Deadline]:
    base = incident.received_at
    return Deadline.objects.bulk_create(
        [
            Deadline(
                incident=incident,
                tier=tier["name"],
                due_at=base + dt.timedelta(seconds=tier["after_s"]),
            )
            for tier in policy.get("tiers", [])
        ]
    )


def _deadlines_schedule(deadlines: list[Deadline]) -> None:
    """Enqueue a timer per deadline; the beat sweep re-fires any that is lost.

    A deadline further off than half the broker's visibility timeout gets no
    timer: Redis would hand an unacked ETA task to a second worker after that
    timeout. The sweep fires it when due.
    """
    # Imported here: tasks imports this module at its top (cycle services <-> tasks).
    from .tasks import fire_deadline

    horizon = timezone.now() + dt.timedelta(seconds=_countdown_max_s())
    for d in deadlines:
        if d.due_at > horizon:
            continue
        try:
            fire_deadline.apply_async(
                (d.pk,), eta=d.due_at, expires=d.due_at + dt.timedelta(minutes=5)
            )
        except Exception as exc:
            # Broker down: the deadline row stays pending and the sweep fires it.
            log.warning("could not enqueue deadline %s (%r); the sweep will fire it", d.pk, exc)


def _countdown_max_s() -> float:
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {}
    return float(options.get("visibility_timeout", 3600)) / 2


# --- Member actions ---------------------------------------------------------------------

# The state machine lives in dispatch/actions.py (also read by SMS replies and the phone).


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
        messages = _updates_for(incident=incident, events=recorded)
        if action == "accept":
            messages += _stand_down_if_enough(incident=incident)
        if incident.status == Incident.Status.CLOSED:
            messages += _stand_down_rest(incident=incident, closed=True)
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


def _updates_for(*, incident: Incident, events: list[IncidentEvent]) -> list[Message]:
    """Each event goes to every unit still on the incident and to its watchers."""
    unit_ids = (
        Dispatch.objects.filter(incident=incident)
        .exclude(status=Dispatch.Status.STOOD_DOWN)
        .values_list("unit_id", flat=True)
    )
    messages: list[Message] = []
    for event in events:
        payload = payloads.update(event=event, incident=incident)
        messages += [(unit_group(u), payload) for u in unit_ids]
        messages.append((incident_group(incident.pk), payload))
        messages += to_supervisors(incident, payload)
    return messages


def _stand_down_if_enough(*, incident: Incident) -> list[Message]:
    accepted = Dispatch.objects.filter(
        incident=incident,
        status__in=[Dispatch.Status.ACCEPTED, Dispatch.Status.ON_SITE, Dispatch.Status.HANDLED],
    ).count()
    if accepted < enough_accepts(incident.policy):
        return []
    return _stand_down_rest(incident=incident, closed=False)


def _stand_down_rest(*, incident: Incident, closed: bool) -> list[Message]:
    """Release units that were alerted but are not needed, so no post empties for nothing."""
    statuses = [Dispatch.Status.ALERTED, Dispatch.Status.DECLINED]
    if closed:
        statuses.append(Dispatch.Status.ACCEPTED)
    return _stand_down(incident=incident, statuses=statuses, closed=closed)


def _stand_down(
    *,
    incident: Incident,
    statuses: list[str],
    closed: bool,
    unit_ids: list[int] | None = None,
    actor=None,
) -> list[Message]:
    """Move the incident's dispatches in ``statuses`` (of ``unit_ids``, if given)
    to stood down, with one event each; returns the messages to push."""
    rows = Dispatch.objects.select_for_update().filter(incident=incident, status__in=statuses)
    if unit_ids is not None:
        rows = rows.filter(unit_id__in=unit_ids)
    rows = list(rows.values_list("pk", "unit_id"))
    if not rows:
        return []
    Dispatch.objects.filter(pk__in=[pk for pk, _u in rows], status__in=statuses).update(
        status=Dispatch.Status.STOOD_DOWN
    )
    events = events_record(
        incident_id=incident.pk,
        events=[
            IncidentEvent(
                type=IncidentEvent.Type.STOOD_DOWN,
                unit_id=unit_id,
                user=actor,
                data={"closed": closed},
            )
            for _pk, unit_id in rows
        ],
    )
    messages: list[Message] = []
    for event in events:
        payload = payloads.update(event=event, incident=incident)
        messages.append((unit_group(event.unit_id), payload))
        messages.append((incident_group(incident.pk), payload))
    return messages


# A unit on site stays until it reports handled: standing it down would empty a
# scene someone is holding.
_STANDABLE = [Dispatch.Status.ALERTED, Dispatch.Status.DECLINED, Dispatch.Status.ACCEPTED]


def units_stand_down(*, incident: Incident, unit_ids: list[int], actor=None) -> int:
    """Release these units from the incident (a command board's "not needed").

    Only units alerted, declined or accepted are stood down (not one on site);
    each gets a ``stood_down`` event recording ``actor``, pushed to its phones
    and the incident's watchers after commit. Runs its own transaction (a
    savepoint inside the caller's) and takes the incident row lock, like
    every writer of the incident. Returns how many units were stood down.
    """
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        messages = _stand_down(
            incident=incident, statuses=_STANDABLE, closed=False, unit_ids=unit_ids, actor=actor
        )
        push_on_commit(messages)
    return len(messages) // 2


def incident_close(
    *, incident: Incident, actor=None, outcome: str = "closed", stand_down: bool = True
) -> bool:
    """Close an open incident that no unit reported handled: a drill ends, a
    command board closes a false alarm. ``handled_at`` stays empty (nothing was
    handled); the ``closed`` event records ``actor`` and ``outcome``.

    ``stand_down`` releases every unit not yet on site first (a drill keeps
    each unit's last state: that is its score). Every unit ever alerted, the
    incident's watchers and the supervisors' boards are told after commit.
    Runs its own transaction (a savepoint inside the caller's) under the
    incident row lock. Returns False if the incident was already closed.
    """
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        if not Incident.objects.filter(pk=incident.pk, status=Incident.Status.OPEN).update(
            status=Incident.Status.CLOSED
        ):
            return False
        incident.status = Incident.Status.CLOSED
        messages: list[Message] = []
        if stand_down:
            messages += _stand_down(
                incident=incident, statuses=_STANDABLE, closed=True, actor=actor
            )
        data: dict[str, Any] = {"outcome": outcome}
        if incident.is_drill:
            data["drill"] = True
        event = event_record(
            incident_id=incident.pk, type=IncidentEvent.Type.CLOSED, user=actor, data=data
        )
        incident.refresh_from_db()
        payload = payloads.update(event=event, incident=incident)
        unit_ids = Dispatch.objects.filter(incident=incident).values_list("unit_id", flat=True)
        messages += [(unit_group(u), payload) for u in unit_ids]
        messages.append((incident_group(incident.pk), payload))
        messages += to_supervisors(incident, payload)
        push_on_commit(messages)
    return True


def delivery_ack(*, incident_id: int, member: Member, seen: bool = False) -> bool:
    """Record that the alert reached (or was seen on) the member's phone; first time only."""
    if not inputs.id_in_range(incident_id):
        return False
    now = timezone.now()
    field_name = "seen_at" if seen else "delivered_at"
    with transaction.atomic():
        changes = {field_name: now}
        if seen:
            # Seen implies delivered; keep the earlier delivery time if there is one.
            Delivery.objects.filter(
                dispatch__incident_id=incident_id, member=member, delivered_at=None
            ).update(delivered_at=now)
        won = Delivery.objects.filter(
            dispatch__incident_id=incident_id, member=member, **{field_name: None}
        ).update(**changes)
        if not won:
            return False
        event = event_record(
            incident_id=incident_id,
            type=IncidentEvent.Type.SEEN if seen else IncidentEvent.Type.DELIVERED,
            unit_id=member.unit_id,
            member=member,
        )
        incident = Incident.objects.get(pk=incident_id)
        payload = payloads.update(event=event, incident=incident)
        push_on_commit([(incident_group(incident_id), payload)])
    return True


# --- Escalation ------------------------------------------------------------------------


def deadline_fire(*, deadline_id: int) -> str:
    """Fire one escalation deadline if due and not yet fired; returns the outcome.

    Claimed with a conditional update inside the transaction: a retried task, a
    second worker or the sweep can never fire it twice; a worker that dies before
    commit leaves it pending for the sweep.
    """
    now = timezone.now()
    with transaction.atomic():
        claimed = Deadline.objects.filter(pk=deadline_id, fired_at=None, due_at__lte=now).update(
            fired_at=now, outcome="firing"
        )
        if not claimed:
            return "not_due_or_fired"
        deadline = Deadline.objects.get(pk=deadline_id)
        # Row lock: tiers of one incident firing at once take turns for wave numbers.
        incident = Incident.objects.select_for_update().get(pk=deadline.incident_id)
        tier = tier_get(incident.policy, deadline.tier)
        # A tier without "unless" always fires while the incident is open.
        unless = tier.get("unless") if tier is not None else None
        if tier is None:
            outcome = "unknown_tier"
        elif incident.status != Incident.Status.OPEN or (unless and getattr(incident, unless)):
            outcome = "met"
        else:
            outcome = _escalate(incident=incident, tier=tier)
        Deadline.objects.filter(pk=deadline_id).update(outcome=outcome)
    return outcome


def _escalate(*, incident: Incident, tier: dict[str, Any]) -> str:
    data: dict[str, Any] = {"tier": tier["name"], "notify": tier.get("notify", [])}
    messages: list[Message] = []
    events: list[IncidentEvent] = []
    if tier.get("flag") and Incident.objects.filter(pk=incident.pk, flagged=False).update(
        flagged=True
    ):
        incident.flagged = True
        events.append(IncidentEvent(type=IncidentEvent.Type.FLAGGED, data={"tier": tier["name"]}))
    if tier.get("wave"):
        number = (
            incident.waves.order_by("-number").values_list("number", flat=True).first() or 0
        ) + 1
        wave, candidates = _wave_send(
            incident=incident, number=number, spec=tier["wave"], reason=tier["name"]
        )
        data.update(wave=number, units=len(candidates))
    events.append(IncidentEvent(type=IncidentEvent.Type.ESCALATED, data=data))
    recorded = events_record(incident_id=incident.pk, events=events)
    incident.refresh_from_db()
    messages += _updates_for(incident=incident, events=recorded)
    push_on_commit(messages)
    return "escalated"


def deadlines_sweep(*, now: dt.datetime | None = None, limit: int = 500) -> int:
    """Fire every overdue deadline (a dead worker's timers). Returns how many fired."""
    now = now or timezone.now()
    due = list(
        Deadline.objects.filter(fired_at=None, due_at__lte=now)
        .order_by("due_at")
        .values_list("pk", flat=True)[:limit]
    )
    fired = 0
    for deadline_id in due:
        if deadline_fire(deadline_id=deadline_id) != "not_due_or_fired":
            fired += 1
    return fired


# --- Locations -------------------------------------------------------------------------


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
    accuracy_m = inputs.accuracy_clean(accuracy_m)
    if incident_id is not None:
        dispatch = dispatch_for_member(incident_id=incident_id, member=member)
        if dispatch.status not in {Dispatch.Status.ACCEPTED, Dispatch.Status.ON_SITE}:
            raise ActionRefused("not_responding", _("只有正在响应的队员才能共享位置。"))
    with transaction.atomic():
        location = MemberLocation.objects.create(
            member=member, incident_id=incident_id, lat=lat, lon=lon, accuracy_m=accuracy_m
        )
        if incident_id is not None:
            push_on_commit(
                [
                    (
                        incident_group(incident_id),
                        {
                            "type": "responder.location",
                            "id": None,
                            "incident_id": incident_id,
                            "member_id": member.pk,
                            "unit_id": member.unit_id,
                            "lat": lat,
                            "lon": lon,
                            "accuracy_m": accuracy_m,
                            "at": location.created_at.isoformat(),
                        },
                    )
                ]
            )
    return location
