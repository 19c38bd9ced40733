"""A Celery worker keeps its PostgreSQL connections from one task to the next.

Celery's Django fixup closes every connection before and after each task, and in
a prefork worker closes Django's connection pool too (celery/celery#10554): each
task then opened new connections, a backend forked and a password checked for
each, on the machine that is sending the alerts (bench/city.py: most of the
worker's CPU during wave one).
"""

from __future__ import annotations

import time

import pytest

from tests.e2e import harness

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


def _wait_until(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def test_the_worker_keeps_its_database_connections_between_tasks(city):
    if city.db.engine != "postgres":
        pytest.skip("the connection pool is PostgreSQL's (DATABASE_URL)")
    # Beat sends the deadline sweep every 0.3 s: a task after task.
    system = harness.System(city, env={"DEADLINE_SWEEP_SECONDS": "0.3"})
    try:
        worker = system.start_worker("worker", wait=False)
        system.start_beat(wait=False)
        system.wait_ready()
        assert _wait_until(lambda: _sweeps(worker) >= 3, 20), worker.log()[-3000:]
        before = _backends(city)
        assert before, "the worker holds no connection between its tasks"
        done = _sweeps(worker)
        assert _wait_until(lambda: _sweeps(worker) >= done + 10, 20), worker.log()[-3000:]
        after = _backends(city)
        assert after <= before, f"new sessions during 10 tasks: {sorted(after - before)}"
        system.check_alive()
    finally:
        system.stop()


def test_a_task_after_the_database_dropped_the_workers_connections_still_runs(city):
    """A kept connection the server has closed (a restart, a failover) is
    checked before a task gets it: no task fails on it."""
    if city.db.engine != "postgres":
        pytest.skip("the connection pool is PostgreSQL's (DATABASE_URL)")
    system = harness.System(city, env={"DEADLINE_SWEEP_SECONDS": "0.3"})
    try:
        worker = system.start_worker("worker", wait=False)
        system.start_beat(wait=False)
        system.wait_ready()
        assert _wait_until(lambda: _sweeps(worker) >= 3 and _backends(city), 20), worker.log()
        city.db.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        done = _sweeps(worker)
        assert _wait_until(lambda: _sweeps(worker) >= done + 5, 20), worker.log()[-3000:]
        log = worker.log()
        assert " raised unexpected" not in log and "OperationalError" not in log, log[-3000:]
    finally:
        system.stop()
