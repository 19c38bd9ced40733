"""A worker restarted after a crash fires what is overdue by itself, without beat.

The killed worker took its reserved ETA'd ``fire_deadline`` message with it (unacked
in Redis for the visibility timeout); with no beat running, only the replacement
worker's own start-up sweep can send wave 2.
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.harness import alert_for, respond_after_env, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

# The "1 minute" deadline in 10 s, not the e2e policy's 4: the worker must be
# killed before it, after the intake, its alert and the timer's arrival, which
# took more than 4 s on a loaded machine.
RESPOND_AFTER_S = 10
ENV = respond_after_env(RESPOND_AFTER_S)


def test_restarted_worker_fires_overdue_deadline_without_beat(
    city, system_factory, sockets, staff_api
):
    system = system_factory(daphnes=1, workers=1, beat=False, env=ENV)
    daphne, worker = system.services[0], system.services[1]
    units = city.scenario["units"]
    near = sockets(daphne, units["near"]["logins"][0], name="near")
    mid = sockets(daphne, units["mid"]["logins"][0], name="mid")
    api = staff_api(daphne)
    spot = city.scenario["spot"]

    started = time.monotonic()
    r = api.post("/api/v1/incidents/", {"kind": "fire", "lat": spot["lat"], "lon": spot["lon"]})
    assert r.status == 201, r.body
    incident_id = r.json()["incident"]["id"]
    assert near.wait_for(alert_for(incident_id), timeout=2) is not None
    assert wait_until(lambda: "fire_deadline" in worker.log().split(" ready.")[-1], 8)
    worker.kill_hard()
    assert time.monotonic() - started < RESPOND_AFTER_S - 0.5, "killed too late"

    # Let the deadline pass with no worker and no beat: nothing can fire it.
    time.sleep(max(0.0, started + RESPOND_AFTER_S + 1 - time.monotonic()))
    assert mid.wait_for(alert_for(incident_id), timeout=0.1) is None
    assert _fired_at(city, incident_id) is None

    system.start_worker("worker-replacement")
    ready_at = time.monotonic()
    stamped = mid.wait_for_stamped(alert_for(incident_id), timeout=20)
    assert stamped is not None, f"wave 2 never went out without beat: {mid.frames[-5:]}"
    assert stamped[0] - ready_at < 5
    assert stamped[1]["dispatch"]["wave"] == 2

    time.sleep(2)
    assert len(mid.matching(alert_for(incident_id))) == 1
    assert len(near.matching(alert_for(incident_id))) == 1
    assert (
        city.db.scalar("SELECT COUNT(*) FROM dispatch_wave WHERE incident_id = %s", (incident_id,))
        == 2
    )
    assert _fired_at(city, incident_id) is not None
    system.check_alive()


def _fired_at(city, incident_id: int):
    return city.db.scalar(
        "SELECT fired_at FROM dispatch_deadline WHERE incident_id = %s AND tier = %s",
        (incident_id, "respond_1min"),
    )
