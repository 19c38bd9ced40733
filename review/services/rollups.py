"""Roll-ups: the incident and dispatch facts and their weekly sums, rewritten
by Celery so reports over a year read thousands of rows, not millions."""

from __future__ import annotations

import datetime as dt
import gc
import json
import time

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Max, Min, Q
from django.utils import timezone

from dispatch.models import Dispatch, Incident
from units.models import Region

from .. import readiness
from ..expressions import DayNumber, WeekNumber
from ..models import (
    CityWeekly,
    DispatchFact,
    DistrictCumulative,
    DistrictDaily,
    DistrictWeekly,
    IncidentFact,
    IndexSnapshot,
    UnitCumulative,
    UnitDaily,
    UnitWeekly,
    WeeklyRollup,
)
from ..packed import (
    hist_cumulative,
    hist_of,
    hist_sum,
    hist_unpack,
    incident_packs,
    unit_packs,
    units_cumulative,
    units_sum,
    units_unpack,
)
from ..selectors.common import _utc_offset_s, week_bounds
from ..selectors.facts import facts_watermark
from ..selectors.incidents import incidents_annotated
from ..selectors.stats import dispatches_annotated

# --- roll-ups: incident and dispatch facts -------------------------------------------------

# Incidents read (and compared) per pass; nothing here holds a transaction.
FACTS_CHUNK = 5000
# Writes go in short transactions: on SQLite every transaction holds the one write
# lock from BEGIN (IMMEDIATE), and a member's accept waits behind it. A batch is
# sized to take about WRITE_TARGET_S: it halves when a batch took longer (a slow or
# busy machine) and doubles, up to the maximum, when it took less than half.
# tests/review/test_refresh_lock.py bounds the longest; bench/review_refresh.py
# prints the accept latency during a refresh.
WRITE_TARGET_S = 0.02
FACTS_WRITE_BATCH = 20  # incidents (each with its dispatch facts) in the first batch
FACTS_WRITE_BATCH_MAX = 200
ROLLUP_WRITE_BATCH = 200  # roll-up rows in the first batch
ROLLUP_WRITE_BATCH_MAX = 2000
WRITE_PAUSE_S = 0.05  # SQLite: the write lock is free this long between batches


class _Batches:
    """Consecutive slices of a list, each written in its own timed transaction."""

    def __init__(self, first: int, most: int) -> None:
        self.size, self.most = first, most

    def __call__(self, items: list):
        at = 0
        while at < len(items):
            batch = items[at : at + self.size]
            at += len(batch)
            # No garbage collection while the lock is held: a full collection over
            # the chunk's many fact objects took ~0.2 s inside one batch. It runs
            # between batches instead.
            collecting = gc.isenabled()
            gc.disable()
            try:
                started = time.perf_counter()
                with transaction.atomic():
                    yield batch
                took = time.perf_counter() - started
            finally:
                if collecting:
                    gc.enable()
            if took > WRITE_TARGET_S:
                self.size = max(1, self.size // 2)
            elif took < WRITE_TARGET_S / 2:
                self.size = min(self.most, self.size * 2)
            if at < len(items) and connection.vendor == "sqlite":
                # Let a waiting writer in. SQLite's busy handler polls a locked
                # database at growing intervals (1, 2, 5 ... 25 ms, later 100 ms):
                # batches back to back starved a member's write for up to 5 s.
                time.sleep(WRITE_PAUSE_S)


def _fact_places(region_id, level, parent_id) -> tuple[int | None, int | None]:
    """(street id, district id) of an incident's or unit's region."""
    if level == Region.Level.STREET:
        return region_id, parent_id
    if level == Region.Level.DISTRICT:
        return None, region_id
    return None, None


def facts_sync(*, recent_hours: float | None = None, full: bool = False) -> int:
    """(Re)write the facts of incidents not yet in them, and of those discovered in
    the last ``recent_hours`` (their timestamps may still move). ``full`` rewrites
    all. Drills are not facts: they are reviewed apart. Returns incidents read.

    Off the hot write path: facts are computed and compared with the stored ones
    outside any transaction (WAL readers never block the writer), and only the
    incidents whose facts changed are written, in batches of about
    ``WRITE_TARGET_S`` each, every batch its own short transaction. The roll-ups
    of the touched weeks follow the same way. Batches go in incident order, so the
    watermark (the highest incident with facts) never passes an incident whose
    facts are missing: newer ones are read live. While a refresh runs, a
    whole-week report can lag behind the facts just written by that one refresh
    (seconds), as it lags behind the incidents between refreshes.
    """

    hours = recent_hours if recent_hours is not None else settings.REVIEW_FACTS_RESYNC_HOURS
    qs = Incident.objects.filter(is_drill=False)
    if not full:
        since = timezone.now() - dt.timedelta(hours=hours)
        qs = qs.filter(Q(pk__gt=facts_watermark()) | Q(discovered_at__gte=since))
    ids = list(qs.order_by("pk").values_list("pk", flat=True))
    weeks: set[int] = set()
    batches = _Batches(FACTS_WRITE_BATCH, FACTS_WRITE_BATCH_MAX)
    for start in range(0, len(ids), FACTS_CHUNK):
        chunk = ids[start : start + FACTS_CHUNK]
        changed, touched = _facts_changed(chunk)
        weeks |= touched
        for batch in batches(changed):  # each batch inside its own transaction
            batch_ids = [incident_id for incident_id, _fact, _dispatches in batch]
            IncidentFact.objects.filter(incident_id__in=batch_ids).delete()
            DispatchFact.objects.filter(dispatch__incident_id__in=batch_ids).delete()
            IncidentFact.objects.bulk_create([f for _i, f, _d in batch if f is not None])
            DispatchFact.objects.bulk_create([d for _i, _f, ds in batch for d in ds])
    if weeks:
        rollups_rebuild(weeks=weeks)
    return len(ids)


def _fields(model, *exclude: str) -> list:
    return [f for f in model._meta.concrete_fields if f.attname not in {"id", *exclude}]


def _row(fields: list, values) -> tuple:
    """Values as the database stores them (ints rounded, JSON round-tripped), to compare."""
    out = []
    for field, value in zip(fields, values, strict=True):
        if value is not None and field.get_internal_type() == "JSONField":
            # Keys come back from the database as strings: compare them that way.
            value = json.dumps(json.loads(json.dumps(value)), sort_keys=True)
        elif isinstance(value, memoryview):
            value = bytes(value)
        elif value is not None:
            value = field.get_prep_value(value)
        out.append(value)
    return tuple(out)


def _facts_changed(ids: list[int]) -> tuple[list[tuple], set[int]]:
    """``([(incident id, IncidentFact or None, [DispatchFact]), ...], weeks)`` for the
    incidents among ``ids`` whose facts differ from the stored ones, in id order;
    ``weeks`` holds their weeks, before and after. Reads only."""
    i_fields = _fields(IncidentFact, "synced_at")
    d_fields = _fields(DispatchFact)
    i_names = [f.attname for f in i_fields]
    d_names = [f.attname for f in d_fields]
    stored_i = {
        row[0]: row
        for row in (
            _row(i_fields, v)
            for v in IncidentFact.objects.filter(incident_id__in=ids).values_list(*i_names)
        )
    }
    stored_d: dict[int, set[tuple]] = {}
    # Through the dispatch rows (their incident index, then the facts' primary
    # key): the facts' own incident_id has no index, and this ran a scan of
    # every fact (five million at a million incidents) each minute.
    for v in DispatchFact.objects.filter(dispatch__incident_id__in=ids).values_list(*d_names):
        row = _row(d_fields, v)
        stored_d.setdefault(row[d_names.index("incident_id")], set()).add(row)
    new_i = {f.incident_id: f for f in _incident_facts(ids)}
    new_d: dict[int, list[DispatchFact]] = {}
    for f in _dispatch_facts(ids):
        new_d.setdefault(f.incident_id, []).append(f)
    week_at = i_names.index("week")
    changed: list[tuple] = []
    weeks: set[int] = set()
    for incident_id in ids:
        fact, dispatches = new_i.get(incident_id), new_d.get(incident_id, [])
        old = stored_i.get(incident_id)
        new = _row(i_fields, [getattr(fact, n) for n in i_names]) if fact else None
        same_d = stored_d.get(incident_id, set()) == {
            _row(d_fields, [getattr(d, n) for n in d_names]) for d in dispatches
        }
        if old == new and same_d:
            continue
        changed.append((incident_id, fact, dispatches))
        weeks |= {row[week_at] for row in (old, new) if row is not None}
    return changed, weeks


def _incident_facts(ids: list[int]):
    rows = (
        incidents_annotated(Incident.objects.filter(pk__in=ids))
        .annotate(week=WeekNumber("discovered_at", offset_s=_utc_offset_s()))
        .values_list(
            "pk", "region_id", "region__level", "region__parent_id", "kind", "discovered_at",
            "week", "to_response_s", "to_control_s", "to_handling_s",
            "ok_responded", "ok_controlled", "ok_handled",
        )
    )  # fmt: skip
    for pk, region_id, level, parent, kind, at, week, r, c, h, ok_r, ok_c, ok_h in rows:
        street, district = _fact_places(region_id, level, parent)
        yield IncidentFact(
            incident_id=pk,
            region_id=region_id,
            street_id=street,
            district_id=district,
            kind=kind,
            discovered_at=at,
            week=week,
            to_response_s=r,
            to_control_s=c,
            to_handling_s=h,
            ok_responded=bool(ok_r),
            ok_controlled=bool(ok_c),
            ok_handled=bool(ok_h),
            ok_all=bool(ok_r and ok_c and ok_h),
        )


def _dispatch_facts(ids: list[int]):
    rows = dispatches_annotated(Dispatch.objects.filter(incident_id__in=ids)).values_list(
        "pk", "incident_id", "unit_id", "unit__region_id", "unit__region__level",
        "unit__region__parent_id", "incident__region_id", "incident__region__level",
        "incident__region__parent_id", "incident__discovered_at", "incident__kind",
        "to_response_s", "to_control_s", "to_handling_s", "did_decline",
    )  # fmt: skip
    for (
        pk, incident_id, unit_id, u_region, u_level, u_parent, i_region, i_level, i_parent,
        at, kind, r, c, h, declined,
    ) in rows:  # fmt: skip
        street, district = _fact_places(i_region, i_level, i_parent)
        unit_street, unit_district = _fact_places(u_region, u_level, u_parent)
        yield DispatchFact(
            dispatch_id=pk,
            incident_id=incident_id,
            unit_id=unit_id,
            street_id=street,
            district_id=district,
            unit_street_id=unit_street,
            unit_district_id=unit_district,
            discovered_at=at,
            kind=kind,
            to_response_s=r,
            to_control_s=c,
            to_handling_s=h,
            declined=bool(declined),
        )


def rollups_rebuild(*, weeks: set[int] | None = None) -> int:
    """Rebuild the weekly roll-ups of these weeks (None: every week with facts)
    from the facts. Returns how many weeks were rebuilt."""

    if weeks is not None and _packed_missing():
        weeks = None  # a database from before the packed roll-ups: build them all
    if weeks is None:
        weeks = set(IncidentFact.objects.values_list("week", flat=True).distinct())
        weeks |= set(WeeklyRollup.objects.values_list("week", flat=True).distinct())
    for week in sorted(weeks):
        start, end = week_bounds(week)
        groups: dict[tuple, list] = {}
        for region, street, district, kind, r, c, h, ok_r, ok_c, ok_h, ok_all in (
            IncidentFact.objects.filter(discovered_at__gte=start, discovered_at__lt=end)
            .order_by()
            .values_list(
                "region_id", "street_id", "district_id", "kind", "to_response_s",
                "to_control_s", "to_handling_s", "ok_responded", "ok_controlled",
                "ok_handled", "ok_all",
            )
        ):  # fmt: skip
            g = groups.setdefault((region, street, district, kind), [0, 0, 0, 0, 0, {}, {}, {}])
            g[0] += 1
            g[1] += ok_r
            g[2] += ok_c
            g[3] += ok_h
            g[4] += ok_all
            for slot, value in ((5, r), (6, c), (7, h)):
                if value is not None:
                    g[slot][value] = g[slot].get(value, 0) + 1
        units: dict[tuple, list] = {}
        for unit, u_street, u_district, district, r, c, declined in (
            DispatchFact.objects.filter(discovered_at__gte=start, discovered_at__lt=end)
            .order_by()
            .values_list(
                "unit_id", "unit_street_id", "unit_district_id", "district_id",
                "to_response_s", "to_control_s", "declined",
            )
        ):  # fmt: skip
            u = units.setdefault((unit, u_street, u_district, district), [0] * 5)
            u[0] += 1
            u[1] += r is not None
            u[2] += bool(declined)
            u[3] += r is None and not declined
            u[4] += c is not None
        _rows_sync(
            WeeklyRollup,
            week,
            ("region_id", "street_id", "district_id", "kind"),
            {
                key: {
                    "n": g[0],
                    "ok_responded": g[1],
                    "ok_controlled": g[2],
                    "ok_handled": g[3],
                    "ok_all": g[4],
                    "hist": {"to_response_s": g[5], "to_control_s": g[6], "to_handling_s": g[7]},
                }
                for key, g in groups.items()
            },
        )
        coarse: dict[tuple, list] = {}
        for (region, _street, district, _kind), g in groups.items():
            c = coarse.setdefault((district, region is not None), [0, 0, 0, 0, 0, {}, {}, {}])
            for i in range(5):
                c[i] += g[i]
            for slot in (5, 6, 7):
                into = c[slot]
                for value, count in g[slot].items():
                    into[value] = into.get(value, 0) + count
        _rows_sync(
            DistrictWeekly,
            week,
            ("district_id", "located"),
            {
                key: {
                    "n": c[0],
                    "ok_responded": c[1],
                    "ok_controlled": c[2],
                    "ok_handled": c[3],
                    "ok_all": c[4],
                    "hist": {"to_response_s": c[5], "to_control_s": c[6], "to_handling_s": c[7]},
                }
                for key, c in coarse.items()
            },
        )
        _rows_sync(
            UnitWeekly,
            week,
            ("unit_id", "unit_street_id", "unit_district_id", "district_id"),
            {
                key: {
                    "alerted": u[0],
                    "accepted": u[1],
                    "declined": u[2],
                    "no_answer": u[3],
                    "on_site": u[4],
                }
                for key, u in units.items()
            },
        )
        _packed_week_sync(week, start, end)
    if weeks:
        district_cumulative_rebuild(since_week=min(weeks))
        unit_cumulative_rebuild(since_week=min(weeks))
    return len(weeks)


def _packed_missing() -> bool:
    """Whether roll-ups exist but the packed ones were never built (a database
    from before them, or a build that was killed before its first week)."""
    return (DistrictWeekly.objects.exists() and not DistrictCumulative.objects.exists()) or (
        UnitWeekly.objects.exists() and not UnitCumulative.objects.exists()
    )


def _fetch(qs) -> list[tuple]:
    """A ``values_list`` fetched by the cursor (no per-value converters)."""
    sql, params = qs.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _column(rows: list[tuple], i: int) -> np.ndarray:
    """Column ``i`` of integer rows, NULL as -1."""
    return np.fromiter((-1 if r[i] is None else r[i] for r in rows), np.int64, len(rows))


def _packed_fields(sums, hist: bytes) -> dict:
    n, ok_r, ok_c, ok_h, ok_all = (int(x) for x in sums)
    return {
        "n": n,
        "ok_responded": ok_r,
        "ok_controlled": ok_c,
        "ok_handled": ok_h,
        "ok_all": ok_all,
        "hist": hist,
    }


def _packed_week_sync(week: int, start: dt.datetime, end: dt.datetime) -> None:
    """The packed roll-ups of one week's facts: ``DistrictDaily`` and ``UnitDaily``
    for its seven days, ``CityWeekly`` for the week."""
    offset = _utc_offset_s()
    first_day = 7 * week - 3  # week 0 starts on Monday 1969-12-29, day -3
    days = {"day__gte": first_day, "day__lt": first_day + 7}
    rows = _fetch(
        IncidentFact.objects.filter(discovered_at__gte=start, discovered_at__lt=end)
        .order_by()
        .annotate(day=DayNumber("discovered_at", offset_s=offset))
        .values_list(
            "day", "district_id", "region_id", "to_response_s", "to_control_s",
            "to_handling_s", "ok_responded", "ok_controlled", "ok_handled",
        )
    )  # fmt: skip
    day, district = _column(rows, 0), _column(rows, 1)
    located = np.fromiter((r[2] is not None for r in rows), np.int64, len(rows))
    durations = [_column(rows, i) for i in (3, 4, 5)]
    ok = tuple(np.fromiter((bool(r[i]) for r in rows), bool, len(rows)) for i in (6, 7, 8))
    groups, sums, hists = incident_packs([day, district, located], durations, ok)
    _rows_sync(
        DistrictDaily,
        week,
        ("day", "district_id", "located"),
        {
            (d, None if di < 0 else di, bool(lo)): _packed_fields(sums[i], hists[i])
            for i, (d, di, lo) in enumerate(groups.tolist())
        },
        where=days,
    )
    groups, sums, hists = incident_packs([located], durations, ok)
    _rows_sync(
        CityWeekly,
        week,
        ("located",),
        {(bool(g[0]),): _packed_fields(sums[i], hists[i]) for i, g in enumerate(groups.tolist())},
    )
    rows = _fetch(
        DispatchFact.objects.filter(discovered_at__gte=start, discovered_at__lt=end)
        .order_by()
        .annotate(day=DayNumber("discovered_at", offset_s=offset))
        .values_list(
            "day", "district_id", "unit_id", "unit_street_id", "unit_district_id",
            "to_response_s", "to_control_s", "declined",
        )
    )  # fmt: skip
    keys, packs = unit_packs(
        [_column(rows, 0), _column(rows, 1)],
        _column(rows, 2),
        _column(rows, 3),
        _column(rows, 4),
        accepted=np.fromiter((r[5] is not None for r in rows), bool, len(rows)),
        declined=np.fromiter((bool(r[7]) for r in rows), bool, len(rows)),
        on_site=np.fromiter((r[6] is not None for r in rows), bool, len(rows)),
    )
    _rows_sync(
        UnitDaily,
        week,
        ("day", "district_id"),
        {
            (d, None if di < 0 else di): {"units": packs[i]}
            for i, (d, di) in enumerate(keys.tolist())
        },
        where=days,
    )


def _cumulative_start(model, weekly_model, since_week: int | None) -> tuple[int, int] | None:
    """(first week to write, last week) of a cumulative table kept from
    ``since_week``; None when there are no roll-ups (the table is emptied). From
    the first week when the week before ``since_week`` has no rows (never built).
    Rows past the last week go."""
    span = weekly_model.objects.aggregate(first=Min("week"), last=Max("week"))
    first, last = span["first"], span["last"]
    if last is None:
        model.objects.all().delete()
        return None
    start = first if since_week is None else max(since_week, first)
    if start > first and not model.objects.filter(week=start - 1).exists():
        start = first
    model.objects.filter(week__gt=last).delete()
    return start, last


def district_cumulative_rebuild(*, since_week: int | None = None) -> int:
    """Rewrite ``DistrictCumulative`` from ``since_week`` (None: the first week) to
    the last week with ``DistrictWeekly`` rows: the week before's rows plus each
    week's ``DistrictDaily``. Returns the weeks written."""
    span = _cumulative_start(DistrictCumulative, DistrictWeekly, since_week)
    if span is None:
        return 0
    start, last = span
    names = ("n", "ok_responded", "ok_controlled", "ok_handled", "ok_all")
    running = {
        (district, located): (np.array(sums, np.int64), hist_unpack(hist))
        for district, located, hist, *sums in DistrictCumulative.objects.filter(
            week=start - 1
        ).values_list("district_id", "located", "hist", *names)
    }
    by_week: dict[int, dict[tuple, list]] = {}
    for day, district, located, hist, *sums in DistrictDaily.objects.filter(
        day__gte=7 * start - 3
    ).values_list("day", "district_id", "located", "hist", *names):
        into = by_week.setdefault((day + 3) // 7, {}).setdefault((district, located), [])
        into.append((np.array(sums, np.int64), hist_unpack(hist)))
    weekly = {
        week: {
            key: (sum(s for s, _h in parts), hist_sum(hist_of(h) for _s, h in parts))
            for key, parts in keys.items()
        }
        for week, keys in by_week.items()
    }
    for week, totals in hist_cumulative(running, weekly, start, last):
        _rows_sync(
            DistrictCumulative,
            week,
            ("district_id", "located"),
            {key: _packed_fields(sums, hist.tobytes()) for key, (sums, hist) in totals.items()},
        )
    return last + 1 - start


UNIT_COUNTS = ("alerted", "accepted", "declined", "no_answer", "on_site")


def unit_cumulative_rebuild(*, since_week: int | None = None) -> int:
    """Rewrite ``UnitCumulative`` from ``since_week`` (None: the first week) to the
    last week with ``UnitWeekly`` rows: the week before's rows plus each week's
    ``UnitDaily``. Returns the weeks written."""
    span = _cumulative_start(UnitCumulative, UnitWeekly, since_week)
    if span is None:
        return 0
    start, last = span
    running = {
        (district,): units_unpack(units)
        for district, units in UnitCumulative.objects.filter(week=start - 1).values_list(
            "district_id", "units"
        )
    }
    by_week: dict[int, dict[tuple, list]] = {}
    for day, district, units in UnitDaily.objects.filter(day__gte=7 * start - 3).values_list(
        "day", "district_id", "units"
    ):
        by_week.setdefault((day + 3) // 7, {}).setdefault((district,), []).append(
            units_unpack(units)
        )
    weekly = {
        week: {key: units_sum((u, 1) for u in parts) for key, parts in keys.items()}
        for week, keys in by_week.items()
    }
    for week, totals in units_cumulative(running, weekly, start, last):
        _rows_sync(
            UnitCumulative,
            week,
            ("district_id",),
            {key: {"units": units.tobytes()} for key, units in totals.items()},
        )
    return last + 1 - start


def _rows_sync(
    model, week: int, key: tuple[str, ...], wanted: dict[tuple, dict], *, where=None
) -> None:
    """Make ``model``'s rows of ``week`` (or, given ``where``, the rows it selects,
    with their period in ``key``) equal ``wanted`` ({key values: other values}):
    compared outside any transaction, then only the differences written, in short
    transactions (``_Batches``)."""
    names = list(next(iter(wanted.values()))) if wanted else []
    value_fields = [model._meta.get_field(n) for n in names]
    stored: dict[tuple, tuple[int, tuple]] = {}
    gone: list[int] = []
    fixed = {} if where is not None else {"week": week}
    rows = model.objects.filter(**(where if where is not None else fixed))
    for pk, *values in rows.values_list("pk", *key, *names):
        k = tuple(values[: len(key)])
        if k in stored or k not in wanted:  # a duplicate, or a group that is no more
            gone.append(pk)
            continue
        stored[k] = (pk, _row(value_fields, values[len(key) :]))
    create: list = []
    update: list = []
    for k, values in wanted.items():
        row = dict(zip(key, k, strict=True)) | values
        if k not in stored:
            create.append(model(**fixed, **row))
        elif stored[k][1] != _row(value_fields, [values[n] for n in names]):
            update.append(model(pk=stored[k][0], **fixed, **row))
    batches = _Batches(ROLLUP_WRITE_BATCH, ROLLUP_WRITE_BATCH_MAX)
    for batch in batches(gone):  # each batch inside its own transaction
        model.objects.filter(pk__in=batch).delete()
    for batch in batches(update):
        model.objects.bulk_update(batch, names)
    for batch in batches(create):
        model.objects.bulk_create(batch)


# --- the readiness index, stored ------------------------------------------------------------


def index_snapshots_refresh(*, now: dt.datetime | None = None) -> int:
    """Score the readiness index for the default period (``REVIEW_INDEX_DAYS`` up to
    ``now``) for the city and for each district, every level at or below it, and
    store each as an ``IndexSnapshot`` (older ones of the same area and level go).
    Returns how many snapshots were written. Beat runs it every
    ``REVIEW_INDEX_REFRESH_S``: scoring 23,000 units takes seconds, too slow for a
    page."""
    until = now or timezone.now()
    since = until - dt.timedelta(days=settings.REVIEW_INDEX_DAYS)
    # The whole city's view; each area's snapshot is then the view of anyone whose
    # scope or filter is that area (selectors.index_snapshot_area).
    everyone = get_user_model()(is_superuser=True, is_active=True)
    districts = list(Region.objects.filter(level=Region.Level.DISTRICT).order_by("pk"))
    written = 0
    for area in [None, *districts]:
        for level in readiness.LEVELS:
            if area is not None and level == "district":
                continue  # one row: the live path is as fast
            started = time.perf_counter()
            rows = readiness.index_scores(
                user=everyone, level=level, region=area, since=since, until=until, stored=False
            )
            payload = [[r.key, r.label, r.code, r.score, r.metrics] for r in rows]
            area_id = area.pk if area is not None else None
            with transaction.atomic():
                IndexSnapshot.objects.filter(area_id=area_id, level=level).delete()
                IndexSnapshot.objects.create(
                    area_id=area_id,
                    level=level,
                    since=since,
                    until=until,
                    rows=payload,
                    head=payload[: readiness.INDEX_HEAD_ROWS],
                    row_count=len(payload),
                    seconds=round(time.perf_counter() - started, 3),
                )
            written += 1
    return written
