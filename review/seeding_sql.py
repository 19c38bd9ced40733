"""The seeded rows the database makes itself, from one parameter row per incident.

``seed_incidents`` decides every incident with numpy (``review.seeding``), then
writes one row per incident into a temporary table, ``seed_p``: its place,
kind, times (as the database's own text or ``timestamptz``), the ranked units
of its wave with their distances and arrival estimates, which of them declined
and when. Every seeded row is then made by an ``INSERT ... SELECT`` from that
table: the incident, its wave, ``k`` dispatches (joined to a table of the ranks
1..k), the timeline events (joined to a template of the event slots, one set
per number of declines) and the two review facts. A million incidents are ~24
million rows; sent from Python they cost a value conversion and a parameter
bind per column (or a COPY line parsed by the server) each, made by the
database's own loop they cost the insert alone.

The rows are the ones the Python path wrote before (same ids, same values):
``tests/review/test_seeding.py`` checks them against the dispatch rules and
against what ``facts_sync`` computes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from django.db import connection, models

from dispatch.models import Dispatch, Incident, IncidentEvent, Wave

from .models import DispatchFact, IncidentFact

# Columns of the per-incident parameter table: name -> kind. Per rank r
# (1..k): unit u{r}, distance d{r}, arrival estimate e{r}. The declines (one
# incident in five has one) are rows of their own, ``seed_d``.
_BASE_COLUMNS: list[tuple[str, str]] = [
    ("id", "pk"),
    ("kind", "text"),
    ("severity", "int"),
    ("lat", "float"),
    ("lon", "float"),
    ("street", "int"),
    ("district", "int"),
    ("status", "text"),
    ("flagged", "bool"),
    ("t0", "time"),
    ("tr", "time"),
    ("tc", "time"),
    ("th", "time"),
    ("last_seq", "int"),
    ("ev0", "int"),  # the id of the incident's first event
    ("nd", "int"),  # how many units declined
    ("first", "int"),  # the accepting unit's rank, 0: nobody accepted
    ("fu", "int"),  # the accepting (else the nearest) unit
    ("fm", "int"),  # its first member, NULL: none
    ("to_r", "int"),
    ("to_c", "int"),
    ("to_h", "int"),
    ("week", "int"),
    ("ok_r", "bool"),
    ("ok_c", "bool"),
    ("ok_h", "bool"),
    ("site", "text"),  # the on-site event's data
    ("dmask", "int"),  # bit r-1: rank r declined
]

_TYPES = {
    "sqlite": {
        "pk": "INTEGER PRIMARY KEY",
        "int": "INTEGER",
        "float": "REAL",
        "text": "TEXT",
        "bool": "INTEGER",
        "time": "TEXT",
    },
    "postgresql": {
        "pk": "bigint PRIMARY KEY",
        "int": "bigint",
        "float": "double precision",
        "text": "text",
        "bool": "boolean",
        "time": "timestamptz",
    },
}

# Event slots: created, alerted per rank, the declines, then accepted, on site,
# handled, closed (the numbering events_record gives them).
CREATED, ALERTED, DECLINED, ACCEPTED, ON_SITE, HANDLED, CLOSED = range(7)
_SLOT_TYPES = {
    CREATED: IncidentEvent.Type.CREATED.value,
    ALERTED: IncidentEvent.Type.ALERTED.value,
    DECLINED: IncidentEvent.Type.DECLINED.value,
    ACCEPTED: IncidentEvent.Type.ACCEPTED.value,
    ON_SITE: IncidentEvent.Type.ON_SITE.value,
    HANDLED: IncidentEvent.Type.HANDLED.value,
    CLOSED: IncidentEvent.Type.CLOSED.value,
}
CREATED_DATA = '{"source": "cad", "seeded": true}'
POLICY = '{"seeded": true}'


def param_columns(k: int) -> list[tuple[str, str]]:
    per_rank = [(f"{c}{r}", "int") for r in range(1, k + 1) for c in ("u", "d", "e")]
    return _BASE_COLUMNS + per_rank


# The j-th decline (in rank order) of incident ``inc``: its unit, member and time.
DECLINE_COLUMNS: list[tuple[str, str]] = [
    ("inc", "int"),
    ("j", "int"),
    ("unit", "int"),
    ("member", "int"),
    ("at", "time"),
]


def template(k: int) -> list[tuple[int, int, str, int, int, int]]:
    """(nd, n, type, role, rank, j) for every event slot n of an incident with
    nd declines: rank is the alerted unit's, j the decline's order."""
    rows = []
    for nd in range(k + 1):
        slots = [(CREATED, 0, 0)]
        slots += [(ALERTED, r, 0) for r in range(1, k + 1)]
        slots += [(DECLINED, 0, j) for j in range(nd)]
        slots += [(ACCEPTED, 0, 0), (ON_SITE, 0, 0), (HANDLED, 0, 0), (CLOSED, 0, 0)]
        rows += [(nd, n, _SLOT_TYPES[role], role, r, j) for n, (role, r, j) in enumerate(slots)]
    return rows


def tables_create(*, k: int, units: list[tuple[int, int, int | None]]) -> None:
    """The run's temporary tables: ``seed_p`` (filled per batch), the ranks, the
    event template and the units' streets and districts (``units``: id, street,
    district)."""
    types = _TYPES[connection.vendor]
    cols = ", ".join(f"{name} {types[kind]}" for name, kind in param_columns(k))
    pk = types["pk"]
    text = types["text"]
    tables_drop()
    with connection.cursor() as cur:
        cur.execute(f"CREATE TEMP TABLE seed_p ({cols})")
        d_cols = ", ".join(f"{name} {types[kind]}" for name, kind in DECLINE_COLUMNS)
        without_rowid = " WITHOUT ROWID" if connection.vendor == "sqlite" else ""
        cur.execute(f"CREATE TEMP TABLE seed_d ({d_cols}, PRIMARY KEY (inc, j)){without_rowid}")
        cur.execute(f"CREATE TEMP TABLE seed_rank (r {pk})")
        cur.executemany("INSERT INTO seed_rank (r) VALUES (%s)", [(r,) for r in range(1, k + 1)])
        # Keyed by (nd, n): each incident reads its own slots in order.
        cur.execute(
            f"CREATE TEMP TABLE seed_tpl (nd {types['int']}, n {types['int']}, type {text}, "
            f"role {types['int']}, r {types['int']}, j {types['int']}, "
            f"PRIMARY KEY (nd, n)){without_rowid}"
        )
        cur.executemany(
            "INSERT INTO seed_tpl (nd, n, type, role, r, j) VALUES (%s, %s, %s, %s, %s, %s)",
            template(k),
        )
        cur.execute(
            f"CREATE TEMP TABLE seed_unit (id {pk}, street {types['int']}, district {types['int']})"
        )
        cur.executemany("INSERT INTO seed_unit (id, street, district) VALUES (%s, %s, %s)", units)
        if connection.vendor == "postgresql":
            cur.execute("ANALYZE seed_rank, seed_tpl, seed_unit")


def tables_drop() -> None:
    with connection.cursor() as cur:
        for table in ("seed_p", "seed_d", "seed_rank", "seed_tpl", "seed_unit"):
            cur.execute(f"DROP TABLE IF EXISTS {table}")


def params_clear() -> None:
    pg = connection.vendor == "postgresql"
    with connection.cursor() as cur:
        for table in ("seed_p", "seed_d"):
            cur.execute(f"TRUNCATE {table}" if pg else f"DELETE FROM {table}")  # noqa: S608


def _insert(model: type[models.Model], exprs: dict[str, str], tail: str, params: list) -> None:
    """``INSERT INTO`` the model's table every concrete column: ``exprs`` maps a
    column to its SQL over the parameter tables, a column left out takes the
    field's default (NULL when nullable). ``tail``: the FROM ... of the SELECT."""
    q = connection.ops.quote_name
    columns, values, args = [], [], []
    for f in model._meta.concrete_fields:
        columns.append(q(f.column))
        if f.column in exprs:
            values.append(exprs[f.column])
        elif f.null:
            values.append("NULL")
        else:
            values.append("%s")
            args.append(f.get_db_prep_save(f.get_default(), connection))
    sql = (
        f"INSERT INTO {q(model._meta.db_table)} ({', '.join(columns)}) "  # noqa: S608
        f"SELECT {', '.join(values)} {tail}"
    )
    with connection.cursor() as cur:
        cur.execute(sql, args + params)


def _json(expr: str) -> str:
    return f"CAST({expr} AS jsonb)" if connection.vendor == "postgresql" else expr


def _pick(index: str, column: str, count: int, first: int = 1) -> str:
    """``column`` + the value of ``index`` (one of first .. first+count-1) as SQL."""
    arms = " ".join(f"WHEN {i} THEN {column}{i}" for i in range(first, first + count))
    return f"(CASE {index} {arms} END)"


def _decline(column: str) -> str:
    """A column of the decline in this event slot (evaluated for those slots only)."""
    return f"(SELECT d.{column} FROM seed_d d WHERE d.inc = p.id AND d.j = s.j)"  # noqa: S608


def rows_make(
    *, k: int, wave0: int, disp0: int, inc0: int, synced_at: Any, reverse: bool = False
) -> None:
    """Every seeded row of the incidents now in ``seed_p``: incidents, waves,
    dispatches, events, incident and dispatch facts. Wave and dispatch ids
    follow the incident's: ``wave0 + (id - inc0)``, ``disp0 + (id - inc0) * k + rank - 1``.

    ``reverse``: the tables in the other order (PostgreSQL, whose foreign keys
    are set aside during a bulk load): two sessions writing batches at once then
    fill different tables more of the time, and wait less on each other to
    extend the same one."""
    made: list[tuple[type[models.Model], dict[str, str], str, list]] = []
    t = "%s"
    pg = connection.vendor == "postgresql"
    # SQLite: the rows in id order, as its loops already give them (no sort);
    # PostgreSQL appends to the heap in any order.
    order = "" if pg else " ORDER BY p.id"
    is_first = "r.r = p.first"
    made.append(
        (
            Incident,
            {
                "id": "p.id",
                "kind": "p.kind",
                "severity": "p.severity",
                "lat": "p.lat",
                "lon": "p.lon",
                "address": "''",
                "description": "''",
                "source": f"'{Incident.Source.CAD.value}'",
                "region_id": "p.street",
                "status": "p.status",
                "is_drill": "FALSE" if connection.vendor == "postgresql" else "0",
                "policy": _json(f"'{POLICY}'"),
                "discovered_at": "p.t0",
                "responded_at": "p.tr",
                "controlled_at": "p.tc",
                "handled_at": "p.th",
                "received_at": "p.t0",
                "flagged": "p.flagged",
                "last_seq": "p.last_seq",
            },
            "FROM seed_p p" + order,
            [],
        )
    )
    made.append(
        (
            Wave,
            {
                "id": f"{t} + (p.id - {t})",
                "incident_id": "p.id",
                "number": "1",
                "radius_m": "1500",
                "reason": "'intake'",
                "created_at": "p.t0",
            },
            "FROM seed_p p" + order,
            [wave0, inc0],
        )
    )
    unit = _pick("r.r", "p.u", k)
    made.append(
        (
            Dispatch,
            {
                "id": f"{t} + (p.id - {t}) * {k} + r.r - 1",
                "incident_id": "p.id",
                "wave_id": f"{t} + (p.id - {t})",
                "unit_id": unit,
                "rank": "r.r",
                "distance_m": _pick("r.r", "p.d", k),
                "eta_s": _pick("r.r", "p.e", k),
                "status": (
                    f"CASE WHEN {is_first} THEN CASE WHEN p.tc IS NULL "
                    f"THEN '{Dispatch.Status.ACCEPTED.value}' "
                    f"ELSE '{Dispatch.Status.HANDLED.value}' "
                    f"END ELSE '{Dispatch.Status.STOOD_DOWN.value}' END"
                ),
                "accepted_by_id": f"CASE WHEN {is_first} THEN p.fm END",
                "accepted_at": f"CASE WHEN {is_first} THEN p.tr END",
                "on_site_at": f"CASE WHEN {is_first} THEN p.tc END",
                "handled_at": f"CASE WHEN {is_first} THEN p.th END",
                "created_at": "p.t0",
            },
            # CROSS JOIN: SQLite keeps the written order (incident, rank) = id order.
            "FROM seed_p p CROSS JOIN seed_rank r" + (order and order + ", r.r"),
            [disp0, inc0, wave0, inc0],
        )
    )
    alerted_data = (
        '\'{"wave": 1, "rank": \' || s.r || \', "distance_m": \' || '
        f"{_pick('s.r', 'p.d', k)} || ', \"eta_s\": ' || {_pick('s.r', 'p.e', k)} || '}}'"
    )
    created_data, empty = f"'{CREATED_DATA}'", "'{}'"
    made.append(
        (
            IncidentEvent,
            {
                "id": "p.ev0 + s.n",
                "incident_id": "p.id",
                "seq": "s.n + 1",
                "type": "s.type",
                "unit_id": (
                    f"CASE s.role WHEN {CREATED} THEN NULL "
                    f"WHEN {ALERTED} THEN {_pick('s.r', 'p.u', k)} "
                    f"WHEN {DECLINED} THEN {_decline('unit')} ELSE p.fu END"
                ),
                "member_id": (
                    f"CASE s.role WHEN {CREATED} THEN NULL WHEN {ALERTED} THEN NULL "
                    f"WHEN {DECLINED} THEN {_decline('member')} ELSE p.fm END"
                ),
                # On PostgreSQL the constants are parsed once, at planning.
                "data": (
                    f"CASE s.role WHEN {CREATED} THEN {_json(created_data)} "
                    f"WHEN {ALERTED} THEN {_json(alerted_data)} "
                    f"WHEN {ON_SITE} THEN {_json('p.site')} "
                    f"ELSE {_json(empty)} END"
                ),
                "created_at": (
                    f"CASE s.role WHEN {CREATED} THEN p.t0 WHEN {ALERTED} THEN p.t0 "
                    f"WHEN {DECLINED} THEN {_decline('at')} WHEN {ACCEPTED} THEN p.tr "
                    f"WHEN {ON_SITE} THEN p.tc ELSE p.th END"
                ),
            },
            "FROM seed_p p CROSS JOIN seed_tpl s WHERE s.nd = p.nd AND s.n < p.last_seq"
            + (order and order + ", s.n"),
            [],
        )
    )
    made.append(
        (
            IncidentFact,
            {
                "incident_id": "p.id",
                "region_id": "p.street",
                "street_id": "p.street",
                "district_id": "p.district",
                "kind": "p.kind",
                "discovered_at": "p.t0",
                "week": "p.week",
                "to_response_s": "p.to_r",
                "to_control_s": "p.to_c",
                "to_handling_s": "p.to_h",
                "ok_responded": "p.ok_r",
                "ok_controlled": "p.ok_c",
                "ok_handled": "p.ok_h",
                "ok_all": "p.ok_r AND p.ok_c AND p.ok_h",
                "synced_at": "CAST(%s AS timestamptz)" if pg else t,
            },
            "FROM seed_p p" + order,
            [synced_at],
        )
    )
    declined = "((p.dmask >> CAST(r.r - 1 AS integer)) & 1) = 1"
    made.append(
        (
            DispatchFact,
            {
                "dispatch_id": f"{t} + (p.id - {t}) * {k} + r.r - 1",
                "incident_id": "p.id",
                "unit_id": "u.id",
                "street_id": "p.street",
                "district_id": "p.district",
                "unit_street_id": "u.street",
                "unit_district_id": "u.district",
                "discovered_at": "p.t0",
                "kind": "p.kind",
                "to_response_s": f"CASE WHEN {is_first} THEN p.to_r END",
                "to_control_s": f"CASE WHEN {is_first} THEN p.to_c END",
                "to_handling_s": f"CASE WHEN {is_first} THEN p.to_h END",
                "declined": declined,
            },
            f"FROM seed_p p CROSS JOIN seed_rank r JOIN seed_unit u ON u.id = {unit}"
            + (order and order + ", r.r"),
            [disp0, inc0],
        )
    )
    for statement in reversed(made) if reverse else made:
        _insert(*statement)


def params_columns_of(k: int) -> list[str]:
    return [name for name, _kind in param_columns(k)]


def rank_columns(prefix: str, values: np.ndarray) -> dict[str, np.ndarray]:
    """An (n, k) array as the columns ``prefix1 .. prefixk``."""
    return {f"{prefix}{r + 1}": values[:, r] for r in range(values.shape[1])}
