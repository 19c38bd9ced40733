from __future__ import annotations

import datetime as dt
import json
import threading

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.db.models import F, Q

from dispatch.models import Dispatch, Incident, IncidentEvent, Wave
from review import seeding, seeding_sql, selectors, services
from review.models import (
    CityWeekly,
    DispatchFact,
    DistrictCumulative,
    DistrictDaily,
    DistrictWeekly,
    Drill,
    IncidentFact,
    SetAsideIndex,
    UnitCumulative,
    UnitDaily,
    UnitWeekly,
    WeeklyRollup,
)
from review.seeding import incidents_seed
from review.seeding_drills import drills_seed
from tests.factories import MemberFactory, UnitFactory
from units.models import Unit

pytestmark = pytest.mark.django_db

UNTIL = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def small_city(tianhe_street, haizhu_street):
    units = [UnitFactory(region=tianhe_street, lat=23.13 + i * 0.002, lon=113.32) for i in range(6)]
    units += [
        UnitFactory(region=haizhu_street, lat=23.09 + i * 0.002, lon=113.33) for i in range(6)
    ]
    for u in units:
        MemberFactory(unit=u)
    return units


def _snapshot():
    return list(
        Incident.objects.order_by("pk").values_list(
            "kind", "lat", "region_id", "discovered_at", "responded_at", "handled_at"
        )
    )


def test_seeding_is_deterministic_for_a_seed(small_city):
    incidents_seed(count=50, seed=5, until=UNTIL, days=30)
    first = _snapshot()
    Incident.objects.all().delete()
    IncidentFact.objects.all().delete()
    incidents_seed(count=50, seed=5, until=UNTIL, days=30)
    assert _snapshot() == first


def test_seeded_incidents_keep_the_dispatch_rules(small_city):
    result = incidents_seed(count=200, seed=1, until=UNTIL, days=30)
    assert result.incidents == Incident.objects.count() == 200
    # The four firsts in order; every event seq runs 1..last_seq.
    assert not Incident.objects.filter(responded_at__lt=F("discovered_at")).exists()
    assert not Incident.objects.filter(
        Q(handled_at__isnull=False) & Q(controlled_at__isnull=True)
    ).exists()
    for incident in Incident.objects.all()[:20]:
        seqs = list(incident.events.order_by("seq").values_list("seq", flat=True))
        assert seqs == list(range(1, incident.last_seq + 1))
    # The first accepting unit's dispatch carries the incident's first times.
    first = Dispatch.objects.filter(accepted_at__isnull=False).select_related("incident")[0]
    assert first.accepted_at == first.incident.responded_at
    assert IncidentEvent.objects.filter(type=IncidentEvent.Type.ON_SITE).exclude(data={}).exists()


def test_the_rows_the_database_makes_follow_the_timeline_rules_for_every_incident(small_city):
    """The rows ``INSERT ... SELECT`` makes from the parameter table (several
    batches): per incident one wave, a dispatch per rank, and the timeline in
    events_record's order with consecutive ids; the facts agree with the rows."""
    incidents_seed(count=240, seed=8, until=UNTIL, days=30, batch=70)
    k = seeding.UNITS_PER_WAVE
    incidents = {i.pk: i for i in Incident.objects.all()}
    assert len(incidents) == 240
    assert Wave.objects.filter(number=1).count() == 240
    events: dict[int, list] = {}
    for e in IncidentEvent.objects.order_by("id"):
        events.setdefault(e.incident_id, []).append(e)
    dispatches: dict[int, list] = {}
    for d in Dispatch.objects.order_by("incident_id", "rank"):
        dispatches.setdefault(d.incident_id, []).append(d)
    facts = {f.dispatch_id: f for f in DispatchFact.objects.all()}
    first_member = {u.pk: u.members.order_by("pk")[0].pk for u in small_city}
    n_declines = 0
    order = ["created", "alerted", "declined", "accepted", "on_site", "handled", "closed"]
    for pk, incident in incidents.items():
        evs, ds = events[pk], dispatches[pk]
        assert [d.rank for d in ds] == list(range(1, k + 1))
        assert [e.seq for e in evs] == list(range(1, incident.last_seq + 1))
        assert [e.id - evs[0].id for e in evs] == list(range(len(evs)))
        types = [e.type for e in evs]
        assert types == sorted(types, key=order.index) and types.count("alerted") == k
        for e, d in zip([e for e in evs if e.type == "alerted"], ds, strict=True):
            assert e.unit_id == d.unit_id and e.created_at == incident.discovered_at
            assert e.data == {"wave": 1, "rank": d.rank, "distance_m": d.distance_m,
                              "eta_s": d.eta_s}  # fmt: skip
        declines = [e for e in evs if e.type == "declined"]
        declined = {e.unit_id for e in declines}
        n_declines += len(declines)
        assert [e.unit_id for e in declines] == [d.unit_id for d in ds if d.unit_id in declined]
        for e in declines:
            assert e.member_id == first_member[e.unit_id]
            assert incident.discovered_at < e.created_at
        accepted = [d for d in ds if d.accepted_at is not None]
        assert len(accepted) == (incident.responded_at is not None)
        for d in accepted:
            assert d.accepted_at == incident.responded_at and d.unit_id not in declined
            assert d.on_site_at == incident.controlled_at and d.handled_at == incident.handled_at
            after = [e for e in evs if e.type not in ("created", "alerted", "declined")]
            assert {e.unit_id for e in after} == {d.unit_id}
            assert {e.member_id for e in after} == {d.accepted_by_id}
        site = [e for e in evs if e.type == "on_site"]
        assert [set(e.data) for e in site] == ([{"lat", "lon"}] if incident.controlled_at else [])
        for d in ds:
            fact = facts[d.pk]
            assert (fact.incident_id, fact.unit_id) == (pk, d.unit_id)
            assert fact.declined == (d.unit_id in declined)
            assert (fact.to_response_s is None) == (d.accepted_at is None)
            assert fact.discovered_at == incident.discovered_at and fact.kind == incident.kind
    assert n_declines  # the slots after the declines were checked with some


def test_seeded_facts_equal_the_facts_the_celery_task_computes(small_city, city_reviewer):
    incidents_seed(count=150, seed=3, until=UNTIL, days=20)
    filters = selectors.IncidentFilter(since=UNTIL - dt.timedelta(days=30), until=UNTIL)
    seeded = {
        by: [r.as_dict() for r in selectors.area_stats(user=city_reviewer, filters=filters, by=by)]
        for by in ("district", "week")
    }
    seeded_units = [s.as_dict() for s in selectors.unit_stats(user=city_reviewer, filters=filters)]
    assert DispatchFact.objects.exists()
    services.facts_sync(full=True)
    for by, rows in seeded.items():
        assert [
            r.as_dict() for r in selectors.area_stats(user=city_reviewer, filters=filters, by=by)
        ] == rows
    assert [
        s.as_dict() for s in selectors.unit_stats(user=city_reviewer, filters=filters)
    ] == seeded_units


def test_the_command_refuses_a_bad_count_and_an_empty_roster(db):
    with pytest.raises(CommandError, match="count"):
        call_command("seed_incidents", "--count", "0", "--no-progress")
    with pytest.raises(CommandError, match="no active units"):
        call_command("seed_incidents", "--count", "5", "--no-progress")


ROLLUPS = (
    WeeklyRollup,
    UnitWeekly,
    DistrictWeekly,
    UnitCumulative,
    CityWeekly,
    DistrictDaily,
    DistrictCumulative,
    UnitDaily,
)


def _rollup_rows():
    def canon(value):
        if isinstance(value, dict):
            return json.dumps(value, sort_keys=True)
        return bytes(value) if isinstance(value, memoryview) else value

    out = []
    for model in ROLLUPS:
        names = [f.attname for f in model._meta.concrete_fields if f.attname != "id"]
        out.append(sorted(tuple(map(canon, row)) for row in model.objects.values_list(*names)))
    return out


def _rollups_delete():
    for model in ROLLUPS:
        model.objects.all().delete()


def test_seeded_rollups_equal_the_rollups_rebuilt_from_the_facts(small_city):
    incidents_seed(count=300, seed=4, until=UNTIL, days=40)
    seeded = _rollup_rows()
    assert all(seeded)

    _rollups_delete()
    services.rollups_rebuild()

    assert _rollup_rows() == seeded


def test_seeding_on_top_of_seeded_facts_rebuilds_the_weeks_it_touched(small_city):
    incidents_seed(count=100, seed=4, until=UNTIL, days=40)
    incidents_seed(count=100, seed=5, until=UNTIL, days=40)
    seeded = _rollup_rows()

    _rollups_delete()
    services.rollups_rebuild()

    assert _rollup_rows() == seeded


def _index_names():
    return {name for name, _sql in seeding._secondary_indexes(seeding._SEEDED_TABLES)}


def test_a_bulk_seed_sets_indexes_aside_and_builds_them_again(small_city):
    before = _index_names()
    keys = sorted(seeding._foreign_keys(seeding._SEEDED_TABLES))  # PostgreSQL only
    assert before and (keys or connection.vendor != "postgresql")

    incidents_seed(count=120, seed=6, until=UNTIL, days=20, bulk=True)

    assert _index_names() == before
    assert sorted(seeding._foreign_keys(seeding._SEEDED_TABLES)) == keys
    assert not SetAsideIndex.objects.exists()
    assert Incident.objects.count() == 120


_SORT_PRAGMAS = ("temp_store", "threads", "cache_size", "journal_mode")


def _pragmas(raw) -> dict[str, object]:
    return {name: raw.execute(f"PRAGMA {name}").fetchone()[0] for name in _SORT_PRAGMAS}


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's sorter")
@pytest.mark.django_db(transaction=True)
def test_a_bulk_seeds_index_builds_sort_on_helper_threads_and_leave_the_settings_as_found(
    small_city,
):
    """SQLite's sorter uses no helper thread when its temporary files are in
    memory, and sorts a whole index at once when the page cache is big: the
    builds of a million incidents' indexes took ~90 s that way, ~50 s in runs
    spilled to files and merged on two threads."""
    with connection.cursor():
        raw = connection.connection
    before = _pragmas(raw)
    seen = []

    def watch(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith("CREATE INDEX"):
            seen.append(_pragmas(raw))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch):
        incidents_seed(count=120, seed=6, until=UNTIL, days=20, bulk=True)

    assert seen
    for during in seen:
        assert during["temp_store"] == 1  # files: the helper threads' condition
        assert during["threads"] >= 2
        assert -65536 <= during["cache_size"] < 0  # runs of at most 64 MiB
    assert _pragmas(raw) == before


def _seeded_rows() -> dict[str, list]:
    return {m.__name__: list(m.objects.order_by("pk").values_list()) for m in seeding.SEEDED_MODELS}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's parallel writers")
@pytest.mark.django_db(transaction=True)
def test_a_bulk_seed_on_postgresql_writes_batches_on_two_sessions_and_the_same_rows(
    small_city, monkeypatch
):
    """Outside a transaction, two sessions write whole batches at once (the
    server makes each session's rows on one core); the rows are the ones one
    session writes batch after batch, and every index and key comes back."""
    sessions = set()
    write = seeding._batch_write
    both = threading.Barrier(seeding.PG_WRITERS, timeout=30)  # each writer takes a batch

    def recorded(batch, writer, **kwargs):
        if threading.current_thread().name.startswith("seed-writer-"):
            pid = connection.connection.info.backend_pid
            if pid not in sessions:
                sessions.add(pid)
                both.wait()
        else:
            sessions.add(connection.connection.info.backend_pid)
        return write(batch, writer, **kwargs)

    monkeypatch.setattr(seeding, "_batch_write", recorded)
    indexes, keys = _index_names(), sorted(seeding._foreign_keys(seeding._SEEDED_TABLES))

    incidents_seed(count=240, seed=8, until=UNTIL, days=30, batch=40, bulk=True)

    assert len(sessions) == seeding.PG_WRITERS
    assert _reloptions("dispatch_incidentevent") == []  # autovacuum set back
    assert _index_names() == indexes
    assert sorted(seeding._foreign_keys(seeding._SEEDED_TABLES)) == keys
    assert not SetAsideIndex.objects.exists()
    parallel = _seeded_rows()
    assert len(parallel["Incident"]) == 240
    for model in reversed(seeding.SEEDED_MODELS):
        model.objects.all().delete()
    sessions.clear()
    with transaction.atomic():  # one session, batch after batch
        incidents_seed(count=240, seed=8, until=UNTIL, days=30, batch=40, bulk=True)
        assert _seeded_rows() == parallel
    assert len(sessions) == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's parallel writers")
@pytest.mark.django_db(transaction=True)
def test_a_failing_writer_stops_a_parallel_seed_and_leaves_whole_batches_and_the_indexes(
    small_city, monkeypatch
):
    made = seeding_sql.rows_make
    third = Incident.objects.count() + 2 * 40 + 1  # the first id of the third batch

    def failing(**kwargs):
        if kwargs["inc0"] == third:
            raise RuntimeError("disk full")
        return made(**kwargs)

    monkeypatch.setattr(seeding_sql, "rows_make", failing)
    indexes, keys = _index_names(), sorted(seeding._foreign_keys(seeding._SEEDED_TABLES))

    with pytest.raises(RuntimeError, match="disk full"):
        incidents_seed(count=400, seed=8, until=UNTIL, days=30, batch=40, bulk=True)

    assert not [t for t in threading.enumerate() if t.name.startswith("seed-")]
    assert _index_names() == indexes
    assert sorted(seeding._foreign_keys(seeding._SEEDED_TABLES)) == keys
    assert not SetAsideIndex.objects.exists()
    written = Incident.objects.count()
    assert 0 < written < 400 and written % 40 == 0  # whole batches, each its own transaction
    assert not Incident.objects.filter(pk__gte=third, pk__lt=third + 40).exists()
    assert IncidentEvent.objects.values("incident").distinct().count() == written
    assert DispatchFact.objects.count() == written * seeding.UNITS_PER_WAVE


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's parallel writers")
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)  # the hang this checks for
def test_a_writer_failing_after_its_last_batch_fails_the_run_and_does_not_hang_it(
    small_city, monkeypatch
):
    """Dropping a writer's parameter tables fails after it took its end mark:
    the failure is raised (no wait for a second end mark), the sequences are
    past the ids written, and the indexes are back."""
    drop = seeding_sql.tables_drop
    dropped: dict[str, int] = {}

    def failing_at_the_end():
        name = threading.current_thread().name
        dropped[name] = dropped.get(name, 0) + 1
        if name.startswith("seed-writer-") and dropped[name] == 2:  # 1: before creating
            raise RuntimeError("connection lost")
        return drop()

    monkeypatch.setattr(seeding_sql, "tables_drop", failing_at_the_end)
    indexes = _index_names()

    with pytest.raises(RuntimeError, match="connection lost"):
        incidents_seed(count=200, seed=8, until=UNTIL, days=30, batch=40, bulk=True)

    assert Incident.objects.count() == 200
    assert _index_names() == indexes and not SetAsideIndex.objects.exists()
    assert not [t for t in threading.enumerate() if t.name.startswith("seed-")]
    # The app's next rows take ids past the seeded ones.
    wave = Wave.objects.create(incident=Incident.objects.first(), number=9, radius_m=1500)
    assert wave.pk > 200


def _reloptions(table: str) -> list[str]:
    with connection.cursor() as cur:
        cur.execute("SELECT reloptions FROM pg_class WHERE relname = %s", [table])
        return cur.fetchone()[0] or []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's autovacuum")
def test_a_bulk_load_turns_autovacuum_off_on_its_tables_and_sets_it_back_as_found(
    small_city, monkeypatch
):
    """The server vacuumed and analysed each big table half-way through a
    million-incident load; during the load it is off, then set back as it was
    (a table's own setting kept)."""
    with connection.cursor() as cur:
        cur.execute("ALTER TABLE dispatch_wave SET (autovacuum_enabled = true)")
    during = []
    write = seeding._batch_write

    def recorded(batch, writer, **kwargs):
        during.append({t: _reloptions(t) for t in ("dispatch_incidentevent", "dispatch_wave")})
        return write(batch, writer, **kwargs)

    monkeypatch.setattr(seeding, "_batch_write", recorded)

    incidents_seed(count=120, seed=6, until=UNTIL, days=20, bulk=True, batch=60)

    assert len(during) == 2
    for options in during:
        assert options["dispatch_incidentevent"] == ["autovacuum_enabled=off"]
        assert options["dispatch_wave"] == ["autovacuum_enabled=off"]
    assert _reloptions("dispatch_incidentevent") == []
    assert _reloptions("dispatch_wave") == ["autovacuum_enabled=true"]
    assert not SetAsideIndex.objects.exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's autovacuum")
def test_autovacuum_a_killed_bulk_seed_left_off_is_set_back_by_the_next_run(small_city):
    with connection.cursor() as cur:
        cur.execute("ALTER TABLE dispatch_wave SET (autovacuum_enabled = off)")
    [(name, sql)] = [v for v in seeding._autovacuum_settings(["dispatch_wave"])]
    assert sql.endswith("SET (autovacuum_enabled=off)")  # what it finds now, set back as found
    SetAsideIndex.objects.create(
        name="autovacuum dispatch_wave",
        sql='ALTER TABLE "dispatch_wave" RESET (autovacuum_enabled)',
    )

    incidents_seed(count=10, seed=6, until=UNTIL, days=20)

    assert _reloptions("dispatch_wave") == []
    assert not SetAsideIndex.objects.exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's binary COPY")
def test_the_parameter_rows_in_binary_are_the_values_the_text_copy_stores():
    """The parameter table's rows go in PostgreSQL's binary form, put together
    by numpy: each kind, gaps, negative numbers and non-ASCII text read back
    as the text form's values."""
    kinds = [
        ("id", "pk"),
        ("n", "int"),
        ("x", "float"),
        ("b", "bool"),
        ("t", "time"),
        ("s", "text"),
        ("m", "int"),
        ("z", "text"),
    ]
    t = np.array([0, 1_700_000_000, 946_684_799, 2_000_000_000])
    columns = {
        "id": np.arange(1, 5),
        "n": np.array([-1, 0, 2**40, 7]),
        "x": np.array([23.125, -113.5, 0.1, 1e-7]),
        "b": [True, False, True, False],
        "t": seeding._Nullable(t, np.array([True, True, True, False])),
        "s": seeding._Nullable(
            np.array(["天河区", None, '{"lat": 23.1}', ""], object),
            np.array([True, False, True, True]),
        ),
        "m": seeding._Nullable(np.array([5, -3, 0, 9]), np.array([False, True, True, False])),
        "z": np.array([None] * 4, object),  # a column of gaps only, as on SQLite
    }
    types = seeding_sql._TYPES["postgresql"]
    cols = ", ".join(f"{name} {types[kind]}" for name, kind in kinds)
    with connection.cursor() as cur:
        cur.execute(f"CREATE TEMP TABLE seed_bin ({cols})")
        seeding._Writer().write_params("seed_bin", kinds, 4, columns)
        cur.execute("SELECT * FROM seed_bin ORDER BY id")
        got = cur.fetchall()
        cur.execute("DROP TABLE seed_bin")
    at = [dt.datetime.fromtimestamp(int(v), dt.UTC) for v in t]
    assert got == [
        (1, -1, 23.125, True, at[0], "天河区", None, None),
        (2, 0, -113.5, False, at[1], None, -3, None),
        (3, 2**40, 0.1, True, at[2], '{"lat": 23.1}', 0, None),
        (4, 7, 1e-7, False, None, "", None, None),
    ]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's TOAST compression")
def test_the_packed_rollups_are_compressed_with_lz4_on_postgresql():
    with connection.cursor() as cur:
        cur.execute(
            "SELECT attrelid::regclass::text, attname, attcompression FROM pg_attribute "
            "WHERE atttypid = 'bytea'::regtype AND attrelid::regclass::text LIKE 'review_%%'"
        )
        found = {(table, column): method for table, column, method in cur.fetchall()}
    assert len(found) == 5
    assert set(found.values()) == {"l"}


def test_no_index_of_a_seeded_table_is_the_start_of_another():
    """A bulk seed builds every index of these tables again: one whose columns
    begin another index (or unique constraint) answers nothing the longer one
    does not, and was a sort of millions of entries for nothing."""
    # A partial index is smaller than the longer one by design.
    partial = {i.name for m in seeding.SEEDED_MODELS for i in m._meta.indexes if i.condition}
    for table in seeding._SEEDED_TABLES:
        with connection.cursor() as cur:
            found = connection.introspection.get_constraints(cur, table)
        plain = {n: c["columns"] for n, c in found.items() if c["index"] and not c["unique"]}
        keys = [
            c["columns"] for c in found.values() if (c["index"] or c["unique"]) and c["columns"]
        ]
        for name, columns in plain.items():
            if name in partial:
                continue
            longer = [k for k in keys if len(k) > len(columns) and k[: len(columns)] == columns]
            assert not longer, (table, name, columns, longer)


@pytest.mark.parametrize(
    ("table", "column", "index"),
    [
        ("dispatch_incidentevent", "user_id", "event_user"),
        ("dispatch_incidentevent", "member_id", "event_member"),
        ("dispatch_dispatch", "accepted_by_id", "dispatch_accepted_by"),
        ("dispatch_incident", "reported_by_id", "incident_reported_by"),
        ("dispatch_incident", "created_by_id", "incident_created_by"),
    ],
)
def test_a_deleted_user_or_member_is_found_through_the_index_of_the_rows_that_have_one(
    table, column, index
):
    """The mostly-NULL foreign keys are indexed only where set: the deletion's
    ``SET NULL`` (Django's ``UPDATE ... WHERE column IN (...)``) still reads
    them by index, not every event of a million incidents."""
    sql = f'UPDATE "{table}" SET "{column}" = NULL WHERE "{column}" IN (1, 2)'  # noqa: S608
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute("SET LOCAL enable_seqscan = off")  # the tables are empty here
            cur.execute(f"EXPLAIN {sql}")
        else:
            cur.execute(f"EXPLAIN QUERY PLAN {sql}")
        plan = " ".join(str(row[-1]) for row in cur.fetchall())
    assert index in plan


def test_indexes_a_killed_bulk_seed_left_dropped_are_built_by_the_next_run(small_city):
    name, sql = sorted(seeding._secondary_indexes(["review_dispatchfact"]))[0]
    SetAsideIndex.objects.create(name=name, sql=sql)
    with connection.cursor() as cur:
        cur.execute(f"DROP INDEX {connection.ops.quote_name(name)}")
    assert name not in _index_names()

    incidents_seed(count=10, seed=6, until=UNTIL, days=20)

    assert name in _index_names()
    assert not SetAsideIndex.objects.exists()


# --- seeded drills -------------------------------------------------------------------


@pytest.fixture
def drill_city(tianhe_street, haizhu_street):
    """Two streets of 20 units, two members on duty each; two units nobody staffs."""
    units = []
    for street, lat in ((tianhe_street, 23.13), (haizhu_street, 23.09)):
        for i in range(20):
            unit = UnitFactory(region=street, lat=lat + i * 0.001, lon=113.32)
            MemberFactory.create_batch(0 if i == 19 else 2, unit=unit, on_duty=True)
            units.append(unit)
    return units


def _drill_rows():
    return list(
        Dispatch.objects.filter(incident__is_drill=True)
        .order_by("incident__discovered_at", "unit_id")
        .values_list("unit_id", "status", "accepted_at", "on_site_at", "incident__discovered_at")
    )


def test_seeded_drills_are_deterministic_and_follow_the_drill_flows_rows(drill_city):
    result = drills_seed(seed=5, until=UNTIL, days=42, district_drills=2, street_drills=1)
    # Two districts: two district-wide drills and one street drill each.
    assert result.drills == 6 and Drill.objects.count() == 6
    first = _drill_rows()
    Dispatch.objects.all().delete()
    Drill.objects.all().delete()
    Incident.objects.all().delete()
    drills_seed(seed=5, until=UNTIL, days=42, district_drills=2, street_drills=1)
    again = _drill_rows()
    assert [r[:2] for r in again] == [r[:2] for r in first]

    for drill in Drill.objects.select_related("incident", "region"):
        incident = drill.incident
        assert incident.is_drill and incident.source == Incident.Source.DRILL
        assert incident.status == Incident.Status.CLOSED and incident.handled_at is None
        assert drill.status == Drill.Status.CLOSED and drill.closed_at > incident.discovered_at
        assert UNTIL - dt.timedelta(days=42) <= incident.discovered_at < UNTIL
        in_region = set(
            Unit.objects.filter(region__path__startswith=drill.region.path).values_list(
                "pk", flat=True
            )
        )
        alerted = set(incident.dispatches.values_list("unit_id", flat=True))
        assert alerted == in_region and drill.units_alerted == drill.units_total == len(in_region)
        seqs = list(incident.events.order_by("seq").values_list("seq", "created_at"))
        assert [s for s, _at in seqs] == list(range(1, incident.last_seq + 1))
        assert [at for _s, at in seqs] == sorted(at for _s, at in seqs)
        assert incident.events.filter(type="alerted").count() == len(in_region)
        for d in incident.dispatches.select_related("accepted_by"):
            assert d.wave.reason == "drill" and d.eta_s == 0
            if d.accepted_at is not None:
                # The member who accepted is on the unit and their phone got the alert.
                assert d.accepted_by.unit_id == d.unit_id
                assert d.deliveries.filter(
                    member=d.accepted_by, delivered_at__lte=d.accepted_at
                ).exists()
                assert incident.responded_at <= d.accepted_at
            if d.on_site_at is not None:
                assert d.accepted_at <= d.on_site_at and incident.controlled_at <= d.on_site_at
        # Nobody on duty, nobody answers.
        assert not incident.dispatches.filter(
            unit__members__isnull=True, accepted_at__isnull=False
        ).exists()
    # Drills stay out of the incident facts and reports.
    services.facts_sync(full=True)
    assert not IncidentFact.objects.exists()


def test_seeded_drills_have_plausible_timings_in_the_drill_report(drill_city, city_reviewer):
    drills_seed(seed=7, until=UNTIL, days=42, district_drills=3, street_drills=2)
    lines = [
        line
        for drill in Drill.objects.all()
        for line in selectors.drill_report(user=city_reviewer, drill=drill)[1]
    ]
    acked = [x.acknowledged_s for x in lines if x.acknowledged_s is not None]
    arrived = [x.arrived_s for x in lines if x.arrived_s is not None]
    # Most acknowledge within 1-3 minutes and reach their post within 3-5; some
    # late, a few never.
    assert 0.75 < len(acked) / len(lines) < 0.97
    assert sum(60 <= s <= 180 for s in acked) / len(acked) > 0.6
    assert sum(180 <= s <= 300 for s in arrived) / len(arrived) > 0.5
    assert any(s > 300 for s in arrived)
    assert any(x.received == 0 for x in lines)  # the unstaffed units
    assert any(x.arrival_verified is False for x in lines) or len(arrived) < 30
    league = selectors.drill_league(user=city_reviewer, by="unit")
    assert len(league) == len(drill_city) and league[0].score > league[-1].score


def test_the_drill_command_refuses_an_empty_roster(db):
    with pytest.raises(CommandError, match="no active units"):
        call_command("seed_drills")
