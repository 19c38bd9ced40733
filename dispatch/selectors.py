from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import DEFERRED, F, Q, QuerySet
from django.db.models.query import RawQuerySet
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from units.models import Member, StaffProfile, Unit
from units.scoping import scope_filter, user_may

from . import payloads
from .events import SUPERVISORS_GROUP, region_group
from .models import Delivery, Dispatch, Incident, IncidentEvent
from .socket_pass import socket_pass_read
from .sql import marks

# Events a member's phone shows; delivery receipts are for supervisors only.
_MEMBER_EVENT_TYPES = {
    IncidentEvent.Type.ACCEPTED,
    IncidentEvent.Type.DECLINED,
    IncidentEvent.Type.ON_SITE,
    IncidentEvent.Type.HANDLED,
    IncidentEvent.Type.ESCALATED,
    IncidentEvent.Type.STOOD_DOWN,
    IncidentEvent.Type.CLOSED,
}
# Sent to a phone only for its own unit (an alert only while on duty).
_OWN_UNIT_EVENT_TYPES = {IncidentEvent.Type.ALERTED, IncidentEvent.Type.STOOD_DOWN}


# Staff who raise incidents: the 110 integration's account, police stations and
# the admins' consoles. Reviewers only read.
INTAKE_ROLES = frozenset(
    {
        StaffProfile.Role.CITY_ADMIN,
        StaffProfile.Role.DISTRICT_ADMIN,
        StaffProfile.Role.STREET_ADMIN,
        StaffProfile.Role.POLICE_STATION,
    }
)


def user_may_raise_incidents(*, user) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_superuser:
        return True
    profile = getattr(user, "staff", None)
    return profile is not None and profile.role in INTAKE_ROLES


def member_for_user(*, user) -> Member | None:
    if not getattr(user, "is_authenticated", False):
        return None
    return Member.objects.select_related("unit").filter(user=user).first()


SOCKET_MEMBER_FIELDS = (
    "name",
    "unit_id",
    "user_id",
    "on_duty",
    "is_active",
    "unit__name",
    "unit__lat",
    "unit__lon",
    "unit__is_active",
)


def member_for_socket(*, session_key: str | None, member_pass: str | None) -> Member | None:
    """The member a member socket's cookies sign in, with its unit; None if the
    cookies sign in no member. The caller refuses an inactive member or unit.

    With a valid pass (``dispatch.socket_pass``) this is one query; without
    (a phone signed in before passes existed) two: the session row, then the
    member. Either way it checks what Django's session authentication does:
    the session exists and is unexpired, its login is active and its password
    unchanged (the session's auth hash).
    """
    if not session_key:
        return None
    login_fields = {
        "login_active": F("user__is_active"),
        "login_password": F("user__password"),
    }
    # What the socket reads in its event loop, and no more: a socket keeps its
    # member for its life (memory per socket). A deferred field read there
    # would be a query outside the database thread, so these are all it may read.
    members = Member.objects.select_related("unit").only(*SOCKET_MEMBER_FIELDS)
    found = socket_pass_read(value=member_pass, session_key=session_key)
    if found is not None:
        row = _socket_row(found.member_id, found.user_id, session_key)
        if row is None:
            return None
        member, login_active, login_password, session_live = row
        if not session_live:
            return None
        hashes_ok = found.auth_hash_matches(_session_auth_hashes(login_password))
        return member if login_active and hashes_ok else None
    # No pass: Django's own way, as channels' AuthMiddleware did it.
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    if session.get(BACKEND_SESSION_KEY) not in settings.AUTHENTICATION_BACKENDS:
        return None
    try:
        user_id = get_user_model()._meta.pk.to_python(session.get(SESSION_KEY))
    except ValidationError:
        return None
    if user_id is None:
        return None
    member = members.filter(user_id=user_id).annotate(**login_fields).first()
    if member is None or not member.login_active:
        return None
    session_hash = session.get(HASH_SESSION_KEY) or ""
    hashes = _session_auth_hashes(member.__dict__.pop("login_password"))
    return member if any(constant_time_compare(session_hash, h) for h in hashes) else None


def _socket_row(
    member_id: int, user_id: int, session_key: str
) -> tuple[Member, bool, str, bool] | None:
    """The pass's member (``SOCKET_MEMBER_FIELDS``, its unit attached), its
    login's active flag and password hash, and whether the session is live: one
    query. Raw SQL: every handshake of a reconnect storm runs it on the one
    database thread, and building the ORM's query cost more than running it."""
    q = connection.ops.quote_name
    member_t, unit_t = q(Member._meta.db_table), q(Unit._meta.db_table)
    login_t, session_t = q(get_user_model()._meta.db_table), q(Session._meta.db_table)
    sql = (
        "SELECT m.id, m.name, m.unit_id, m.user_id, m.on_duty, m.is_active,"  # noqa: S608 - names are ours
        " u.name, u.lat, u.lon, u.is_active, l.is_active, l.password,"
        f" EXISTS(SELECT 1 FROM {session_t} s WHERE s.session_key = %s AND s.expire_date > %s)"
        f" FROM {member_t} m JOIN {unit_t} u ON u.id = m.unit_id"
        f" JOIN {login_t} l ON l.id = m.user_id"
        " WHERE m.id = %s AND m.user_id = %s"
    )
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(sql, [session_key, now, member_id, user_id])
        row = cursor.fetchone()
    if row is None:
        return None
    (mid, name, unit_id, uid, on_duty, active, unit_name, lat, lon, unit_active) = row[:10]
    login_active, password, session_live = row[10:]
    unit = _loaded(Unit, id=unit_id, name=unit_name, lat=lat, lon=lon, is_active=bool(unit_active))
    member = _loaded(
        Member,
        id=mid,
        name=name,
        unit_id=unit_id,
        user_id=uid,
        on_duty=bool(on_duty),
        is_active=bool(active),
    )
    member.unit = unit
    return member, bool(login_active), password, bool(session_live)


def _loaded(model, **values):
    """An instance as the ORM loads one with only these fields (the rest deferred)."""
    fields = model._meta.concrete_fields
    return model.from_db(
        connection.alias,
        [f.attname for f in fields if f.attname in values],
        [values.get(f.attname, DEFERRED) for f in fields],
    )


def _session_auth_hashes(password: str) -> list[str]:
    """The login's session auth hashes (current secret key first, then the
    fallbacks), from its password hash: ``get_session_auth_hash`` reads nothing else."""
    login = get_user_model()(password=password)
    return [login.get_session_auth_hash(), *login.get_session_auth_fallback_hash()]


def member_replay(*, member: Member, last_event_id: int) -> list[dict[str, Any]]:
    """Frames the member's phone missed after ``last_event_id``, oldest first.

    Read from the stored timeline, not from live messages. Two sources:

    - every alert addressed to the member (a ``Delivery`` row) in the last
      ``REPLAY_UNACKED_S`` that it has not acked, with its incident's events,
      whatever the cursor says: a frame lost on the fast path (a Redis outage) is
      often followed by a live one that moves the cursor past it;
    - the events after the cursor. Within one incident ids commit in id order
      (``events_record`` holds the incident's row lock until commit), but across
      incidents a lower id can commit after the cursor; so other incidents'
      events a few seconds older than the cursor are re-sent too.

    The phone drops ids it already has.
    """
    now = timezone.now()
    unacked = list(
        _unacked(member_ids=[member.pk], now=now).values_list("dispatch__incident_id", flat=True)
    )
    since = now - dt.timedelta(hours=settings.REPLAY_WINDOW_HOURS)
    # Raw SQL below: a reconnect storm runs this once per phone on the one
    # database thread, and building the ORM's queries cost more than running them.
    table = connection.ops.quote_name(Dispatch._meta.db_table)
    with connection.cursor() as db:
        db.execute(
            f"SELECT incident_id FROM {table} WHERE unit_id = %s AND created_at >= %s",  # noqa: S608
            [member.unit_id, _db_time(since)],
        )
        incident_ids = {incident_id for (incident_id,) in db.fetchall()}
    if not incident_ids:
        return []
    on_duty = _exists(
        Member, "id = %s AND on_duty = %s AND is_active = %s", [member.pk, True, True]
    )
    # Wanted: after the cursor, or of an unacked alert's incident, or (below) of
    # another incident a few seconds older than the cursor.
    wanted = ["{id} > %s"]
    params: list[Any] = [last_event_id]
    if unacked:
        wanted.append(f"{{incident_id}} IN ({marks(unacked)})")
        params += unacked
    cursor = next(iter(_rows_where(IncidentEvent, "id = %s", [last_event_id])), None)
    if cursor is not None:
        lookback = dt.timedelta(seconds=settings.REPLAY_LOOKBACK_S)
        wanted.append("({created_at} >= %s AND {incident_id} <> %s)")
        params += [_db_time(cursor.created_at - lookback), cursor.incident_id]
    events = _events_sent(
        incident_ids,
        unit_ids=[member.unit_id],
        alerts=on_duty,
        wanted=(" OR ".join(wanted), params),
    )
    # The dispatch rows of the alerts sent only, not of every incident the
    # unit was sent to in the window.
    alerted = sorted({e.incident_id for e in events if e.type == IncidentEvent.Type.ALERTED})
    dispatches = {
        (d.unit_id, d.incident_id): d
        for d in (
            _rows_where(
                Dispatch,
                f"unit_id = %s AND incident_id IN ({marks(alerted)})",
                [member.unit_id, *alerted],
            )
            if alerted
            else ()
        )
    }
    return _Frames(dispatches).of(member.unit, events)


def _unacked(*, member_ids: list[int], now: dt.datetime) -> QuerySet[Delivery]:
    """Alerts to these members in the last ``REPLAY_UNACKED_S`` not yet acked,
    while they are on duty (off duty means no alerts, live or replayed)."""
    return Delivery.objects.filter(
        member_id__in=member_ids,
        member__on_duty=True,
        member__is_active=True,
        delivered_at=None,
        dispatch__unit_id=F("member__unit_id"),
        created_at__gte=now - dt.timedelta(seconds=settings.REPLAY_UNACKED_S),
    )


def _events_sent(
    incident_ids: Collection[int],
    *,
    unit_ids: Collection[int],
    alerts: bool,
    wanted: tuple[str, list[Any]] | None = None,
) -> list[IncidentEvent]:
    """The events of ``incident_ids`` (and ``wanted``: an SQL condition on the
    event table's ``{column}``s, and its parameters) that some phone of
    ``unit_ids`` is sent, in id order, each with its incident and user.

    Only those types, in SQL, in one query the index ``event_incident_type_unit``
    answers: a city-wide alert leaves a receipt and channel events per member
    reached, which no phone is sent, and an alert per unit, of which a phone
    gets one. Raw SQL: a reconnect storm runs this once per phone, and building
    the ORM's query took longer than running it (profiled, 10,000 phones).
    """
    if not incident_ids or not unit_ids:
        return []
    own_types = sorted(_OWN_UNIT_EVENT_TYPES if alerts else {IncidentEvent.Type.STOOD_DOWN})
    shared_types = sorted(_MEMBER_EVENT_TYPES - _OWN_UNIT_EVENT_TYPES)
    incident_ids, unit_ids = sorted(incident_ids), sorted(unit_ids)
    q = connection.ops.quote_name
    column = {f.attname: q(f.column) for f in IncidentEvent._meta.concrete_fields}
    condition, params = wanted or ("", [])
    condition = f" AND ({condition.format(**column)})" if condition else ""
    # SQLite's planner, given the OR in ``wanted``, read every event of the
    # unit (its receipts of every incident ever) through the unit index, or
    # scanned the table once ANALYZE had run: the index that answers both
    # arms is named. PostgreSQL's planner picks it by itself.
    indexed = " INDEXED BY event_incident_type_unit" if connection.vendor == "sqlite" else ""
    base = (
        # Names are the model's, values all placeholders.
        f"SELECT {', '.join(column.values())} FROM {q(IncidentEvent._meta.db_table)}{indexed}"  # noqa: S608
        f" WHERE {column['incident_id']} IN ({marks(incident_ids)})"
    )
    sql = (
        f"{base} AND {column['type']} IN ({marks(shared_types)}){condition}"
        f" UNION ALL {base} AND {column['type']} IN ({marks(own_types)})"
        f" AND {column['unit_id']} IN ({marks(unit_ids)}){condition}"
        " ORDER BY 1"
    )
    events = list(
        IncidentEvent.objects.raw(
            sql,
            [*incident_ids, *shared_types, *params, *incident_ids, *own_types, *unit_ids, *params],
        )
    )
    if not events:
        return []
    ids = sorted({e.incident_id for e in events})
    incidents = {i.pk: i for i in _rows_where(Incident, f"id IN ({marks(ids)})", ids)}
    users = get_user_model().objects.in_bulk({e.user_id for e in events if e.user_id})
    for event in events:
        event.incident = incidents[event.incident_id]
        event.user = users.get(event.user_id) if event.user_id else None
    return events


def _rows_where(model, where: str, params: list[Any]) -> RawQuerySet:
    """``model``'s whole rows matching ``where`` (SQL on its own column names,
    values as placeholders), without building an ORM query."""
    q = connection.ops.quote_name
    columns = ", ".join(q(f.column) for f in model._meta.concrete_fields)
    table = q(model._meta.db_table)
    return model.objects.raw(f"SELECT {columns} FROM {table} WHERE {where}", params)  # noqa: S608


def _exists(model, where: str, params: list[Any]) -> bool:
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {table} WHERE {where}", params)  # noqa: S608
        return cursor.fetchone() is not None


def _db_time(value: dt.datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


class _Frames:
    """Phone frames of stored events, each built once: an update is the same
    frame for every phone, an alert the same for every phone of its unit."""

    def __init__(self, dispatches: dict[tuple[int, int], Dispatch]) -> None:
        self.dispatches = dispatches  # by (unit id, incident id)
        self.updates: dict[int, dict[str, Any]] = {}
        self.alerts: dict[tuple[int, int], dict[str, Any]] = {}
        self.summaries: dict[int, dict[str, Any]] = {}

    def of(self, unit: Unit, events: list[IncidentEvent]) -> list[dict[str, Any]]:
        """``unit``'s phones' frames of ``events`` (already limited to what some
        phone is sent): other units' alerts and stand-downs are left out."""
        frames: list[dict[str, Any]] = []
        for event in events:
            if event.type in _OWN_UNIT_EVENT_TYPES and event.unit_id != unit.pk:
                continue
            if event.type == IncidentEvent.Type.ALERTED:
                frames.append(self._alert(unit, event))
            else:
                frame = self.updates.get(event.pk)
                if frame is None:
                    frame = self.updates[event.pk] = payloads.update(
                        event=event, incident=event.incident
                    )
                frames.append(frame)
        return frames

    def _alert(self, unit: Unit, event: IncidentEvent) -> dict[str, Any]:
        key = (unit.pk, event.pk)
        frame = self.alerts.get(key)
        if frame is None:
            incident = event.incident
            summary = self.summaries.get(incident.pk)
            if summary is None:
                summary = self.summaries[incident.pk] = payloads.incident_summary(incident)
            post = payloads.own_post(lat=unit.lat, lon=unit.lon) if incident.is_drill else None
            frame = self.alerts[key] = payloads.alert(
                event=event,
                incident_summary=summary,
                dispatch=self.dispatches[(unit.pk, incident.pk)],
                destination=post,
            )
        return frame


def _unacked_frames(
    *,
    member_ids: list[int],
    unacked_sent_before: dt.datetime,
    skip: dict[int, set[int]] | None = None,
) -> dict[int, list[dict[str, Any]]]:
    """The heartbeat's redelivery: for each member with alerts still unacked,
    sent before ``unacked_sent_before`` (an ack on its way is not raced), those
    incidents' frames again, as ``member_replay`` sends them.

    A few queries for all the members together, and each frame built once: a
    city-wide wave whose acks are late leaves thousands of members at one beat,
    each with the same incident of a thousand units' alerts.
    """
    now = timezone.now()
    rows = list(
        _unacked(member_ids=member_ids, now=now)
        .filter(created_at__lt=unacked_sent_before)
        .values_list("member_id", "dispatch_id", "dispatch__incident_id")
    )
    if skip:
        rows = [row for row in rows if row[2] not in skip.get(row[0], ())]
    if not rows:
        return {}
    make = _Frames(
        {
            (d.unit_id, d.incident_id): d
            for d in Dispatch.objects.filter(pk__in={dispatch_id for _m, dispatch_id, _i in rows})
        }
    )
    members = Member.objects.select_related("unit").in_bulk({m for m, _d, _i in rows})
    wanted: dict[int, set[int]] = {}
    for member_id, _dispatch_id, incident_id in rows:
        wanted.setdefault(member_id, set()).add(incident_id)
    # Per incident: the events every phone is sent, and each unit's own.
    shared: dict[int, list[IncidentEvent]] = {}
    own: dict[tuple[int, int], list[IncidentEvent]] = {}
    for event in _events_sent(
        {i for _m, _d, i in rows},
        unit_ids={m.unit_id for m in members.values()},
        alerts=True,  # _unacked: on duty
    ):
        if event.type in _OWN_UNIT_EVENT_TYPES:
            own.setdefault((event.unit_id, event.incident_id), []).append(event)
        else:
            shared.setdefault(event.incident_id, []).append(event)
    by_unit: dict[tuple[int, frozenset[int]], list[dict[str, Any]]] = {}
    out: dict[int, list[dict[str, Any]]] = {}
    for member_id, incident_ids in wanted.items():
        unit = members[member_id].unit
        key = (unit.pk, frozenset(incident_ids))
        frames = by_unit.get(key)
        if frames is None:
            events = sorted(
                (
                    event
                    for i in incident_ids
                    for event in (*shared.get(i, ()), *own.get((unit.pk, i), ()))
                ),
                key=lambda event: event.pk,
            )
            frames = by_unit[key] = make.of(unit, events)
        if frames:
            out[member_id] = frames
    return out


def incident_list(*, user) -> QuerySet[Incident]:
    """Incidents in the user's region scope. An incident outside every street (no
    region) is visible only to city-wide staff: superusers and staff scoped to the
    root of the region tree."""
    incidents = Incident.objects.select_related("region")
    if getattr(user, "is_superuser", False):
        # Not ``scope_filter(...) | Q(region__isnull=True)``: the superuser's
        # filter is an empty Q(), and ``Q() | q`` is just ``q``, which hid every
        # incident with a region from a superuser who also holds a staff role.
        return incidents
    q = scope_filter(user, "incident")
    if _city_wide(user):
        q |= Q(region__isnull=True)
    return incidents.filter(q)


def _city_wide(user) -> bool:
    profile = getattr(user, "staff", None)
    return profile is not None and profile.region.parent_id is None


def incident_get_for_user(*, user, incident_id: int) -> Incident | None:
    """The incident if ``user`` may read it: staff whose scope holds it, or a member
    whose unit was called to it or who reported it. None otherwise (the edge
    answers 404 either way)."""
    incident = incident_list(user=user).filter(pk=incident_id).first()
    if incident is None:
        member = member_for_user(user=user)
        if member is not None:
            incident = (
                Incident.objects.select_related("region")
                .filter(
                    Q(dispatches__unit_id=member.unit_id) | Q(reported_by=member),
                    pk=incident_id,
                )
                .distinct()
                .first()
            )
    return incident


def incident_timeline(*, incident: Incident) -> QuerySet[IncidentEvent]:
    return incident.events.select_related("unit", "member").order_by("seq")


def incident_durations(incident: Incident) -> dict[str, float | None]:
    def since_discovery(value):
        return (value - incident.discovered_at).total_seconds() if value else None

    return {
        "to_response_s": since_discovery(incident.responded_at),
        "to_control_s": since_discovery(incident.controlled_at),
        "to_handling_s": since_discovery(incident.handled_at),
    }


def incident_compliance(incident: Incident) -> dict[str, bool | None]:
    """1-3-5: responded within 1 min, controlled within 3, handled within 5.

    None while the step has not happened and its target has not yet passed.
    """
    targets = settings.RESPONSE_TARGETS_S
    now = timezone.now()
    result: dict[str, bool | None] = {}
    for step, field_name in (
        ("responded", "responded_at"),
        ("controlled", "controlled_at"),
        ("handled", "handled_at"),
    ):
        deadline = incident.discovered_at + dt.timedelta(seconds=targets[step])
        value = getattr(incident, field_name)
        if value is not None:
            result[step] = value <= deadline
        else:
            result[step] = False if now > deadline else None
    result["all"] = all(result[s] for s in ("responded", "controlled", "handled"))
    return result


def units_for_candidates(*, user, unit_ids: list[int]) -> dict:
    """The ranked units the user may see, with their kit, in two queries."""
    rows = Unit.objects.filter(scope_filter(user, "unit"), pk__in=unit_ids).prefetch_related(
        "equipment"
    )
    return {u.pk: u for u in rows}


def supervisor_group_for(*, user) -> str | None:
    """The watcher group for a staff user's live incident feed; None if not allowed."""
    if not getattr(user, "is_authenticated", False) or not user_may(
        user, "view", "dispatch.incident"
    ):
        return None
    if user.is_superuser or _city_wide(user):
        return SUPERVISORS_GROUP
    return region_group(user.staff.region.code)


def incident_snapshot_for(*, user, incident_id: int) -> dict[str, Any] | None:
    """An incident's summary and timestamps, if ``user`` may see it."""
    incident = incident_list(user=user).filter(pk=incident_id).first()
    if incident is None:
        return None
    return {
        **payloads.incident_summary(incident),
        "flagged": incident.flagged,
        "last_event_id": incident.events.order_by("-pk").values_list("pk", flat=True).first(),
    }


HEARTBEAT_CHUNK = 900  # ids per IN (...) list: under SQLite's host-parameter limit


def members_heartbeat(
    *,
    sockets: list[tuple[int, str | None]],
    unacked_sent_before: dt.datetime,
    written_lately: dict[int, set[int]] | None = None,
) -> tuple[set[int], set[str], dict[int, list[dict[str, Any]]]]:
    """What a process's heartbeat needs for all its member sockets at once.

    ``sockets`` are ``(member id, session key or None)``. Returns the member ids
    that may keep a socket (member, unit and login active), the session keys
    still present and unexpired, and, per member, the alerts to send again
    (``_unacked_frames``; not the incidents ``written_lately`` lists for that
    member: their alerts are in its sockets already). A few queries per chunk of
    sockets instead of three per socket: at 5,000 sockets per daphne the
    per-socket checks kept its one database thread busy.
    """
    now = timezone.now()
    member_ids = sorted({member_id for member_id, _ in sockets})
    keys = sorted({key for _, key in sockets if key})
    allowed: set[int] = set()
    live_keys: set[str] = set()
    for i in range(0, len(keys), HEARTBEAT_CHUNK):
        live_keys.update(
            Session.objects.filter(
                session_key__in=keys[i : i + HEARTBEAT_CHUNK], expire_date__gt=now
            ).values_list("session_key", flat=True)
        )
    for i in range(0, len(member_ids), HEARTBEAT_CHUNK):
        chunk = member_ids[i : i + HEARTBEAT_CHUNK]
        allowed.update(
            Member.objects.filter(
                pk__in=chunk, is_active=True, unit__is_active=True, user__is_active=True
            ).values_list("pk", flat=True)
        )
    frames: dict[int, list[dict[str, Any]]] = {}
    allowed_ids = sorted(allowed)
    for i in range(0, len(allowed_ids), HEARTBEAT_CHUNK):
        frames.update(
            _unacked_frames(
                member_ids=allowed_ids[i : i + HEARTBEAT_CHUNK],
                unacked_sent_before=unacked_sent_before,
                skip=written_lately or {},
            )
        )
    return allowed, live_keys, frames
