"""kill -9 Redis while the worker holds a far-off escalation timer: the worker
stays up, reconnects when Redis is back on its port, and deadlines fire.

celery 5.7.0 exited here ("Unrecoverable error: AttributeError('NoneType' object
has no attribute 'hostname')") while restoring the unacked ETA message through a
connection it had already detached; pyproject.toml pins celery below 5.7.

The restarted Redis has no persistence, so the queued ETA messages are gone: the
Deadline rows are the truth, and the beat sweep must fire what falls due.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import time

import pytest

from config.embedded_redis import redis_start
from tests.e2e.harness import E2E_POLICIES, Http, System, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

# The handle tier 10 minutes away: the ETA message the worker holds unacked
# (with prefetch 1 and acks_late) while Redis dies.
POLICIES = copy.deepcopy(E2E_POLICIES)
POLICIES["default"]["tiers"][1]["after_s"] = 600
RESPOND_AFTER_S = POLICIES["default"]["tiers"][0]["after_s"]


def test_worker_survives_a_redis_restart_and_deadlines_still_fire(city):
    system = System(city, env={"ESCALATION_POLICIES": json.dumps(POLICIES)})
    try:
        daphne = system.start_daphne("daphne", wait=False)
        worker = system.start_worker("worker", wait=False)
        beat = system.start_beat("beat", wait=False)
        system.wait_ready()
        api = Http(daphne.http_url)
        staff = city.scenario["staff"]
        api.login_token(staff["username"], staff["password"])
        spot = city.scenario["spot"]

        first = _raise(api, spot)
        # The respond tier fires; the handle tier (600 s) stays with the worker.
        assert wait_until(
            lambda: _fired(city, first, "respond_1min"), RESPOND_AFTER_S + 20, step=0.2
        )
        handle_due = _due(city, first, "handle_5min")
        assert handle_due is not None
        assert wait_until(lambda: worker.log().count("fire_deadline") >= 2, 5, step=0.2), (
            worker.log()
        )

        city.redis.kill()  # SIGKILL: no shutdown, no save
        city.redis.wait(timeout=10)
        time.sleep(6)
        assert worker.alive(), f"worker died on broker loss:\n{worker.log()[-3000:]}"
        assert beat.alive(), f"beat died on broker loss:\n{beat.log()[-3000:]}"
        assert daphne.alive()

        # Back on the same port, empty (the queued ETA messages are lost).
        city.redis = redis_start(
            port=city.redis_port, data_dir=city.root / "redis-restarted", persist=False
        )
        restarted = time.monotonic()

        # The API takes a new incident once its connections are back.
        second = None
        while second is None and time.monotonic() - restarted < 20:
            second = _raise(api, spot, must=False)
            if second is None:
                time.sleep(0.5)
        assert second is not None, "the API did not take an incident after the restart"
        # Its respond deadline falls due after the restart: it fires within 30 s
        # (through the restarted worker's own timer or the beat sweep).
        assert wait_until(
            lambda: _fired(city, second, "respond_1min"), RESPOND_AFTER_S + 30, step=0.2
        ), (
            f"deadline never fired; worker log:\n{worker.log()[-3000:]}\n"
            f"beat log:\n{beat.log()[-2000:]}"
        )
        due, fired = city.db.query(
            "SELECT due_at, fired_at FROM dispatch_deadline WHERE incident_id = %s AND tier = %s",
            (second, "respond_1min"),
        )[0]
        lateness = (_as_dt(fired) - _as_dt(due)).total_seconds()
        assert lateness < 30, lateness
        # The same worker process did it: it never exited.
        assert worker.alive()
        assert "Unrecoverable error" not in worker.log()
        # The far timer is still pending, to be fired by the sweep when due.
        assert not _fired(city, first, "handle_5min")
        system.check_alive()
    finally:
        system.stop()
        if city.redis.poll() is not None:  # a failed test leaves the city usable
            city.redis = redis_start(
                port=city.redis_port, data_dir=city.root / "redis-restarted", persist=False
            )


def _raise(api: Http, spot: dict, *, must: bool = True) -> int | None:
    try:
        r = api.post("/api/v1/incidents/", {"kind": "fire", "lat": spot["lat"], "lon": spot["lon"]})
    except OSError:
        if must:
            raise
        return None
    if r.status != 201:
        assert not must, r.body
        return None
    return r.json()["incident"]["id"]


def _fired(city, incident_id: int, tier: str) -> bool:
    rows = city.db.query(
        "SELECT fired_at FROM dispatch_deadline WHERE incident_id = %s AND tier = %s",
        (incident_id, tier),
    )
    return bool(rows) and rows[0][0] is not None


def _due(city, incident_id: int, tier: str):
    rows = city.db.query(
        "SELECT due_at FROM dispatch_deadline WHERE incident_id = %s AND tier = %s",
        (incident_id, tier),
    )
    return rows[0][0] if rows else None


def _as_dt(value):
    if isinstance(value, str):  # SQLite
        return dt.datetime.fromisoformat(value)
    return value
