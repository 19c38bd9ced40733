"""Waves: ranked (intake, escalation) or named (a board's call, a drill), and the
escalation deadlines each incident gets."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from units.geo import haversine_m
from units.models import Member, Unit

from .. import notify, payloads
from ..events import (
    Message,
    event_record,
    events_cte,
    events_record,
    incident_group,
    push_on_commit,
    to_supervisors,
    unit_group,
)
from ..models import Deadline, Delivery, Dispatch, Incident, IncidentEvent, Wave
from ..ranking import Candidate, rank_units, walk_eta_s
from ..sql import JsonRows, json_rows, rows_insert

log = logging.getLogger(__name__)


def wave_ranked_send(
    *,
    incident: Incident,
    number: int,
    spec: dict[str, Any],
    reason: str,
    actor=None,
    candidates: list[Candidate] | None = None,
) -> tuple[Wave | None, list[Candidate]]:
    """Create wave ``number`` with its dispatches, deliveries and alert events,
    to ``candidates`` if the caller ranked them already (``wave_rank``).

    Caller holds a transaction and has claimed the right to send this wave.
    """
    if candidates is None:
        # Wave 1 has nobody to leave out: spare the hot path the query.
        already = (
            set(Dispatch.objects.filter(incident=incident).values_list("unit_id", flat=True))
            if number > 1
            else set()
        )
        candidates = wave_rank(incident=incident, spec=spec, exclude=already)
    wave = Wave(
        incident=incident, number=number, radius_m=int(spec.get("radius_m") or 0), reason=reason
    )
    if not candidates:
        wave.save(force_insert=True)
        event_record(
            incident_id=incident.pk,
            type=IncidentEvent.Type.NO_UNITS,
            data={"wave": number, "radius_m": spec.get("radius_m")},
        )
        push_on_commit(to_supervisors(incident, payloads.no_units(incident, wave=number)))
        return wave, []
    wave_write(
        incident=incident,
        wave=wave,
        units=[(c.unit_id, c.distance_m, c.eta_s) for c in candidates],
        rank0=0,
        actor=actor,
    )
    return wave, candidates


def wave_rank(
    *, incident: Incident, spec: dict[str, Any], exclude: set[int] | frozenset[int] = frozenset()
) -> list[Candidate]:
    """The units a wave of ``spec`` calls to the incident, best first."""
    return rank_units(
        lat=incident.lat,
        lon=incident.lon,
        limit=int(spec["units"]),
        radius_m=spec.get("radius_m"),
        incident_kind=incident.kind,
        exclude=exclude,
    )


def wave_write(
    *,
    incident: Incident,
    wave: Wave,
    units: list[tuple[int, float, int]],
    rank0: int,
    actor=None,
) -> list[Dispatch]:
    """The wave (``wave``, unsaved), its dispatches, deliveries and ``alerted``
    events to ``units`` ((unit id, distance m, ETA s), best first); pushes and
    the Web Push / SMS / voice chain after commit. Caller holds the transaction
    and the wave's number. On PostgreSQL one statement (``_wave_insert``)."""
    dispatches, events = wave_rows(
        incident=incident, wave=wave, units=units, rank0=rank0, actor=actor
    )
    if not _wave_insert(
        wave=wave, dispatches=dispatches, events=events, reporter_id=incident.reported_by_id
    ):
        wave.save(force_insert=True)
        for d in dispatches:
            d.wave = wave
        rows_insert(Dispatch, dispatches)
        deliveries_write(wave=wave, reporter_id=incident.reported_by_id)
        events_record(incident_id=incident.pk, events=events)
    for d in dispatches:
        d.incident = incident
    wave_announce(incident=incident, wave=wave, dispatches=dispatches, events=events)
    return dispatches


def wave_rows(
    *,
    incident: Incident,
    wave: Wave,
    units: list[tuple[int, float, int]],
    rank0: int,
    actor=None,
) -> tuple[list[Dispatch], list[IncidentEvent]]:
    """A wave's dispatches to ``units`` and their ``alerted`` events, unsaved.
    Each names the incident by id (None for one not saved yet: the intake's
    statement gives it)."""
    data: dict[str, Any] = {"drill": True} if incident.is_drill else {}
    dispatches = [
        Dispatch(
            incident_id=incident.pk,
            unit_id=unit_id,
            # Ranks continue across waves; the column is a smallint (a city drill).
            rank=min(rank0 + i + 1, 32767),
            distance_m=round(distance_m),
            eta_s=eta_s,
        )
        for i, (unit_id, distance_m, eta_s) in enumerate(units)
    ]
    events = [
        IncidentEvent(
            incident_id=incident.pk,
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
    ]
    return dispatches, events


def wave_announce(
    *, incident: Incident, wave: Wave, dispatches: list[Dispatch], events: list[IncidentEvent]
) -> None:
    """After the wave's rows are written: each unit's alert frame and the
    incident's update once the transaction commits, then Web Push, SMS and
    voice for the pages that are closed (dispatch/notify.py)."""
    alert = payloads.incident_summary(incident)
    # A drill sends each unit to its own post (到岗) unless a gathering point is set.
    posts = (
        {
            pk: payloads.own_post(lat=lat, lon=lon)
            for pk, lat, lon in Unit.objects.filter(pk__in=[d.unit_id for d in dispatches])
            .values_list("pk", "lat", "lon")
            .iterator()
        }
        if incident.is_drill
        else {}
    )
    messages: list[Message] = [
        (
            unit_group(d.unit_id),
            payloads.alert(
                event=e, incident_summary=alert, dispatch=d, destination=posts.get(d.unit_id)
            ),
        )
        for d, e in zip(dispatches, events, strict=True)
    ]
    messages.append(
        (incident_group(incident.pk), payloads.update(event=events[-1], incident=incident))
    )
    push_on_commit(messages)
    notify.chain_start_on_commit(wave_id=wave.pk)


def _wave_insert(
    *,
    wave: Wave,
    dispatches: list[Dispatch],
    events: list[IncidentEvent],
    reporter_id: int | None,
) -> bool:
    """Save a wave, its dispatches (one unit each), their deliveries
    (``_deliveries_select``) and its alerted events with their seqs
    (``events.events_cte``) in one statement on PostgreSQL: CTEs, each insert
    taking the ids of the one before. Four statements and a seq claim were four
    round trips more on the path to the phones. False where it cannot
    (``sql.json_rows``): the caller writes them one by one."""
    wave_rows = json_rows(Wave, [wave])
    dispatch_rows = json_rows(Dispatch, dispatches, exclude={"wave"})
    cte = events_cte(incident_id=wave.incident_id, events=events)
    if wave_rows is None or dispatch_rows is None or cte is None:
        return False
    ctes, params = wave_ctes(
        wave_rows=wave_rows, dispatch_rows=dispatch_rows, reporter_id=reporter_id
    )
    with wave_rows.conn.cursor() as cursor:
        cursor.execute(
            f"WITH {ctes}, {cte.sql} "  # noqa: S608 - identifiers from the models
            f"SELECT 0, 0, id FROM w "
            f"UNION ALL SELECT 1, {_col(Dispatch, 'unit')}, {_col(Dispatch, 'id')} FROM p "
            f"UNION ALL SELECT 2, seq, id FROM e",
            [*params, *cte.params],
        )
        returned = cursor.fetchall()
    by_part: dict[int, list[tuple[int, int]]] = {0: [], 1: [], 2: []}
    for part, key, pk in returned:
        by_part[part].append((key, pk))
    wave_saved(wave, dispatches, wave_rows, dispatch_rows, returned=by_part[0] + by_part[1])
    cte.saved([(pk, seq) for seq, pk in by_part[2]])
    return True


def wave_ctes(
    *, wave_rows: JsonRows, dispatch_rows: JsonRows, reporter_id: int | None, incident_id: str = ""
) -> tuple[str, list[Any]]:
    """The CTEs that write a wave (``w``), its dispatches (``p``: id, unit) and
    their deliveries (``l``), and their parameters. ``incident_id``: the
    incident's id as SQL, where the rows leave it out (the intake's new
    incident); otherwise the rows carry it.

    The wave's id goes to the dispatches as a scalar subquery, not a join: the
    planner counts each JSON row source as 100 rows, so ``w`` joined in made
    10,000 estimated dispatches and a cost past ``jit_above_cost``, 13 ms of
    JIT compiling per wave on the path to the phones (bench/city.py)."""
    q = connection.ops.quote_name
    wave_incident = f", {_col(Wave, 'incident')}" if incident_id else ""
    dispatch_incident = f", {_col(Dispatch, 'incident')}" if incident_id else ""
    value = f", {incident_id}" if incident_id else ""
    select, params = _deliveries_select(source="p", reporter_id=reporter_id, lateral=True)
    sql = (
        f"w AS (INSERT INTO {q(Wave._meta.db_table)} ({wave_rows.columns}{wave_incident}) "  # noqa: S608
        f"SELECT {wave_rows.listed}{value} FROM {wave_rows.source} "
        f"RETURNING {_col(Wave, 'id')} AS id), "
        f"p AS (INSERT INTO {q(Dispatch._meta.db_table)} "
        f"({dispatch_rows.columns}{dispatch_incident}, {_col(Dispatch, 'wave')}) "
        f"SELECT {dispatch_rows.listed}{value}, (SELECT id FROM w) "
        f"FROM {dispatch_rows.source} ORDER BY n "
        f"RETURNING {_col(Dispatch, 'id')}, {_col(Dispatch, 'unit')}), "
        f"l AS ({_deliveries_insert()} {select})"
    )
    return sql, [wave_rows.param, dispatch_rows.param, *params]


def wave_saved(
    wave: Wave,
    dispatches: list[Dispatch],
    wave_rows: JsonRows,
    dispatch_rows: JsonRows,
    *,
    returned: list[tuple[int, int]],
) -> None:
    """Give the wave and its dispatches their ids from ``wave_ctes``' rows:
    ``(0, wave id)`` first, then ``(unit id, dispatch id)``."""
    (_zero, wave_id), *by_unit = returned
    wave_rows.saved([wave_id])
    # By unit (one dispatch each in a wave), not by the order rows come back in.
    dispatch_ids = dict(by_unit)
    dispatch_rows.saved([dispatch_ids[d.unit_id] for d in dispatches])
    for d in dispatches:
        d.wave = wave


def _col(model, name: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(name).column)


def _deliveries_insert() -> str:
    columns = ", ".join(_col(Delivery, name) for name in ("dispatch", "member", "created_at"))
    return f"INSERT INTO {connection.ops.quote_name(Delivery._meta.db_table)} ({columns})"


def _deliveries_select(
    *, source: str, reporter_id: int | None, lateral: bool = False
) -> tuple[str, list[Any]]:
    """The deliveries of the dispatches in ``source`` (a table or CTE with the
    dispatch's id and unit columns, aliased ``d``): every active member on duty
    in the unit, the reporter left out.

    ``lateral`` (PostgreSQL, a CTE as ``source``): each unit's members read by
    the unit's index, one lookup per dispatch. Joined plainly, the planner,
    which cannot count a CTE's rows, hashed the whole roster (a sequential scan
    of every member: 0.2 ms at 1,100 members, 2 ms at the bench's 11,000, and
    the city has 245,500); ``OFFSET 0`` keeps it from flattening the subquery
    back into that join.
    """
    q = connection.ops.quote_name
    member, unit, on_duty, active = (
        _col(Member, name) for name in ("id", "unit", "on_duty", "is_active")
    )
    # Identifiers from the models' metadata; every value is a bound parameter.
    where = f"m.{on_duty} = %s AND m.{active} = %s"
    params: list[Any] = [connection.ops.adapt_datetimefield_value(timezone.now()), True, True]
    if reporter_id is not None:
        where += f" AND m.{member} <> %s"
        params.append(reporter_id)
    if lateral:
        sql = (
            f"SELECT d.{_col(Dispatch, 'id')}, m.{member}, %s FROM {source} d "  # noqa: S608
            f"CROSS JOIN LATERAL (SELECT m.{member} FROM {q(Member._meta.db_table)} m "
            f"WHERE m.{unit} = d.{_col(Dispatch, 'unit')} AND {where} OFFSET 0) m"
        )
    else:
        sql = (
            f"SELECT d.{_col(Dispatch, 'id')}, m.{member}, %s "  # noqa: S608
            f"FROM {source} d JOIN {q(Member._meta.db_table)} m "
            f"ON m.{unit} = d.{_col(Dispatch, 'unit')} WHERE {where}"
        )
    return sql, params


def deliveries_write(*, wave: Wave, reporter_id: int | None) -> int:
    """A delivery row for every active member on duty in the wave's units, in
    one INSERT ... SELECT: a city-wide wave is 10,000 rows, and building them as
    model instances cost seconds of the intake's time before any phone heard.

    A member's one-button report: the reporter is on site by definition, so
    colleagues and nearby units are alerted, not the reporter (no delivery: no
    push, SMS or call either; the frame names them for their own phone).
    """
    q = connection.ops.quote_name
    select, params = _deliveries_select(source=q(Dispatch._meta.db_table), reporter_id=reporter_id)
    with connection.cursor() as cursor:
        cursor.execute(
            f"{_deliveries_insert()} {select} AND d.{_col(Dispatch, 'wave')} = %s",
            [*params, wave.pk],
        )
        return cursor.rowcount


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
        wave = Wave(incident=incident, number=number, radius_m=0, reason=reason)
        units = []
        for unit_id in todo:
            distance = haversine_m(incident.lat, incident.lon, *position[unit_id])
            units.append((unit_id, distance, 0 if at_own_post else walk_eta_s(distance)))
        return wave_write(incident=incident, wave=wave, units=units, rank0=on_incident, actor=actor)


def deadlines_due(
    *, received_at: dt.datetime, policy: dict[str, Any]
) -> list[tuple[str, dt.datetime]]:
    """Each escalation tier of ``policy`` with its due time."""
    return [
        (tier["name"], received_at + dt.timedelta(seconds=tier["after_s"]))
        for tier in policy.get("tiers", [])
    ]


def deadlines_create(*, incident: Incident, policy: dict[str, Any]) -> list[Deadline]:
    return Deadline.objects.bulk_create(
        [
            Deadline(incident=incident, tier=tier, due_at=due)
            for tier, due in deadlines_due(received_at=incident.received_at, policy=policy)
        ]
    )


def deadlines_schedule(deadlines: list[Deadline]) -> None:
    """Enqueue a timer for the earliest pending one of ``deadlines``.

    An incident's deadlines are a chain: the one fired enqueues the next
    (``escalation.deadline_fire``). So the intake's commit, on the path to the
    phones, enqueues one message and not one per tier, and the worker holds one
    ETA message per open incident. A lost timer is the sweep's: it fires the
    deadline when due, and that firing enqueues the next.

    A deadline further off than half the broker's visibility timeout gets no
    timer: Redis would hand an unacked ETA task to a second worker after that
    timeout. The sweep fires it when due.
    """
    # Imported here: tasks imports this module at its top (cycle services <-> tasks).
    from ..tasks import fire_deadline

    pending = [d for d in deadlines if d.fired_at is None]
    if not pending:
        return
    d = min(pending, key=lambda d: (d.due_at, d.pk))
    if d.due_at > timezone.now() + dt.timedelta(seconds=_countdown_max_s()):
        return
    try:
        fire_deadline.apply_async((d.pk,), eta=d.due_at, expires=d.due_at + dt.timedelta(minutes=5))
    except Exception as exc:
        # Broker down: the deadline row stays pending and the sweep fires it.
        log.warning("could not enqueue deadline %s (%r); the sweep will fire it", d.pk, exc)


def _countdown_max_s() -> float:
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {}
    return float(options.get("visibility_timeout", 3600)) / 2
