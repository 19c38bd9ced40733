"""Small helpers for the SQL written by hand on hot paths (a reconnect storm's
replays, a city-wide alert's receipts), where building ORM queries cost more
than running them."""

from __future__ import annotations

import datetime as dt
import functools
import json
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import JSONField, Model


def marks(values: Collection[Any]) -> str:
    """One ``%s`` placeholder per value, comma-separated (an IN list)."""
    return ", ".join(["%s"] * len(values))


def rows_insert(model: type[Model], objs: Sequence[Model]) -> list[Model]:
    """``model.objects.bulk_create(objs)``: the rows inserted in one statement
    and each object given its primary key, in order. No signals, as
    ``bulk_create``.

    On PostgreSQL the rows go as one JSON parameter, unpacked by the server
    (``jsonb_to_recordset``). Django sends ``bulk_create``'s rows as one array
    per column, which psycopg's client-side binding quotes element by element
    in Python: a city-wide wave's thousand dispatches and alerted events were
    a sixth of the intake's time before any phone heard, and a socket daphne's
    receipts took the interpreter from its frame writes (bench/city.py
    --profile raw). 1,062 alerted events: 33 ms of CPU by ``bulk_create``,
    19-22 ms here. Elsewhere, and for one row (``bulk_create``'s plain VALUES
    is 50 us faster there), ``bulk_create`` itself.
    """
    rows = json_rows(model, objs) if len(objs) >= 2 else None
    if rows is None:
        return model.objects.bulk_create(objs)
    q = rows.conn.ops.quote_name
    pk = q(model._meta.pk.column)
    with rows.conn.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {q(model._meta.db_table)} ({rows.columns}) "  # noqa: S608
            f"SELECT {rows.listed} FROM {rows.source} ORDER BY n RETURNING {pk}",
            [rows.param],
        )
        ids = cursor.fetchall()
    rows.saved([pk_value for (pk_value,) in ids])
    return list(objs)


@dataclass
class JsonRows:
    """Rows of ``model`` as one JSON parameter, for an ``INSERT ... SELECT``
    (``json_rows``): ``source`` is the row source ``r`` (its columns
    ``listed``, then ``n``, the row's place from 1), taking ``param``."""

    conn: Any
    objs: Sequence[Model]
    columns: str  # the table's columns, quoted, in the order of ``listed``
    listed: str  # r's columns
    source: str
    param: str

    def saved(self, pks: Sequence[Any]) -> None:
        """Give each object its primary key from the statement's RETURNING."""
        for obj, pk_value in zip(self.objs, pks, strict=True):
            obj.pk = pk_value
            obj._state.adding = False
            obj._state.db = self.conn.alias


def json_rows(
    model: type[Model], objs: Sequence[Model], *, exclude: Collection[str] = ()
) -> JsonRows | None:
    """``objs`` as one JSON parameter with the SQL that unpacks it on
    PostgreSQL, the fields named in ``exclude`` left to the caller's SQL; None
    where ``bulk_create`` must do it (another database, a generated field, a
    JSON encoder, a preset primary key, an expression as a value)."""
    if not objs or connection.vendor != "postgresql":
        return None
    shape = _shape(model, frozenset(exclude), DEFAULT_DB_ALIAS)
    if shape is None or any(obj.pk is not None for obj in objs):
        return None
    # The connection itself, not ``django.db.connection``'s per-context proxy:
    # asked for once per value, the proxy's lookups were a third of the time.
    conn = connections[DEFAULT_DB_ALIAS]
    rows = []
    for obj in objs:
        # A related object saved after it was assigned: its id now (and one
        # never saved refused), as bulk_create does.
        obj._prepare_related_fields_for_save(operation_name="bulk_create")
        row = {}
        for name, pre_save, prep in shape.prepared:
            value = pre_save(obj, True)
            if hasattr(value, "resolve_expression"):
                return None  # an expression: the database's
            row[name] = value if prep is None else _as_json(prep(value, conn))
        rows.append(row)
    return JsonRows(
        conn=conn,
        objs=objs,
        columns=shape.columns,
        listed=shape.listed,
        source=shape.source,
        param=json.dumps(rows, ensure_ascii=False),
    )


@dataclass(frozen=True)
class _Shape:
    # (JSON key, the field's pre_save, its get_db_prep_save or None for JSON)
    prepared: list[tuple[str, Any, Any]]
    columns: str
    listed: str
    source: str


@functools.lru_cache(maxsize=64)
def _shape(model: type[Model], exclude: frozenset[str], alias: str) -> _Shape | None:
    """What ``json_rows`` writes for ``model`` that does not depend on the rows,
    worked out once per model: the intake writes six sets of rows, and this
    was a third of ``json_rows``' time for a handful of rows."""
    conn = connections[alias]
    fields = [f for f in model._meta.concrete_fields if not f.primary_key and f.name not in exclude]
    # What this does not do as bulk_create does: bulk_create itself.
    if any(f.generated or (isinstance(f, JSONField) and f.encoder) for f in fields):
        return None
    q = conn.ops.quote_name
    names = [f"c{i}" for i in range(len(fields))]
    # A JSON field's value goes as the JSON it is (not serialisable: a
    # TypeError, as Django raises); the others as Django prepares them for the
    # database, then as JSON text.
    prepared = [
        (name, f.pre_save, None if isinstance(f, JSONField) else f.get_db_prep_save)
        for name, f in zip(names, fields, strict=True)
    ]
    listed = ", ".join(names)
    types = ", ".join(f"{n} {f.db_type(conn)}" for n, f in zip(names, fields, strict=True))
    return _Shape(
        prepared=prepared,
        columns=", ".join(q(f.column) for f in fields),
        listed=listed,
        source=(
            f"ROWS FROM (jsonb_to_recordset(%s::jsonb) AS ({types})) "
            f"WITH ORDINALITY AS r({listed}, n)"
        ),
    )


def _as_json(value: Any) -> Any:
    """A column's prepared value as the JSON that PostgreSQL reads back to it."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    return value
