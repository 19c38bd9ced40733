"""A Celery worker keeps its PostgreSQL connections from one task to the next.

Celery's Django fixup closes every connection before and after each task, and in
a prefork worker closes Django's connection pool too (celery/celery#10554): each
task then opened new connections, a backend forked and a password checked for
each, on the machine that is sending the alerts (bench/city.py: most of the
worker's CPU during wave one).
"""

from __future__ import annotations

import pytest

from tests.e2e import harness
from tests.e2e.harness import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.both_databases, pytest.mark.timeout(90)]


def _backends(city) -> set[tuple[int, object]]:
    """The database's other sessions: (pid, started at). Only the worker has any."""
    return set(
        city.db.query(
            "SELECT pid, backend_start FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    )


def _sweeps(worker) -> int:
    return worker.log().count("dispatch.tasks.sweep_deadlines[") // 2  # received, succeeded


@pytest.fixture
def sweeping_worker(city):
    """A worker and beat sending it the deadline sweep every 0.3 s (a task
    after task), the worker past its first three and holding a connection."""
    if city.db.engine != "postgres":
        pytest.skip("the connection pool is PostgreSQL's (DATABASE_URL)")
    system = harness.System(city, env={"DEADLINE_SWEEP_SECONDS": "0.3"})
    try:
        # One child: a second one that takes its first task later opens its
        # connections then, and would count as a new session.
        worker = system.start_worker("worker", concurrency=1, wait=False)
        system.start_beat(wait=False)
        system.wait_ready()
        assert wait_until(lambda: _sweeps(worker) >= 3 and _backends(city), 20), worker.log()
        yield worker
        system.check_alive()
    finally:
        system.stop()


def test_the_worker_keeps_its_database_connections_between_tasks(city, sweeping_worker):
    before = _backends(city)
    done = _sweeps(sweeping_worker)
    assert wait_until(lambda: _sweeps(sweeping_worker) >= done + 10, 20), sweeping_worker.log()
    after = _backends(city)
    assert after <= before, f"new sessions during 10 tasks: {sorted(after - before)}"


def test_a_task_after_the_database_dropped_the_workers_connections_still_runs(
    city, sweeping_worker
):
    """A kept connection the server has closed (a restart, a failover) is
    checked before a task gets it: no task fails on it."""
    city.db.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    done = _sweeps(sweeping_worker)
    assert wait_until(lambda: _sweeps(sweeping_worker) >= done + 5, 20), sweeping_worker.log()
    log = sweeping_worker.log()
    assert " raised unexpected" not in log and "OperationalError" not in log, log[-3000:]
