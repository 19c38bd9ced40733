from __future__ import annotations

import contextlib
import functools

import pytest
from django.conf import settings
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
    """Per-process caches built from the database must not leak between tests."""
    from dispatch.ranking import reset_unit_index
    from units.locate import locate_cache_reset
    from units.services import district_shapes_reset

    reset_unit_index()
    district_shapes_reset()
    locate_cache_reset()


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


def _sql_delete_all(ops, style, tables, *, reset_sequences=False, allow_cascade=False):
    """A flush by DELETE, for PostgreSQL between transactional tests.

    Django's one TRUNCATE of all ~55 tables took 1.5-2 s per test on PostgreSQL
    15 here, against 15-50 ms to DELETE the few rows a test leaves: most of the
    PostgreSQL unit stage's extra time over SQLite (teardown alone was 227 s of
    the stage's 975 test-seconds).
    Same outcome as TRUNCATE without RESTART IDENTITY: empty tables, sequences left
    as they are. Django's foreign keys are DEFERRABLE, so the order does not matter
    inside the flush command's one transaction."""
    if reset_sequences or allow_cascade:
        return type(ops).sql_flush(
            ops, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
        )
    return ["SET CONSTRAINTS ALL DEFERRED"] + [
        # Table names from Django's own introspection, quoted.
        f"DELETE FROM {ops.quote_name(table)}"  # noqa: S608
        for table in tables
    ]


_fixture_teardown_by_truncate = TransactionTestCase._fixture_teardown


def _fixture_teardown_by_delete(self):
    patched = []
    for alias in self._databases_names(include_mirrors=False):
        ops = connections[alias].ops
        if connections[alias].vendor == "postgresql":
            # An instance attribute for this flush only: the flush command under
            # test (if any) keeps Django's TRUNCATE.
            ops.sql_flush = functools.partial(_sql_delete_all, ops)
            patched.append(ops)
    try:
        _fixture_teardown_by_truncate(self)
    finally:
        for ops in patched:
            del ops.sql_flush


TransactionTestCase._fixture_teardown = _fixture_teardown_by_delete


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
