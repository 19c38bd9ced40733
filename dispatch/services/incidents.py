"""Opening and closing incidents: intake (API, report button, drills) and close."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from units.locate import street_at
from units.models import Member, Region
from units.services import location_validate

from .. import intake, payloads
from ..events import (
    Message,
    event_record,
    events_record,
    incident_group,
    push_on_commit,
    to_supervisors,
    unit_group,
)
from ..models import Deadline, Dispatch, Incident, IncidentEvent, Wave
from ..policy import policy_for
from ..ranking import Candidate
from ..sql import json_rows
from .dispatches import STANDABLE, dispatches_stand_down
from .waves import (
    _col,
    deadlines_create,
    deadlines_due,
    deadlines_schedule,
    wave_announce,
    wave_ctes,
    wave_rank,
    wave_ranked_send,
    wave_rows,
    wave_saved,
)

log = logging.getLogger(__name__)


@dataclass
class IntakeResult:
    incident: Incident
    created: bool
    wave: Wave | None = None
    candidates: list[Candidate] = field(default_factory=list)


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
    paid_channels: bool = True,
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
    ``wave_send``; ``event_data`` is added to the ``created`` event;
    ``paid_channels=False`` keeps the chain to the free channels (a drill).
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
    if not address and not is_drill:
        address = intake.address_default(region=region, lat=lat, lon=lon)
    if discovery.skew_s is not None and discovery.skew_s > settings.DISCOVERY_CLOCK_SKEW_S:
        log.warning("intake %s: clock %.1f s ahead, clamped", external_id, discovery.skew_s)
    if policy is None:
        policy = policy_for(kind=kind, severity=severity)
    incident = Incident(
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
        paid_channels=paid_channels,
        policy=policy,
        region=region,
    )
    created = IncidentEvent(
        type=IncidentEvent.Type.CREATED,
        member=reported_by,
        user=created_by,
        data={"source": source, **discovery.event_data(), **(event_data or {})},
    )
    # Wave 1's units, ranked before anything is written (the ranking's index
    # is in memory): the incident and its wave can then go in one statement.
    candidates = wave_rank(incident=incident, spec=policy["wave1"]) if send_wave1 else []
    statement = _IntakeStatement.build(
        incident=incident, created=created, policy=policy, candidates=candidates
    )
    # A wave to no unit (its own event, a claimed seq) still takes a transaction.
    alone = statement is not None and (statement.wave is not None or not send_wave1)
    try:
        with _intake_transaction(one_statement=alone):
            if statement is not None:
                deadlines = statement.run()
            else:
                deadlines = incident_insert(incident=incident, created=created, policy=policy)
            wave = statement.wave if statement is not None else None
            if send_wave1 and wave is None:
                wave, candidates = wave_ranked_send(
                    incident=incident,
                    number=1,
                    spec=policy["wave1"],
                    reason="intake",
                    candidates=candidates,
                )
            _intake_announce(incident=incident, statement=statement)
    except IntegrityError:
        # A concurrent POST with the same external_id won the race.
        if external_id:
            existing = Incident.objects.filter(external_id=external_id).first()
            if existing is not None:
                return _intake_repeat(existing, created_by=created_by, sent=sent)
        raise
    transaction.on_commit(lambda: deadlines_schedule(deadlines))
    return IntakeResult(incident=incident, created=True, wave=wave, candidates=candidates)


def incident_insert(
    *, incident: Incident, created: IncidentEvent, policy: dict[str, Any]
) -> list[Deadline]:
    """Save a new incident with its ``created`` event (seq 1) and its
    escalation deadlines, row by row, inside the caller's transaction; returns
    the deadlines. PostgreSQL writes them in one statement (``_IntakeStatement``)."""
    incident.last_seq = 0
    incident.save(force_insert=True)
    events_record(incident_id=incident.pk, events=[created])
    return deadlines_create(incident=incident, policy=policy)


def _intake_transaction(*, one_statement: bool):
    """The intake's own transaction. One statement needs none outside the
    caller's (it commits alone, and the pushes follow it): BEGIN and COMMIT
    were two round trips more on the path to the phones. Inside the caller's
    transaction a savepoint still keeps a refused repeat from aborting it."""
    if one_statement and not connection.in_atomic_block:
        return contextlib.nullcontext()
    return transaction.atomic()


def _intake_announce(*, incident: Incident, statement: _IntakeStatement | None) -> None:
    """A new incident's frames: its wave's, when the one statement wrote it
    (``wave_ranked_send`` sends its own), and the supervisors'.

    Outside a caller's transaction the one statement has committed already:
    the incident is created, whatever happens here. A failure is logged, not
    raised: a 500 would have the caller repeat the report, and the repeat
    sends nothing. The rows are the truth: the heartbeat re-sends unacked
    alerts to open sockets, a phone that reconnects replays them, and the
    sweeps fire the notify chain and the deadlines from the rows. Inside a
    transaction (SQLite, a caller's) it raises, and the rows roll back."""
    try:
        if statement is not None and statement.wave is not None:
            wave_announce(
                incident=incident,
                wave=statement.wave,
                dispatches=statement.dispatches,
                events=statement.alerted,
            )
        push_on_commit(to_supervisors(incident, payloads.incident_opened(incident)))
    except Exception:
        if connection.in_atomic_block:
            raise
        log.exception(
            "incident %s is stored; its frames failed (the heartbeat, replay and "
            "the sweeps deliver it from the rows)",
            incident.pk,
        )


@dataclass
class _IntakeStatement:
    """A new incident in one statement on PostgreSQL: the incident, its events
    (``created``, then each unit's ``alerted``: seqs 1..n), its deadlines and,
    with units to alert, wave 1 with its dispatches and their deliveries
    (``waves.wave_ctes``), as CTEs each taking the incident's new id. Written
    apart, they were two statements between a BEGIN and a COMMIT."""

    incident: Incident
    events: list[IncidentEvent]
    deadlines: list[Deadline]
    wave: Wave | None  # None: no unit to alert in this statement
    dispatches: list[Dispatch]
    sql: str
    params: list[Any]
    rows: tuple[Any, ...]

    @property
    def alerted(self) -> list[IncidentEvent]:
        return self.events[1:]

    @classmethod
    def build(
        cls,
        *,
        incident: Incident,
        created: IncidentEvent,
        policy: dict[str, Any],
        candidates: list[Candidate],
    ) -> _IntakeStatement | None:
        """None where it cannot be one statement (``sql.json_rows``: not PostgreSQL)."""
        if connection.vendor != "postgresql":
            return None
        wave = dispatches = alerted = None
        if candidates:
            wave = Wave(
                number=1, radius_m=int(policy["wave1"].get("radius_m") or 0), reason="intake"
            )
            dispatches, alerted = wave_rows(
                incident=incident,
                wave=wave,
                units=[(c.unit_id, c.distance_m, c.eta_s) for c in candidates],
                rank0=0,
            )
        events = [created, *(alerted or [])]
        incident.last_seq = len(events)
        rows = json_rows(Incident, [incident])  # sets received_at (auto_now_add)
        if rows is None:
            return None
        deadlines = [
            Deadline(tier=tier, due_at=due)
            for tier, due in deadlines_due(received_at=incident.received_at, policy=policy)
        ]
        event_rows = json_rows(IncidentEvent, events, exclude={"incident", "seq"})
        deadline_rows = json_rows(Deadline, deadlines, exclude={"incident"})
        wave_rows_ = dispatch_rows = None
        if wave is not None:
            wave_rows_ = json_rows(Wave, [wave], exclude={"incident"})
            dispatch_rows = json_rows(Dispatch, dispatches, exclude={"incident", "wave"})
        if (
            event_rows is None
            or (deadlines and deadline_rows is None)
            or (wave is not None and (wave_rows_ is None or dispatch_rows is None))
        ):
            return None
        q = rows.conn.ops.quote_name
        # Identifiers from the models' metadata; every value is a bound parameter.
        sql = [
            f"WITH i AS (INSERT INTO {q(Incident._meta.db_table)} ({rows.columns}) "  # noqa: S608
            f"SELECT {rows.listed} FROM {rows.source} RETURNING {_col(Incident, 'id')} AS id), "
            f"e AS (INSERT INTO {q(IncidentEvent._meta.db_table)} ({event_rows.columns}, "
            f"{_col(IncidentEvent, 'incident')}, {_col(IncidentEvent, 'seq')}) "
            f"SELECT {event_rows.listed}, (SELECT id FROM i), r.n FROM {event_rows.source} "
            f"ORDER BY r.n RETURNING {_col(IncidentEvent, 'id')} AS id, "
            f"{_col(IncidentEvent, 'seq')} AS seq)"
        ]
        params: list[Any] = [rows.param, event_rows.param]
        returned = ["SELECT 0, 0, id FROM i", "SELECT 1, seq, id FROM e"]
        if deadline_rows is not None:
            sql.append(
                f", dl AS (INSERT INTO {q(Deadline._meta.db_table)} "  # noqa: S608
                f"({deadline_rows.columns}, {_col(Deadline, 'incident')}) "
                f"SELECT {deadline_rows.listed}, (SELECT id FROM i) "
                f"FROM {deadline_rows.source} ORDER BY n RETURNING {_col(Deadline, 'id')} AS id)"
            )
            params.append(deadline_rows.param)
            returned.append("SELECT 2, 0, id FROM dl")
        if wave is not None:
            ctes, wave_params = wave_ctes(
                wave_rows=wave_rows_,
                dispatch_rows=dispatch_rows,
                reporter_id=incident.reported_by_id,
                incident_id="(SELECT id FROM i)",
            )
            sql.append(f", {ctes}")
            params += wave_params
            returned += [
                "SELECT 3, 0, id FROM w",
                f"SELECT 3, {_col(Dispatch, 'unit')}, {_col(Dispatch, 'id')} FROM p",  # noqa: S608
            ]
        sql.append(" " + " UNION ALL ".join(returned))
        return cls(
            incident=incident,
            events=events,
            deadlines=deadlines,
            wave=wave,
            dispatches=dispatches or [],
            sql="".join(sql),
            params=params,
            rows=(rows, event_rows, deadline_rows, wave_rows_, dispatch_rows),
        )

    def run(self) -> list[Deadline]:
        """Write it; every object gets its id, seq and the incident's. Returns
        the deadlines."""
        rows, event_rows, deadline_rows, wave_rows_, dispatch_rows = self.rows
        with rows.conn.cursor() as cursor:
            cursor.execute(self.sql, self.params)
            returned = cursor.fetchall()
        by_part: dict[int, list[tuple[int, int]]] = {0: [], 1: [], 2: [], 3: []}
        for part, key, pk in returned:
            by_part[part].append((key, pk))
        incident = self.incident
        rows.saved([pk for _key, pk in by_part[0]])
        ids_by_seq = dict(by_part[1])
        event_rows.saved([ids_by_seq[seq] for seq in range(1, len(self.events) + 1)])
        for seq, event in enumerate(self.events, start=1):
            event.seq = seq
            event.incident = incident
        if deadline_rows is not None:
            deadline_rows.saved([pk for _key, pk in by_part[2]])
        for deadline in self.deadlines:
            deadline.incident = incident
        if self.wave is not None:
            self.wave.incident = incident
            wave_saved(self.wave, self.dispatches, wave_rows_, dispatch_rows, returned=by_part[3])
            for d in self.dispatches:
                d.incident = incident
        return self.deadlines


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
            messages += dispatches_stand_down(
                incident=incident, statuses=STANDABLE, closed=True, actor=actor
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
