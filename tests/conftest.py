from __future__ import annotations

import contextlib

import pytest
from django.conf import settings
from django.core.management.color import no_style
from django.core.management.sql import emit_post_migrate_signal
from django.db import connections
from django.test import TransactionTestCase
from django.utils import translation

from tests.factories import MemberFactory, RegionFactory, StaffFactory, UnitFactory
from units.models import Region, StaffProfile

UNREACHABLE_REDIS_URL = "unix:///nonexistent/unit-tests-start-no-redis.sock"


@pytest.fixture(autouse=True)
def _unit_test_settings(settings):
    """Unit tests: in-memory channel layer, eager Celery. Delivery, timer and
    scale-out tests (tests/e2e) use the real daphne, worker and Redis instead."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.CELERY_TASK_ALWAYS_EAGER = True
    # No refresher thread in unit tests (it would read outside the test's
    # transaction): ranking refreshes on each call; tests that mean it turn it on.
    settings.RANKING_REFRESH_S = 0
    # No unit test may reach a Redis it did not start: the default address is the
    # live system's embedded Redis when one runs. Nothing can answer here.
    settings.REDIS_URL = UNREACHABLE_REDIS_URL
    # Full-strength hashing costs seconds per test file; it is not under test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # One heartbeat slice: a socket's first ping comes a whole WS_HEARTBEAT_S
    # (20 s) after it connects, not within the first slice (0.25 s), where it
    # would fall among a test's frames. Heartbeat tests set their own.
    settings.WS_HEARTBEAT_SLICE_S = settings.WS_HEARTBEAT_S
    from config.celery import app

    app.conf.task_always_eager = True
    _process_caches_reset()
    # A request with the English cookie leaves English active in this thread;
    # code called outside a request (imports, services) must start in Chinese.
    translation.activate(settings.LANGUAGE_CODE)
    yield
    _process_caches_reset()


@pytest.fixture(autouse=True)
def _database_independent_sends_no_query(request):
    if request.node.get_closest_marker("database_independent") is None:
        yield
        return

    def refuse(execute, sql, params, many, context):
        raise AssertionError(f"a database_independent test sent a query: {sql}")

    with contextlib.ExitStack() as stack:
        for connection in connections.all():
            stack.enter_context(connection.execute_wrapper(refuse))
        yield


def _process_caches_reset() -> None:
    """Per-process caches built from the database, and per-process state that
    times what comes next, must not leak between tests."""
    import math

    from dispatch.consumers import _AlertWrites
    from dispatch.gateways import ratelimit
    from dispatch.ranking import reset_unit_index
    from units.locate import locate_cache_reset
    from units.services import district_shapes_reset

    reset_unit_index()
    district_shapes_reset()
    locate_cache_reset()
    ratelimit.reset()  # a provider marked down, messages already seen
    _AlertWrites.last = -math.inf  # receipts wait while alerts were written lately


@pytest.fixture
def city(db) -> Region:
    return RegionFactory(code="4401", name="广州市", level=Region.Level.CITY, parent=None)


@pytest.fixture
def tianhe(city) -> Region:
    return RegionFactory(code="440106", name="天河区", level=Region.Level.DISTRICT, parent=city)


@pytest.fixture
def haizhu(city) -> Region:
    return RegionFactory(code="440105", name="海珠区", level=Region.Level.DISTRICT, parent=city)


@pytest.fixture
def tianhe_street(tianhe) -> Region:
    return RegionFactory(code="440106001", name="五山街道", parent=tianhe)


@pytest.fixture
def haizhu_street(haizhu) -> Region:
    return RegionFactory(code="440105001", name="赤岗街道", parent=haizhu)


@pytest.fixture
def near_unit(tianhe_street):
    return UnitFactory(region=tianhe_street, lat=23.1300, lon=113.3200)


@pytest.fixture
def far_unit(haizhu_street):
    return UnitFactory(region=haizhu_street, lat=23.0900, lon=113.3300)


@pytest.fixture
def near_member(near_unit):
    return MemberFactory(unit=near_unit, on_duty=True)


@pytest.fixture
def far_member(far_unit):
    return MemberFactory(unit=far_unit, on_duty=True)


@pytest.fixture
def haizhu_admin(haizhu):
    """A district admin of another district than the near unit's."""
    return StaffFactory(role=StaffProfile.Role.DISTRICT_ADMIN, region=haizhu).user


@pytest.fixture
def tianhe_admin(tianhe):
    return StaffFactory(role=StaffProfile.Role.DISTRICT_ADMIN, region=tianhe).user


# --- between transactional tests ----------------------------------------------------
# After a transactional test (django_db(transaction=True)) Django empties every
# table, then re-creates the content types and permissions (post_migrate). Both
# cost more than they need to, measured here:
# - On PostgreSQL its one TRUNCATE of all ~55 tables took 1.5-2 s per test, against
#   15-50 ms to DELETE the few rows a test leaves: teardown was 227 s of the
#   PostgreSQL unit stage's 975 test-seconds.
# - Re-creating content types and permissions took ~0.1 s per test on either
#   database, for rows no code or test changes. They are kept while their
#   fingerprint is what the last full flush left; otherwise the flush is Django's.
# The end state is Django's: every other table empty, sequences as they were.

_MIGRATED_ROWS = {"django_content_type", "auth_permission"}
_migrated_fingerprint: dict[str, tuple] = {}
_fixture_teardown_django = TransactionTestCase._fixture_teardown


def _migrated_rows_fingerprint(connection) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT COUNT(*) FROM django_content_type),"
            " (SELECT MAX(id) FROM django_content_type),"
            " (SELECT SUM(id) FROM django_content_type),"
            " (SELECT COUNT(*) FROM auth_permission),"
            " (SELECT MAX(id) FROM auth_permission),"
            " (SELECT SUM(id + content_type_id) FROM auth_permission)"
        )
        return tuple(cursor.fetchone())


def _delete_all(connection, tables: list[str]) -> None:
    if connection.vendor == "postgresql":
        # Django's foreign keys are DEFERRABLE: any order, in one transaction.
        sql = ["SET CONSTRAINTS ALL DEFERRED"] + [
            # Table names from Django's own introspection, quoted.
            f"DELETE FROM {connection.ops.quote_name(table)}"  # noqa: S608
            for table in tables
        ]
    else:  # SQLite's flush is DELETE already
        sql = connection.ops.sql_flush(no_style(), tables)
    connection.ops.execute_sql_flush(sql)


def _fixture_teardown(self):
    aliases = self._databases_names(include_mirrors=False)
    if (
        self.available_apps is not None
        or self.serialized_rollback
        or any(connections[a].vendor not in {"postgresql", "sqlite"} for a in aliases)
    ):
        return _fixture_teardown_django(self)
    for alias in aliases:
        connection = connections[alias]
        tables = connection.introspection.django_table_names(
            only_existing=True, include_views=False
        )
        keep = _migrated_fingerprint.get(alias) == _migrated_rows_fingerprint(connection)
        _delete_all(connection, [t for t in tables if not (keep and t in _MIGRATED_ROWS)])
        if not keep:
            emit_post_migrate_signal(verbosity=0, interactive=False, db=alias)
            _migrated_fingerprint[alias] = _migrated_rows_fingerprint(connection)


TransactionTestCase._fixture_teardown = _fixture_teardown


def pytest_report_header(config):
    return f"database: {settings.DATABASES['default']['ENGINE']}"


_DATABASE_FIXTURES = {
    "db",
    "transactional_db",
    "django_db_reset_sequences",
    "django_db_serialized_rollback",
    "live_server",
}


def pytest_collection_modifyitems(config, items):
    """``database_independent`` tests run in the SQLite stage only (./dev test): one
    that could reach the database would lose its PostgreSQL run unseen. Asking for
    it is refused here, a query (a module fixture's unblocked database) below."""
    for item in items:
        if item.get_closest_marker("database_independent") is None:
            continue
        asks = _DATABASE_FIXTURES & set(item.fixturenames)
        if item.get_closest_marker("django_db") or asks:
            raise pytest.UsageError(
                f"{item.nodeid} is marked database_independent but asks for the database"
                f" ({', '.join(sorted(asks)) or 'django_db'})"
            )
