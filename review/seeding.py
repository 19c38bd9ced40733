"""``seed_incidents``: realistic past incidents with timelines, for review at scale.

Decided with numpy from one seed (same arguments, same incidents), a batch of
incidents at a time as whole columns (no Python loop per incident or per row).
A million incidents with their waves, dispatches, events and review facts is
~23 million rows: Python sends one parameter row per incident (``COPY`` on
PostgreSQL, multi-row inserts on SQLite) and the database makes the rows from
it (``review.seeding_sql``). Rows follow the dispatch models' rules: the four
timestamps in order, first-time values on the incident, one ``seq`` per event
per incident, the first accepting unit's own timestamps on its dispatch.

When the run writes more incidents than the database holds, the secondary
indexes of the tables it fills are dropped first and built again at the end
(one sort instead of millions of scattered B-tree inserts: the old per-row
inserts slowed from 2,000 to 1,100 incidents a second as the indexes grew);
on PostgreSQL their foreign keys and autovacuum are set aside too, and two
sessions write the batches and two build the indexes again.
The weekly roll-ups are summed from the generated columns when the database
had no review facts before; otherwise ``rollups_rebuild`` recomputes the
weeks touched from the facts.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple, TextIO

import numpy as np
from django.core.management.color import no_style
from django.db import OperationalError, connection, models, transaction
from django.utils import timezone
from scipy.spatial import cKDTree
from tqdm import tqdm

from dispatch.models import Dispatch, Incident, IncidentEvent, MemberLocation, Wave
from units.geo import haversine_m_array
from units.models import Member, Region, Unit

from . import seeding_sql, selectors
from .expressions import WEEK_S
from .models import (
    CityWeekly,
    DispatchFact,
    DistrictCumulative,
    DistrictDaily,
    DistrictWeekly,
    IncidentFact,
    SetAsideIndex,
    UnitCumulative,
    UnitDaily,
    UnitWeekly,
    WeeklyRollup,
)
from .packed import (
    count_of,
    group_rows,
    hist_cumulative,
    hist_unpack,
    incident_packs,
    unit_packs,
    units_cumulative,
    units_unpack,
)
from .selectors.common import _utc_offset_s
from .services.rollups import rollups_rebuild

logger = logging.getLogger(__name__)

MAX_COUNT = 1_000_000
DEFAULT_SEED = 20246
BATCH = 20_000  # incidents per transaction
# PostgreSQL: batches written by this many sessions at once. A batch is one
# transaction either way; the server makes its rows on one core per session,
# and this process decides the next batch meanwhile.
PG_WRITERS = 2
# PostgreSQL: sessions building the set-aside indexes and keys at once.
RESTORE_SESSIONS = 2

KINDS = ["fight", "theft", "medical", "crowd", "knife", "fire", "other"]
KIND_P = [0.25, 0.20, 0.20, 0.10, 0.08, 0.07, 0.10]
SEVERITY_P = [0.50, 0.35, 0.12, 0.03]
# Incidents per hour of day (relative): quiet before dawn, busy in the evening.
HOUR_WEIGHT = np.array(
    [3, 2, 1.5, 1, 1, 1.5, 3, 5, 6, 6, 6, 7, 7, 6, 6, 6, 7, 8, 9, 9, 8, 7, 5, 4], dtype=float
)
UNITS_PER_WAVE = 5
ON_SITE_FAR_SHARE = 0.04  # on-site reports sent from far away: arrival-proof flags
TRAIL_SHARE = 0.02  # incidents whose first responder shared a position trail

# The tables a run fills, in write order.
SEEDED_MODELS: tuple[type[models.Model], ...] = (
    Incident,
    Wave,
    Dispatch,
    IncidentEvent,
    MemberLocation,
    IncidentFact,
    DispatchFact,
    WeeklyRollup,
    DistrictWeekly,
    UnitWeekly,
    CityWeekly,
    DistrictDaily,
    DistrictCumulative,
    UnitDaily,
    UnitCumulative,
)
_SEEDED_TABLES = [m._meta.db_table for m in SEEDED_MODELS]


class SeedIncidentsError(Exception):
    """Bad arguments, or no roster to seed on: nothing has been written."""


@dataclass
class SeedIncidentsResult:
    incidents: int
    events: int
    dispatches: int
    seconds: float


# --- writing columns ------------------------------------------------------------------


_CLOCK: np.ndarray | None = None  # "HH:MM:SS" of every second of a day, as UCS-4 codes


def _clock() -> np.ndarray:
    global _CLOCK
    if _CLOCK is None:
        second = np.arange(86400)
        digits = np.column_stack(
            [second // 36000, second // 3600 % 10, second // 600 % 6, second // 60 % 10,
             second // 10 % 6, second % 10]
        ) + ord("0")  # fmt: skip
        colon = np.full(86400, ord(":"))
        _CLOCK = np.column_stack(
            [digits[:, 0], digits[:, 1], colon, digits[:, 2], digits[:, 3], colon,
             digits[:, 4], digits[:, 5]]
        ).astype(np.uint32)  # fmt: skip
    return _CLOCK


def _times(epoch_us: np.ndarray, pg: bool) -> np.ndarray:
    """Epoch microseconds (UTC) as the database's text form, vectorised: Django's
    SQLite form (naive UTC, ``YYYY-MM-DD HH:MM:SS``, a fraction only when not
    zero), the same with ``+00`` for COPY. The characters are put together from
    a table of the days in the range and one of the seconds of a day: formatting
    each time took a tenth of a seed."""
    epoch_us = np.asarray(epoch_us, dtype=np.int64)
    width = 22 if pg else 19
    if not epoch_us.size:
        return np.empty(0, f"U{width}")
    seconds = epoch_us // 1_000_000
    day, second = np.divmod(seconds, 86400)
    first = int(day.min())
    dates = np.arange(first, int(day.max()) + 1).astype("datetime64[D]")
    date_chars = np.datetime_as_string(dates).astype("U10").view(np.uint32).reshape(-1, 10)
    chars = np.empty((seconds.size, width), dtype=np.uint32)
    chars[:, :10] = date_chars[day - first]
    chars[:, 10] = ord(" ")  # Django's SQLite text has a space, not ISO's "T"
    chars[:, 11:19] = _clock()[second]
    if pg:
        chars[:, 19:] = [ord("+"), ord("0"), ord("0")]
    text = chars.view(f"U{width}").ravel()
    fraction = epoch_us % 1_000_000 != 0
    if fraction.any():
        micro = np.datetime_as_string(epoch_us[fraction].astype("datetime64[us]"), unit="us")
        micro = np.char.add(np.char.replace(micro, "T", " "), "+00" if pg else "")
        text = text.astype(micro.dtype)
        text[fraction] = micro
    return text


def _nullable(values: np.ndarray, present: np.ndarray) -> list:
    """``values`` as a list of Python scalars, None where not ``present``."""
    out = np.asarray(values).astype(object)
    out[~np.asarray(present, dtype=bool)] = None
    return out.tolist()


class _Nullable(NamedTuple):
    """A column with gaps: NULL where not ``present``."""

    values: np.ndarray
    present: np.ndarray


_PG_EPOCH_S = 946_684_800  # 2000-01-01 UTC: PostgreSQL's binary timestamps count from it
_PG_BINARY_HEAD = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, no flags, no extension
_PG_BINARY = {  # a parameter column's kind -> its binary form, 8-byte big-endian or a byte
    "pk": ">i8",
    "int": ">i8",
    "float": ">f8",
    "bool": "u1",
    "time": ">i8",  # microseconds since 2000-01-01 UTC
}


def _pg_copy_binary(n: int, columns: list[tuple[str, Any]]) -> bytes:
    """``n`` rows in PostgreSQL's binary ``COPY`` format, put together a column
    at a time by numpy: ``columns`` are (kind, values), kind as in
    ``seeding_sql.param_columns`` (times in epoch seconds), values an array, a
    list or a ``_Nullable``. The text ``COPY`` of the parameter rows spent a
    Python call per row and a parse per value on the server (~45 million of
    each at a million incidents)."""
    fields = []
    for kind, column in columns:
        values, present = column if isinstance(column, _Nullable) else (column, None)
        values = np.asarray(values)
        if present is not None:
            present = np.asarray(present, dtype=bool)
        if kind == "text":
            if values.dtype == object:  # None is NULL, as on SQLite
                gaps = values == None  # noqa: E711 (elementwise)
                present = ~gaps if present is None else present & ~gaps
            filled = values if present is None else np.where(present, values, "")
            try:  # ASCII (the kinds, the statuses, the JSON) without a call per value
                data = filled.astype("S")
            except UnicodeEncodeError:
                data = np.char.encode(filled.astype(str), "utf-8")
            lengths = np.char.str_len(data).astype(np.int64)
            data = data.view(np.uint8).reshape(n, -1) if n else np.zeros((0, 0), np.uint8)
        else:
            if present is not None:
                values = np.where(present, values, 0)
            if kind == "time":
                values = (values.astype(np.int64) - _PG_EPOCH_S) * 1_000_000
            data = values.astype(_PG_BINARY[kind]).view(np.uint8).reshape(n, -1)
            lengths = np.full(n, data.shape[1], np.int64)
        if present is not None:
            lengths = np.where(present, lengths, -1)
        fields.append((data, lengths))
    # Each row laid out at every field's widest, then the bytes each row keeps
    # taken in row order: one boolean index over the whole batch.
    width = 2 + sum(4 + data.shape[1] for data, _lengths in fields)
    grid = np.zeros((n, width), np.uint8)
    keep = np.zeros((n, width), bool)
    grid[:, :2] = np.frombuffer(len(fields).to_bytes(2, "big"), np.uint8)
    keep[:, :2] = True
    at = 2
    for data, lengths in fields:
        w = data.shape[1]
        grid[:, at : at + 4] = lengths.astype(">i4").view(np.uint8).reshape(n, 4)
        keep[:, at : at + 4] = True
        grid[:, at + 4 : at + 4 + w] = data
        keep[:, at + 4 : at + 4 + w] = np.arange(w)[None, :] < lengths[:, None]
        at += 4 + w
    trailer = b"\xff\xff"  # a field count of -1
    return _PG_BINARY_HEAD + grid[keep].tobytes() + trailer


class _Writer:
    """Whole columns in, rows out: COPY on PostgreSQL, executemany on SQLite."""

    def __init__(self) -> None:
        self.pg = connection.vendor == "postgresql"
        self.next_id: dict[type[models.Model], int] = {}

    def reserve(self, model: type[models.Model], n: int) -> int:
        if model not in self.next_id:
            top = model.objects.aggregate(m=models.Max("pk"))["m"] or 0
            self.next_id[model] = top + 1
        first = self.next_id[model]
        self.next_id[model] += n
        return first

    def times(self, epoch_s: np.ndarray, present: np.ndarray | None = None) -> list:
        text = _times(np.asarray(epoch_s, dtype=np.int64) * 1_000_000, self.pg)
        return text.tolist() if present is None else _nullable(text, present)

    def times_us(self, epoch_us: np.ndarray) -> list:
        return _times(epoch_us, self.pg).tolist()

    def write(self, model: type[models.Model], n: int, columns: dict[str, Any]) -> None:
        """Insert ``n`` rows: ``columns`` maps column names to lists (JSON as text,
        times from ``times``) or to one value for every row; a column left out
        takes the field's default."""
        if not n:
            return
        fields = list(model._meta.concrete_fields)
        # Rows as one object array filled a column at a time: numpy makes the
        # Python values in C, and the flat list is sliced into statements (a
        # zip of columns built a tuple per row in Python).
        grid = np.empty((n, len(fields)), dtype=object)
        for j, f in enumerate(fields):
            if f.column in columns:
                value = columns[f.column]
            elif f.null:
                value = None
            else:
                value = f.get_default()
                if isinstance(f, models.JSONField):
                    value = json.dumps(value)
            if isinstance(value, (list, np.ndarray)) and len(value) != n:
                raise ValueError(f"{model.__name__}.{f.column}: {len(value)} values, not {n}")
            grid[:, j] = value
        self.send(model._meta.db_table, [f.column for f in fields], grid)

    def write_table(self, table: str, names: list[str], n: int, columns: dict[str, Any]) -> None:
        """Insert ``n`` rows into a table with no model (the run's parameter
        table): every column of ``names`` given, as in ``write``."""
        grid = np.empty((n, len(names)), dtype=object)
        for j, name in enumerate(names):
            value = columns[name]
            if isinstance(value, (list, np.ndarray)) and len(value) != n:
                raise ValueError(f"{table}.{name}: {len(value)} values, not {n}")
            grid[:, j] = value
        self.send(table, names, grid)

    def write_params(self, table: str, kinds: list[tuple[str, str]], n: int, columns: dict) -> None:
        """Insert ``n`` rows into a parameter table: ``kinds`` its (name, kind)
        columns, ``columns`` name -> values (times in epoch seconds, gaps as
        ``_Nullable``). PostgreSQL takes them in its binary form; SQLite as its
        text and numbers."""
        if not n:
            return
        if self.pg:
            data = _pg_copy_binary(n, [(kind, columns[name]) for name, kind in kinds])
            table = connection.ops.quote_name(table)
            collist = ", ".join(connection.ops.quote_name(name) for name, _kind in kinds)
            with (
                connection.connection.cursor() as cur,
                cur.copy(f"COPY {table} ({collist}) FROM STDIN (FORMAT BINARY)") as copy,
            ):
                copy.write(data)
            return
        values = {}
        for name, kind in kinds:
            column = columns[name]
            if kind == "time":
                present = column.present if isinstance(column, _Nullable) else None
                raw = column.values if isinstance(column, _Nullable) else column
                values[name] = self.times(raw, present)
            elif isinstance(column, _Nullable):
                values[name] = _nullable(column.values, column.present)
            else:
                values[name] = column
        self.write_table(table, [name for name, _kind in kinds], n, values)

    def send(self, table: str, names: list[str], grid: np.ndarray) -> None:
        n = grid.shape[0]
        if not n:
            return
        table = connection.ops.quote_name(table)
        collist = ", ".join(connection.ops.quote_name(name) for name in names)
        if self.pg:
            raw = connection.connection
            with raw.cursor() as cur, cur.copy(f"COPY {table} ({collist}) FROM STDIN") as copy:
                for row in grid.tolist():
                    copy.write_row(row)
        else:
            _sqlite_insert(table, collist, len(names), n, grid.ravel().tolist())

    def finish(self) -> None:
        if self.pg and self.next_id:
            with connection.cursor() as cur:
                for sql in connection.ops.sequence_reset_sql(no_style(), list(self.next_id)):
                    cur.execute(sql)


SQLITE_ROWS_PER_INSERT = 100


def _sqlite_insert(table: str, collist: str, width: int, n: int, values: list) -> None:
    """``n`` rows (``values``: row after row, flat) in statements of
    ``SQLITE_ROWS_PER_INSERT`` rows each, on the raw connection: a row per
    statement spent as long in the statement's own overhead (bind, step, reset,
    the AUTOINCREMENT counter's update) as in writing the row."""
    one = "(" + ", ".join(["?"] * width) + ")"
    per = max(1, min(SQLITE_ROWS_PER_INSERT, 30_000 // width))
    head = f"INSERT INTO {table} ({collist}) VALUES "  # noqa: S608
    step = per * width
    full = n // per
    connection.ensure_connection()
    raw = connection.connection
    if full:
        raw.executemany(
            head + ", ".join([one] * per),
            (tuple(values[at : at + step]) for at in range(0, full * step, step)),
        )
    if n > full * per:
        raw.execute(head + ", ".join([one] * (n - full * per)), tuple(values[full * step :]))


def _secondary_indexes(tables: list[str]) -> list[tuple[str, str]]:
    """(name, CREATE statement) of the plain (non-unique) indexes on ``tables``."""
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                "AND tablename = ANY(%s) AND indexdef NOT LIKE 'CREATE UNIQUE%%'",
                [tables],
            )
        else:
            marks = ", ".join(["%s"] * len(tables))
            cur.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "  # noqa: S608
                f"AND tbl_name IN ({marks}) AND sql NOT LIKE 'CREATE UNIQUE%%'",
                tables,
            )
        return list(cur.fetchall())


def _foreign_keys(tables: list[str]) -> list[tuple[str, str]]:
    """PostgreSQL: (name, ALTER TABLE statement that adds it) of the foreign keys
    of ``tables``. Each row COPY writes queues a deferred check of every foreign
    key it has, all run at commit one by one; added back after the load, a key is
    checked by one join over the table."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cur:
        cur.execute(
            "SELECT c.conname, format('ALTER TABLE %%I ADD CONSTRAINT %%I %%s', t.relname, "
            "c.conname, pg_get_constraintdef(c.oid)) FROM pg_constraint c "
            "JOIN pg_class t ON t.oid = c.conrelid "
            "WHERE c.contype = 'f' AND t.relname = ANY(%s) "
            "AND t.relnamespace = current_schema()::regnamespace",
            [tables],
        )
        return list(cur.fetchall())


def _autovacuum_settings(tables: list[str]) -> list[tuple[str, str]]:
    """PostgreSQL: (name, ALTER TABLE statement that sets it back) of each
    table's autovacuum. A bulk load turns it off: the server vacuumed and
    analysed each big table half-way through the load (a scan of gigabytes on
    the same two cores, at a moment of its own choosing); the load ends with an
    ``ANALYZE``, and the tables' next vacuum comes once it is set back."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cur:
        cur.execute(
            "SELECT relname, reloptions FROM pg_class WHERE relname = ANY(%s) "
            "AND relnamespace = current_schema()::regnamespace",
            [tables],
        )
        found = cur.fetchall()
    out = []
    for table, options in found:
        before = [o for o in options or [] if o.startswith("autovacuum_enabled=")]
        back = f"SET ({before[0]})" if before else "RESET (autovacuum_enabled)"
        quoted = connection.ops.quote_name(table)
        out.append((f"autovacuum {table}", f"ALTER TABLE {quoted} {back}"))
    return out


def indexes_restore(sessions: int = 1) -> int:
    """Build again the indexes (and on PostgreSQL add the foreign keys) a killed
    bulk seed left dropped, or a bulk seed set aside; returns how many.

    ``sessions`` > 1 (PostgreSQL, outside a transaction): the indexes, then the
    keys, are shared out to that many sessions at once. Each index build already
    sorts on parallel workers, but its last merge and each key's check (a join
    over the table) run on one core. Indexes of one table can build at once; the
    keys of a table stay in one session, and no two seeded tables refer to each
    other, so the sessions wait on each other's locks at most, never in a cycle."""
    asides = list(SetAsideIndex.objects.order_by("pk"))
    if sessions <= 1 or connection.vendor != "postgresql" or connection.in_atomic_block:
        return sum(_restore_one(aside) for aside in asides)
    sizes = _table_sizes()
    keys = [a for a in asides if a.sql.startswith("ALTER TABLE ")]
    indexes = [a for a in asides if a not in keys]
    restored = 0
    for step in (indexes, keys):
        shares: list[list[SetAsideIndex]] = [[] for _ in range(sessions)]
        loads = [0] * sessions
        by_table: dict[str, list[SetAsideIndex]] = {}
        for aside in step:
            # An index's own unit of work; a table's keys together.
            group = _table_of(aside.sql) if aside in keys else f"{aside.pk}"
            by_table.setdefault(group, []).append(aside)
        for group in sorted(by_table.values(), key=lambda g: -sizes.get(_table_of(g[0].sql), 0)):
            least = loads.index(min(loads))
            shares[least] += group
            # An autovacuum setting set back is a one-line statement: no weight.
            heavy = [a for a in group if not a.name.startswith("autovacuum ")]
            loads[least] += sizes.get(_table_of(group[0].sql), 0) * len(heavy)
        restored += sum(_on_sessions(_restore_each, [s for s in shares if s]))
    return restored


def _restore_one(aside: SetAsideIndex) -> int:
    with transaction.atomic():
        there = _secondary_indexes(_SEEDED_TABLES) + _foreign_keys(_SEEDED_TABLES)
        built = aside.name not in {name for name, _sql in there}
        if built:
            with connection.cursor() as cur:
                cur.execute(aside.sql)
        aside.delete()
    return int(built and not aside.name.startswith("autovacuum "))


def _restore_each(asides: list[SetAsideIndex]) -> int:
    with connection.cursor() as cur:
        cur.execute("SET maintenance_work_mem = '256MB'")  # this session's sorts
    try:
        restored = sum(_restore_one(aside) for aside in asides)
    except BaseException:
        _quietly(_work_mem_reset, "maintenance_work_mem was not reset")
        raise
    _work_mem_reset()
    return restored


def _work_mem_reset() -> None:
    with connection.cursor() as cur:  # the session may go back to a pool
        cur.execute("RESET maintenance_work_mem")


def _quietly(cleanup: Callable[[], None], what: str) -> None:
    """A clean-up while a failure is on its way out: its own error is logged,
    so that the failure raised is the one that stopped the run."""
    try:
        cleanup()
    except Exception:
        logger.exception("seed_incidents: %s", what)


def _table_of(sql: str) -> str:
    """The table of a set-aside index's or key's statement."""
    match = re.match(r'(?:CREATE INDEX \S+ ON (?:\w+\.)?|ALTER TABLE )"?(\w+)', sql)
    return match.group(1) if match else ""


def _table_sizes() -> dict[str, int]:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT relname, pg_relation_size(oid) FROM pg_class WHERE relname = ANY(%s) "
            "AND relnamespace = current_schema()::regnamespace",
            [_SEEDED_TABLES],
        )
        return dict(cur.fetchall())


def _on_sessions(work: Callable[[Any], int], shares: list) -> list[int]:
    """``work(share)`` for each share, each on a thread with a database session
    of its own; the first failure is raised once all have ended."""
    results: list[int] = [0] * len(shares)
    failed: list[BaseException] = []

    def run(i: int) -> None:
        results[i] = work(shares[i])

    threads = [
        _session_thread(f"seed-session-{i}", lambda i=i: run(i), failed) for i in range(len(shares))
    ]
    for t in threads:
        t.join()
    _raise_first(failed)
    return results


def _session_thread(
    name: str, work: Callable[[], None], failed: list[BaseException]
) -> threading.Thread:
    """A started thread running ``work`` on a database session of its own
    (closed at its end); a failure is added to ``failed``, for the thread that
    joins it to raise."""

    def run() -> None:
        try:
            work()
        except BaseException as exc:
            failed.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread


@contextmanager
def _indexes_set_aside(drop: bool) -> Iterator[None]:
    """Drop the seeded tables' secondary indexes (and on PostgreSQL their foreign
    keys) for a big load, and build them again afterwards, also when the load
    fails. Each is noted in SetAsideIndex in the transaction that drops it, so a
    killed run loses none."""
    indexes_restore()
    if not drop:
        yield
        return
    with transaction.atomic():
        indexes = _secondary_indexes(_SEEDED_TABLES)
        keys = _foreign_keys(_SEEDED_TABLES)
        vacuums = _autovacuum_settings(_SEEDED_TABLES)
        SetAsideIndex.objects.bulk_create(
            [SetAsideIndex(name=n, sql=sql) for n, sql in indexes + keys + vacuums]
        )
        with connection.cursor() as cur:
            for _name, sql in vacuums:
                table = _table_of(sql)
                table = connection.ops.quote_name(table)
                cur.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = off)")
            if keys:
                # Checks still pending from a caller's transaction forbid ALTER TABLE.
                cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for name, sql in keys:
                table = sql.split(" ADD CONSTRAINT ")[0].removeprefix("ALTER TABLE ")
                name = connection.ops.quote_name(name)
                cur.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
            for name, _sql in indexes:
                cur.execute(f"DROP INDEX {connection.ops.quote_name(name)}")
    try:
        yield
    finally:
        if connection.vendor == "postgresql":
            with connection.cursor() as cur:
                # Deferred foreign key checks still pending (inside a caller's
                # transaction) forbid CREATE INDEX on their tables: run them now.
                cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
                # More memory for the index sorts (this session only).
                cur.execute("SET maintenance_work_mem = '256MB'")
        try:
            with _sqlite_sort_mode():
                indexes_restore(sessions=RESTORE_SESSIONS)
        finally:
            if connection.vendor == "postgresql":
                with connection.cursor() as cur:
                    cur.execute("RESET maintenance_work_mem")


@contextmanager
def _sqlite_sort_mode() -> Iterator[None]:
    """SQLite, outside a transaction: CREATE INDEX sorts on all cores.

    SQLite's sorter uses helper threads only when its temporary files are files
    (``temp_store`` MEMORY turns them off), and keeps in memory as much as the
    page cache before it spills a sorted run. So the builds spill runs of 32 MiB
    to files (the OS's page cache holds them), sorted and merged by two helper
    threads: the indexes of a million incidents in ~50 s instead of ~90 s in one
    sort of each index in memory (``docs/benchmarks.md``). Changing
    ``temp_store`` drops the temporary tables, so this comes after the
    parameter tables are gone. Set back at the end."""
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        yield
        return
    with _sqlite_pragmas({"temp_store": 1, "threads": 2, "cache_size": -32768}):
        yield


@contextmanager
def _sqlite_bulk_mode(bulk: bool, city: _City) -> Iterator[None]:
    """SQLite only: a bigger page cache during the load, and for a bulk load no
    per-row foreign key lookups and no CHECK constraints (the JSON check of
    every event's data): every id written is taken from roster rows read at the
    start or reserved by this run, and the rows keep the models' rules by
    construction (``tests/review/test_seeding.py``). At the end the roster rows
    the run referred to are checked to be still there."""
    if connection.vendor != "sqlite":
        yield
        return
    pragmas = {"cache_size": -262144}  # 256 MiB
    if bulk:
        # foreign_keys: a no-op inside a transaction. The index builds at the
        # end sort in a mode of their own (_sqlite_sort_mode).
        pragmas |= {
            "foreign_keys": 0,
            "ignore_check_constraints": 1,
            "cache_size": -1048576,  # 1 GiB
        }
        if not connection.in_atomic_block:
            # The run's parameter tables in memory (SQLite refuses it inside a
            # transaction; set before the parameter tables exist: changing it
            # drops the temporary tables).
            pragmas["temp_store"] = 2
            # A rollback journal instead of the WAL for the load: pages the
            # load adds at the end of the file are written once (the WAL
            # writes each twice, to the log and at the checkpoint); FULL syncs,
            # so a killed or cut-off run leaves the database as a rollback
            # journal does. Both are set back at the end.
            pragmas["synchronous"] = 2
            pragmas["journal_mode"] = "truncate"
    try:
        with _sqlite_pragmas(pragmas):
            yield
    finally:
        if bulk:
            _roster_still_there(city)


@contextmanager
def _sqlite_pragmas(pragmas: dict[str, int | str]) -> Iterator[None]:
    """This connection's ``pragmas`` set, and set back as found at the end."""
    with connection.cursor() as cur:
        before = {}
        for name, value in pragmas.items():
            cur.execute(f"PRAGMA {name}")
            before[name] = cur.fetchone()[0]
            if name != "journal_mode":
                cur.execute(f"PRAGMA {name} = {_pragma_value(value)}")
                continue
            # Leaving the WAL needs the database to itself: when another
            # process has it open, the load stays in the WAL (asked once, no
            # waiting for the busy timeout).
            cur.execute("PRAGMA busy_timeout")
            timeout = cur.fetchone()[0]
            cur.execute("PRAGMA busy_timeout = 0")
            try:
                cur.execute(f"PRAGMA journal_mode = {_pragma_value(value)}")
            except OperationalError:
                del before[name]
            finally:
                cur.execute(f"PRAGMA busy_timeout = {int(timeout)}")
    try:
        yield
    finally:
        with connection.cursor() as cur:
            for name, value in reversed(before.items()):
                cur.execute(f"PRAGMA {name} = {_pragma_value(value)}")


def _pragma_value(value: int | str) -> str:
    return str(int(value)) if isinstance(value, int) else re.sub(r"\W", "", str(value))


def _roster_still_there(city: _City) -> None:
    """The units, members and streets the seeded rows refer to all exist (what
    ``PRAGMA foreign_key_check`` of every seeded row, 35 s at a million
    incidents, found out about them: the run's own rows refer to ids it reserved)."""
    for model, ids in (
        (Unit, city.ids),
        (Member, city.member[city.member >= 0]),
        (Region, np.unique(city.street[city.street >= 0])),
    ):
        wanted = np.unique(ids).tolist()
        found = 0
        for at in range(0, len(wanted), 900):
            found += model.objects.filter(pk__in=wanted[at : at + 900]).count()
        if found != len(wanted):
            raise SeedIncidentsError(f"{model.__name__} rows were deleted during the seed")


# --- the city the incidents happen in ---------------------------------------------------


def _unit_table():
    rows = list(
        Unit.objects.filter(is_active=True)
        .order_by("pk")
        .values_list("pk", "lat", "lon", "region_id")
    )
    if not rows:
        raise SeedIncidentsError("no active units: run seed_demo first")
    arr = np.array(rows, dtype=np.float64)
    first_member = dict(
        Member.objects.order_by()
        .values("unit_id")
        .annotate(m=models.Min("pk"))
        .values_list("unit_id", "m")
    )
    return arr, first_member


def _xyz(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    phi, lam = np.radians(lat), np.radians(lon)
    return np.column_stack((np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)))


@dataclass
class _City:
    """Per active unit (by position in ``ids``): where it is, its street and
    district, its first member (-1: none), how slow and how flaky it is."""

    ids: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    street: np.ndarray
    district: np.ndarray  # -1: none
    member: np.ndarray  # -1: none
    pace: np.ndarray
    flaky: np.ndarray
    tree: cKDTree
    streets: dict[int, int | None]


def _city(rng: np.random.Generator) -> _City:
    units, first_member = _unit_table()
    ids = units[:, 0].astype(np.int64)
    street = units[:, 3].astype(np.int64)
    streets = dict(Region.objects.filter(level=Region.Level.STREET).values_list("pk", "parent_id"))
    districts = sorted({d for d in streets.values() if d})
    # Each district, and each unit, has its own habits: some are slower, some
    # units decline or stay silent much more often than others.
    district_pace = {
        d: float(f) for d, f in zip(districts, rng.lognormal(0, 0.25, len(districts)), strict=False)
    }
    flaky = rng.beta(1.2, 12, ids.size)
    district = np.array([streets.get(int(s)) or -1 for s in street], dtype=np.int64)
    return _City(
        ids=ids,
        lat=units[:, 1],
        lon=units[:, 2],
        street=street,
        district=district,
        member=np.array([first_member.get(int(u), -1) for u in ids], dtype=np.int64),
        pace=np.array([district_pace.get(int(d), 1.0) for d in district]),
        flaky=flaky,
        tree=cKDTree(_xyz(units[:, 1], units[:, 2])),
        streets=streets,
    )


# --- the run ----------------------------------------------------------------------------


def incidents_seed(
    *,
    count: int,
    seed: int = DEFAULT_SEED,
    days: int = 365,
    until: dt.datetime | None = None,
    progress: TextIO | None = None,
    batch: int = BATCH,
    bulk: bool | None = None,
) -> SeedIncidentsResult:
    """Write ``count`` closed past incidents over the ``days`` before ``until``.

    ``bulk`` (default: when writing 50,000 or more incidents, and more than the
    database holds) sets the seeded tables' secondary indexes aside during the
    load, and on SQLite its per-row foreign key checks."""
    if not 1 <= count <= MAX_COUNT:
        raise SeedIncidentsError(f"--count must be 1..{MAX_COUNT:,}")
    if not 1 <= days <= 3650:
        raise SeedIncidentsError("--days must be 1..3650")
    started = time.monotonic()
    rng = np.random.default_rng(seed)
    city = _city(rng)
    until = (until or timezone.now()).astimezone(dt.UTC).replace(microsecond=0)
    writer = _Writer()
    totals = {"events": 0, "dispatches": 0}
    # Roll-ups straight from the generated columns, unless facts were there before
    # (their weeks would mix): then rollups_rebuild reads the facts.
    sums = None if IncidentFact.objects.exists() else _RollupSums(city)
    if bulk is None:
        bulk = count >= 50_000 and count > Incident.objects.count()
    with (
        tqdm(
            total=count,
            unit="incident",
            unit_scale=True,
            file=progress,
            disable=progress is None,
            desc="seed_incidents",
        ) as bar,
        _sqlite_bulk_mode(bulk, city),
        _Alongside(parallel=bulk) as alongside,
        _indexes_set_aside(bulk),
    ):
        weeks: set[int] = set()
        try:
            with _batch_writers(city, writer, bar, parallel=bulk) as write:
                done = 0
                while done < count:
                    n = min(batch, count - done)
                    decided, batch_weeks = _batch_decide(
                        brng=np.random.default_rng([seed, done]),
                        n=n,
                        writer=writer,
                        totals=totals,
                        until=until,
                        window_s=days * 86400,
                        city=city,
                        sums=sums,
                    )
                    write(decided)
                    weeks |= batch_weeks
                    done += n
        except BaseException:
            # The sequences past every id written, also after a failure (whose
            # own error is the one raised).
            _quietly(writer.finish, "the sequences were not set past the seeded ids")
            raise
        writer.finish()
        # The roll-ups are this process's work and the index builds the
        # server's: on PostgreSQL they overlap.
        alongside.start(lambda: _rollups_write(sums, writer))
    if sums is None:
        rollups_rebuild(weeks=weeks)
    with connection.cursor() as cur:
        if connection.vendor == "sqlite":
            # Statistics from a sample of each index (the planner needs no more):
            # a full ANALYZE reads every index of 23 million rows.
            cur.execute("PRAGMA analysis_limit = 1000")
        cur.execute("ANALYZE")
    return SeedIncidentsResult(
        incidents=count,
        events=totals["events"],
        dispatches=totals["dispatches"],
        seconds=round(time.monotonic() - started, 1),
    )


def _rollups_write(sums: _RollupSums | None, writer: _Writer) -> None:
    with transaction.atomic():
        if sums is not None:
            sums.write(writer)


class _Alongside:
    """Work started inside the ``with`` and finished by its end: on a thread
    with a database session of its own when ``parallel`` (PostgreSQL, outside a
    transaction), so that it runs while the contexts entered after this one
    end; else there and then. Its failure is raised at the end."""

    def __init__(self, *, parallel: bool) -> None:
        self.parallel = (
            parallel and connection.vendor == "postgresql" and not connection.in_atomic_block
        )
        self.thread: threading.Thread | None = None
        self.failed: list[BaseException] = []

    def start(self, work: Callable[[], None]) -> None:
        if not self.parallel:
            work()
            return
        self.thread = _session_thread("seed-alongside", work, self.failed)

    def __enter__(self) -> _Alongside:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.thread is not None:
            self.thread.join()
        if exc_type is None:
            _raise_first(self.failed)
        for failure in self.failed:  # the with's own failure is raised
            logger.error("seed_incidents: also failed", exc_info=failure)


@contextmanager
def _param_tables(city: _City) -> Iterator[None]:
    """The temporary tables the database makes the seeded rows from, for this run."""
    district = city.district.tolist()
    seeding_sql.tables_create(
        k=min(UNITS_PER_WAVE, city.ids.size),
        units=[
            (u, s, d if d >= 0 else None)
            for u, s, d in zip(city.ids.tolist(), city.street.tolist(), district, strict=True)
        ],
    )
    try:
        yield
    finally:
        seeding_sql.tables_drop()


@contextmanager
def _batch_writers(
    city: _City, writer: _Writer, bar: tqdm, *, parallel: bool
) -> Iterator[Callable[[_Batch], None]]:
    """``write(batch)``: the batch's rows in a transaction of their own.

    On PostgreSQL, for a bulk load outside a transaction, ``PG_WRITERS`` threads
    each write whole batches on a connection of their own (with its own
    parameter tables) while this thread decides the next ones: a million
    incidents' ``INSERT ... SELECT``s took one core of the server and left the
    other idle. Each batch is still one transaction and keeps the ids reserved
    for it in batch order, so the rows are the same. The first failure stops
    the run and is raised here; the batches committed stay, as with one writer
    (with two, the batch after a failed one may be among them: ids have gaps,
    which a next run does not mind). Ctrl-C waits for the batches being written."""
    if not parallel or connection.vendor != "postgresql" or connection.in_atomic_block:
        with _param_tables(city):

            def write_here(batch: _Batch) -> None:
                with transaction.atomic():
                    _batch_write(batch, writer)
                bar.update(batch.n)

            yield write_here
        return

    jobs: queue.Queue[_Batch | None] = queue.Queue(maxsize=PG_WRITERS)
    failed: list[BaseException] = []
    stop = threading.Event()

    def run(i: int) -> None:
        stopped = False  # this thread's end mark taken
        try:
            with _param_tables(city):
                while (batch := jobs.get()) is not None:
                    if failed or stop.is_set():
                        continue  # the run is ending: the batches still queued are dropped
                    with transaction.atomic():
                        _batch_write(batch, writer, reverse=i % 2 == 1)
                    bar.update(batch.n)
                stopped = True
        except BaseException as exc:  # raised in the deciding thread
            failed.append(exc)
        finally:
            while not stopped:  # never leave the decider blocked on a full queue
                stopped = jobs.get() is None
            connection.close()

    threads = [
        threading.Thread(target=run, args=(i,), name=f"seed-writer-{i}") for i in range(PG_WRITERS)
    ]
    for t in threads:
        t.start()

    def write_there(batch: _Batch) -> None:
        if failed:
            raise failed[0]
        jobs.put(batch)

    leaving: BaseException | None = None
    try:
        yield write_there
    except BaseException as exc:
        leaving = exc
        stop.set()  # e.g. Ctrl-C: the writers end with the batch they are writing
        raise
    finally:
        for _t in threads:
            jobs.put(None)
        for t in threads:
            t.join()
        for failure in failed if leaving is not None else []:
            if failure is not leaving:
                logger.error("seed_incidents: a writer also failed", exc_info=failure)
    _raise_first(failed)


def _raise_first(failed: list[BaseException]) -> None:
    """Raise the first of the threads' failures; log the others."""
    for exc in failed[1:]:
        logger.error("seed_incidents: another failure", exc_info=exc)
    if failed:
        raise failed[0]


@dataclass
class _Batch:
    """A decided batch of incidents: the rows its writer sends, in one transaction."""

    n: int
    k: int
    params: dict[str, Any]  # seed_p's columns: a row per incident
    declines: dict[str, Any]  # seed_d's: a row per decline
    n_declines: int
    first_ids: dict[str, int]  # of its incidents, waves and dispatches
    synced_at: Any
    trail: dict[str, Any] | None  # MemberLocation's columns
    n_trail: int


def _batch_write(batch: _Batch, writer: _Writer, *, reverse: bool = False) -> None:
    writer.write_params("seed_p", seeding_sql.param_columns(batch.k), batch.n, batch.params)
    writer.write_table(
        "seed_d",
        [name for name, _kind in seeding_sql.DECLINE_COLUMNS],
        batch.n_declines,
        batch.declines,
    )
    seeding_sql.rows_make(k=batch.k, synced_at=batch.synced_at, reverse=reverse, **batch.first_ids)
    seeding_sql.params_clear()
    if batch.trail is not None:
        writer.write(MemberLocation, batch.n_trail, batch.trail)


def _batch_decide(
    *, brng, n, writer, totals, until, window_s, city: _City, sums
) -> tuple[_Batch, set[int]]:
    """Decide ``n`` incidents (and reserve their ids, in batch order); returns
    them and the weeks they fall in."""
    nu = city.ids.size
    # Where: near a random unit (units follow people), up to ~300 m off.
    home = brng.integers(0, nu, n)
    lat = city.lat[home] + brng.normal(0, 120, n) / 111_320
    lon = city.lon[home] + brng.normal(0, 120, n) / (111_320 * np.cos(np.radians(city.lat[home])))
    street = city.street[home]
    district = city.district[home]
    # When: a day in the window, an hour by the daily profile.
    day = brng.integers(0, window_s // 86400, n)
    hour = brng.choice(24, n, p=HOUR_WEIGHT / HOUR_WEIGHT.sum())
    sec = brng.integers(0, 3600, n)
    ago = day * 86400 + (23 - hour) * 3600 + sec + 600
    kind = brng.choice(len(KINDS), n, p=KIND_P)
    severity = brng.choice(4, n, p=SEVERITY_P) + 1
    pace = city.pace[home]
    # The four firsts: log-normal steps, slower in slow districts.
    to_resp = np.ceil(brng.lognormal(np.log(38), 0.55, n) * pace).astype(np.int64)
    to_ctrl = to_resp + np.ceil(brng.lognormal(np.log(95), 0.5, n) * pace).astype(np.int64)
    to_hand = to_ctrl + np.ceil(brng.lognormal(np.log(140), 0.6, n) * pace).astype(np.int64)
    fate = brng.random(n)
    responded = fate >= 0.02  # the rest: nobody answered
    controlled = fate >= 0.03  # answered, never on site: 1 %
    # The wave: the nearest units, ranked by distance.
    k = min(UNITS_PER_WAVE, nu)
    _d, near = city.tree.query(_xyz(lat, lon), k=k)
    near = near.reshape(n, k)
    dist = haversine_m_array(lat[:, None], lon[:, None], city.lat[near], city.lon[near])
    rand = brng.random((n, k))
    far = brng.random(n) < ON_SITE_FAR_SHARE
    trail = brng.random(n) < TRAIL_SHARE

    inc_id = writer.reserve(Incident, n)
    wave_id = writer.reserve(Wave, n)
    disp_id = writer.reserve(Dispatch, n * k)
    until_s = int(until.timestamp())
    t0 = until_s - ago
    t_resp, t_ctrl, t_hand = t0 + to_resp, t0 + to_ctrl, t0 + to_hand
    iid = inc_id + np.arange(n)
    kind_text = np.asarray(KINDS, dtype=object)[kind]

    # Who answers: the first unit in rank order that is not flaky today (else the
    # nearest); the others may decline.
    flaky = city.flaky[near]
    willing = rand > flaky
    first = np.where(willing.any(axis=1), willing.argmax(axis=1), 0)
    is_first = responded[:, None] & (np.arange(k)[None, :] == first[:, None])
    declined = ~is_first & (rand < flaky * 0.5)
    unit = city.ids[near]  # (n, k) unit ids
    member = city.member[near]
    first_unit = unit[np.arange(n), first]
    first_member = member[np.arange(n), first]
    distance = np.round(dist).astype(np.int64)
    eta = np.ceil(dist * 1.3 / 1.4).astype(np.int64)

    # Where the first responder reported from: near the scene, or far off.
    n_ctrl = int(controlled.sum())
    off = np.where(far[controlled], 600, 30)
    jitter = brng.normal(0, 1, (n_ctrl, 2)) * off[:, None]
    site_lat = lat[controlled] + jitter[:, 0] / 111_320
    site_lon = lon[controlled] + jitter[:, 1] / 111_320

    # The review's facts, as facts_sync computes them.
    targets = selectors.targets_s()
    week = (t0 + _utc_offset_s() + 3 * 86400) // WEEK_S
    ok_r = responded & (to_resp <= targets["responded"])
    ok_c = controlled & (to_ctrl <= targets["controlled"])
    ok_h = controlled & (to_hand <= targets["handled"])

    # Events, numbered as events_record would: created, alerted per rank, the
    # declines in rank order, then accepted, on site, handled, closed. The
    # database makes them from the template of slots (review/seeding_sql.py).
    n_declined = declined.sum(axis=1)
    per_incident = 1 + k + n_declined + responded + 3 * controlled
    offset = np.cumsum(per_incident) - per_incident
    total = int(per_incident.sum())
    ev_id = writer.reserve(IncidentEvent, total)
    # The j-th decline of an incident (in rank order): its unit, member and time.
    d_rows, d_rank = np.nonzero(declined)
    d_j = (np.cumsum(declined, axis=1) - declined)[d_rows, d_rank]
    d_at = writer.times(t0[d_rows] + (5 + 40 * rand[d_rows, d_rank]).astype(np.int64))
    site = np.full(n, None, object)
    site[controlled] = [
        f'{{"lat": {a!r}, "lon": {b!r}}}'
        for a, b in zip(np.round(site_lat, 6).tolist(), np.round(site_lon, 6).tolist(), strict=True)
    ]
    params = {
        "id": iid,
        "kind": kind_text.tolist(),
        "severity": severity,
        "lat": np.round(lat, 6),
        "lon": np.round(lon, 6),
        "street": street,
        "district": _Nullable(district, district >= 0),
        "status": np.where(
            controlled, Incident.Status.CLOSED.value, Incident.Status.CANCELLED.value
        ).tolist(),
        "flagged": (~controlled | (to_ctrl > 180)).tolist(),
        "t0": t0,
        "tr": _Nullable(t_resp, responded),
        "tc": _Nullable(t_ctrl, controlled),
        "th": _Nullable(t_hand, controlled),
        "last_seq": per_incident,
        "ev0": ev_id + offset,
        "nd": n_declined,
        "first": np.where(responded, first + 1, 0),
        "fu": first_unit,
        "fm": _Nullable(first_member, first_member >= 0),
        "to_r": _Nullable(to_resp, responded),
        "to_c": _Nullable(to_ctrl, controlled),
        "to_h": _Nullable(to_hand, controlled),
        "week": week,
        "ok_r": ok_r.tolist(),
        "ok_c": ok_c.tolist(),
        "ok_h": ok_h.tolist(),
        "site": _Nullable(site, controlled),
        "dmask": (declined.astype(np.int64) << np.arange(k)[None, :]).sum(axis=1),
        **seeding_sql.rank_columns("u", unit),
        **seeding_sql.rank_columns("d", distance),
        **seeding_sql.rank_columns("e", eta),
    }
    m_d = member[d_rows, d_rank]
    declines = {
        "inc": iid[d_rows],
        "j": d_j,
        "unit": unit[d_rows, d_rank],
        "member": _nullable(m_d, m_d >= 0),
        "at": d_at,
    }
    trail_rows: dict[str, Any] | None = None
    m = 0

    # Position trails: six points from the unit to where it reported on site.
    trail_of = trail[controlled] & (first_member[controlled] >= 0)
    if trail_of.any():
        rows = np.flatnonzero(controlled)[trail_of]
        f = np.tile(np.arange(6) / 5, rows.size)
        rr = np.repeat(rows, 6)
        u_lat = city.lat[near[rr, first[rr]]]
        u_lon = city.lon[near[rr, first[rr]]]
        p_lat = np.repeat(site_lat[trail_of], 6)
        p_lon = np.repeat(site_lon[trail_of], 6)
        # t_resp + (t_ctrl - t_resp) * s / 5, to the microsecond, exactly.
        at_us = t_resp[rr] * 1_000_000 + (t_ctrl[rr] - t_resp[rr]) * 200_000 * np.tile(
            np.arange(6), rows.size
        )
        m = rr.size
        trail_rows = {
            "id": writer.reserve(MemberLocation, m) + np.arange(m),
            "member_id": first_member[rr],
            "incident_id": iid[rr],
            "lat": u_lat + (p_lat - u_lat) * f,
            "lon": u_lon + (p_lon - u_lon) * f,
            "accuracy_m": 10.0,
            "created_at": writer.times_us(at_us),
        }

    if sums is not None:
        sums.add(
            week=week, day=(t0 + _utc_offset_s()) // 86400, street=street, district=district,
            kind=kind,
            r=np.where(responded, to_resp, -1), c=np.where(controlled, to_ctrl, -1),
            h=np.where(controlled, to_hand, -1), ok=(ok_r, ok_c, ok_h),
            near=near, is_first=is_first, controlled=controlled, declined=declined,
        )  # fmt: skip
    totals["events"] += total
    totals["dispatches"] += n * k
    decided = _Batch(
        n=n,
        k=k,
        params=params,
        declines=declines,
        n_declines=d_rows.size,
        first_ids={"wave0": wave_id, "disp0": disp_id, "inc0": inc_id},
        synced_at=writer.times(np.asarray([until_s]))[0],
        trail=trail_rows,
        n_trail=m,
    )
    return decided, set(np.unique(week).tolist())


class _RollupSums:
    """The weekly roll-ups of the seeded facts, summed from the generated columns
    (what ``rollups_rebuild`` would compute from the fact rows)."""

    def __init__(self, city: _City) -> None:
        self.city = city
        self.incidents: list[dict[str, np.ndarray]] = []
        self.dispatches: list[dict[str, np.ndarray]] = []

    def add(self, *, week, day, street, district, kind, r, c, h, ok, near, is_first,
            controlled, declined) -> None:  # fmt: skip
        self.incidents.append(
            {"week": week, "day": day, "street": street, "district": district, "kind": kind,
             "r": r, "c": c, "h": h, "ok_r": ok[0], "ok_c": ok[1], "ok_h": ok[2]}
        )  # fmt: skip
        k = near.shape[1]
        self.dispatches.append(
            {
                "week": np.repeat(week, k),
                "day": np.repeat(day, k),
                "unit": near.ravel(),  # position in city.ids
                "district": np.repeat(district, k),
                "accepted": is_first.ravel(),
                "on_site": (is_first & controlled[:, None]).ravel(),
                "declined": declined.ravel(),
            }
        )

    def write(self, writer: _Writer) -> None:
        if not self.incidents:
            return
        inc = {
            name: np.concatenate([b[name] for b in self.incidents]) for name in self.incidents[0]
        }
        groups, sums = _summed(inc, "week", "street", "district", "kind")
        g = groups.shape[0]
        streets, districts = groups[:, 1], groups[:, 2]
        writer.write(
            WeeklyRollup,
            g,
            {
                "id": writer.reserve(WeeklyRollup, g) + np.arange(g),
                "week": groups[:, 0],
                "region_id": streets,
                "street_id": streets,
                "district_id": _nullable(districts, districts >= 0),
                "kind": np.asarray(KINDS, dtype=object)[groups[:, 3]].tolist(),
                **sums,
            },
        )
        # Every seeded incident has a street: all are "located".
        groups, sums = _summed(inc, "week", "district")
        g = groups.shape[0]
        districts = groups[:, 1]
        writer.write(
            DistrictWeekly,
            g,
            {
                "id": writer.reserve(DistrictWeekly, g) + np.arange(g),
                "week": groups[:, 0],
                "district_id": _nullable(districts, districts >= 0),
                "located": True,
                **sums,
            },
        )

        d = {
            name: np.concatenate([b[name] for b in self.dispatches]) for name in self.dispatches[0]
        }
        groups, group_of = group_rows(d["week"], d["unit"], d["district"])
        g = groups.shape[0]
        accepted, declined = d["accepted"], d["declined"]
        unit = groups[:, 1]
        unit_district = self.city.district[unit]
        districts = groups[:, 2]
        writer.write(
            UnitWeekly,
            g,
            {
                "id": writer.reserve(UnitWeekly, g) + np.arange(g),
                "week": groups[:, 0],
                "unit_id": self.city.ids[unit],
                "unit_street_id": self.city.street[unit],
                "unit_district_id": _nullable(unit_district, unit_district >= 0),
                "district_id": _nullable(districts, districts >= 0),
                "alerted": np.bincount(group_of, minlength=g),
                "accepted": count_of(group_of, accepted, g),
                "declined": count_of(group_of, declined, g),
                "no_answer": count_of(group_of, ~accepted & ~declined, g),
                "on_site": count_of(group_of, d["on_site"], g),
            },
        )
        self._write_packed(writer, inc, d)
        writer.finish()

    def _write_packed(self, writer: _Writer, inc: dict, d: dict) -> None:
        """The packed roll-ups, as ``rollups_rebuild`` writes them: ``CityWeekly``,
        ``DistrictDaily`` and ``UnitDaily``, and the cumulative ``DistrictCumulative``
        and ``UnitCumulative`` dense from each key's first week to the last."""
        durations = [inc["r"], inc["c"], inc["h"]]
        ok = (inc["ok_r"], inc["ok_c"], inc["ok_h"])
        located = np.ones(inc["day"].size, np.int64)  # every seeded incident has a street
        groups, sums, hists = incident_packs([inc["week"], located], durations, ok)
        self._write_hists(writer, CityWeekly, {"week": groups[:, 0]}, sums, hists)
        groups, sums, hists = incident_packs([inc["day"], inc["district"]], durations, ok)
        self._write_hists(
            writer, DistrictDaily, {"day": groups[:, 0], "district_id": groups[:, 1]}, sums, hists
        )
        # Cumulative from the weekly sums per district, as the beat adds them up.
        groups, sums, hists = incident_packs([inc["week"], inc["district"]], durations, ok)
        weekly: dict[int, dict] = {}
        for i, (week, district) in enumerate(groups.tolist()):
            weekly.setdefault(week, {})[(district, True)] = (sums[i], hist_unpack(hists[i]))
        first, last = int(groups[:, 0].min()), int(groups[:, 0].max())
        rows = [
            (week, district, total, hist.tobytes())
            for week, totals in hist_cumulative({}, weekly, first, last)
            for (district, _located), (total, hist) in totals.items()
        ]
        self._write_hists(
            writer,
            DistrictCumulative,
            {
                "week": np.array([r[0] for r in rows], np.int64),
                "district_id": np.array([r[1] for r in rows], np.int64),
            },
            np.array([r[2] for r in rows], np.int64).reshape(-1, 5),
            [r[3] for r in rows],
        )

        unit = d["unit"]  # positions in city.ids
        places = (self.city.ids[unit], self.city.street[unit], self.city.district[unit])
        flags = {"accepted": d["accepted"], "declined": d["declined"], "on_site": d["on_site"]}
        keys, packs = unit_packs([d["day"], d["district"]], *places, **flags)
        self._write_units(writer, UnitDaily, "day", keys, packs)
        keys, packs = unit_packs([d["week"], d["district"]], *places, **flags)
        unit_weekly: dict[int, dict] = {}
        for i, (week, district) in enumerate(keys.tolist()):
            unit_weekly.setdefault(week, {})[(district,)] = units_unpack(packs[i])
        first, last = int(keys[:, 0].min()), int(keys[:, 0].max())
        cumulative = [
            (week, district, units.tobytes())
            for week, totals in units_cumulative({}, unit_weekly, first, last)
            for (district,), units in totals.items()
        ]
        self._write_units(
            writer,
            UnitCumulative,
            "week",
            np.array([c[:2] for c in cumulative], np.int64).reshape(-1, 2),
            [c[2] for c in cumulative],
        )

    @staticmethod
    def _write_hists(writer: _Writer, model, keys: dict, sums: np.ndarray, hists: list) -> None:
        g = len(hists)
        columns = {}
        for name, values in keys.items():
            columns[name] = _nullable(values, values >= 0) if name == "district_id" else values
        writer.write(
            model,
            g,
            {
                "id": writer.reserve(model, g) + np.arange(g),
                **columns,
                "located": True,
                "n": sums[:, 0],
                "ok_responded": sums[:, 1],
                "ok_controlled": sums[:, 2],
                "ok_handled": sums[:, 3],
                "ok_all": sums[:, 4],
                "hist": hists,
            },
        )

    @staticmethod
    def _write_units(writer: _Writer, model, period: str, keys: np.ndarray, packs: list) -> None:
        g = len(packs)
        writer.write(
            model,
            g,
            {
                "id": writer.reserve(model, g) + np.arange(g),
                period: keys[:, 0],
                "district_id": _nullable(keys[:, 1], keys[:, 1] >= 0),
                "units": packs,
            },
        )


def _summed(inc: dict[str, np.ndarray], *keys: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Roll-up columns of the incident facts grouped by ``keys``: the groups, and
    counts, 1-3-5 counts and duration histograms (JSON text) per group."""
    groups, group_of = group_rows(*(inc[k] for k in keys))
    g = groups.shape[0]
    hist: list[dict[str, dict[int, int]]] = [
        {"to_response_s": {}, "to_control_s": {}, "to_handling_s": {}} for _ in range(g)
    ]
    for name, values in (("to_response_s", inc["r"]), ("to_control_s", inc["c"]),
                         ("to_handling_s", inc["h"])):  # fmt: skip
        has = values >= 0
        pairs, counts = np.unique(
            group_of[has].astype(np.int64) << 32 | values[has], return_counts=True
        )
        for pair, n in zip(pairs.tolist(), counts.tolist(), strict=True):
            hist[pair >> 32][name][pair & 0xFFFFFFFF] = n
    ok_r, ok_c, ok_h = inc["ok_r"], inc["ok_c"], inc["ok_h"]
    return groups, {
        "n": np.bincount(group_of, minlength=g),
        "ok_responded": count_of(group_of, ok_r, g),
        "ok_controlled": count_of(group_of, ok_c, g),
        "ok_handled": count_of(group_of, ok_h, g),
        "ok_all": count_of(group_of, ok_r & ok_c & ok_h, g),
        "hist": [json.dumps(h) for h in hist],
    }


__all__ = ["SeedIncidentsError", "incidents_seed"]
