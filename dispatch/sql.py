"""Small helpers for the SQL written by hand on hot paths (a reconnect storm's
replays, a city-wide alert's receipts), where building ORM queries cost more
than running them."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Collection, Sequence
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
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    if (
        len(objs) < 2
        or connection.vendor != "postgresql"
        # What this does not do as bulk_create does: bulk_create itself.
        or any(f.generated or (isinstance(f, JSONField) and f.encoder) for f in fields)
        or any(obj.pk is not None for obj in objs)
    ):
        return model.objects.bulk_create(objs)
    # The connection itself, not ``django.db.connection``'s per-context proxy:
    # asked for once per value, the proxy's lookups were a third of the time.
    conn = connections[DEFAULT_DB_ALIAS]
    q = conn.ops.quote_name
    names = [f"c{i}" for i in range(len(fields))]
    # A JSON field's value goes as the JSON it is (not serialisable: a
    # TypeError, as Django raises); the others as Django prepares them for the
    # database, then as JSON text.
    prepared = [
        (name, f.pre_save, None if isinstance(f, JSONField) else f.get_db_prep_save)
        for name, f in zip(names, fields, strict=True)
    ]
    rows = []
    for obj in objs:
        # A related object saved after it was assigned: its id now (and one
        # never saved refused), as bulk_create does.
        obj._prepare_related_fields_for_save(operation_name="bulk_create")
        row = {}
        for name, pre_save, prep in prepared:
            value = pre_save(obj, True)
            if hasattr(value, "resolve_expression"):
                return model.objects.bulk_create(objs)  # an expression: the database's
            row[name] = value if prep is None else _as_json(prep(value, conn))
        rows.append(row)
    listed = ", ".join(names)
    types = ", ".join(f"{n} {f.db_type(conn)}" for n, f in zip(names, fields, strict=True))
    columns = ", ".join(q(f.column) for f in fields)
    pk = q(model._meta.pk.column)
    with conn.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {q(model._meta.db_table)} ({columns}) "  # noqa: S608
            f"SELECT {listed} FROM ROWS FROM (jsonb_to_recordset(%s::jsonb) AS ({types})) "
            f"WITH ORDINALITY AS r({listed}, n) "
            f"ORDER BY n RETURNING {pk}",
            [json.dumps(rows, ensure_ascii=False)],
        )
        ids = cursor.fetchall()
    for obj, (pk_value,) in zip(objs, ids, strict=True):
        obj.pk = pk_value
        obj._state.adding = False
        obj._state.db = conn.alias
    return list(objs)


def _as_json(value: Any) -> Any:
    """A column's prepared value as the JSON that PostgreSQL reads back to it."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    return value
