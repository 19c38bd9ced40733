"""Scale-out: two daphne processes and two Celery workers share one Redis and one
database (PostgreSQL when DATABASE_URL says so). A phone on one daphne hears an
incident raised through the other, and an escalation raced by two workers and
the sweep still goes out once."""

from __future__ import annotations

import time

import pytest

from tests.e2e import harness
from tests.e2e.harness import E2E_POLICIES, alert_for

pytestmark = [pytest.mark.e2e, pytest.mark.both_databases, pytest.mark.timeout(120)]

RESPOND_AFTER_S = E2E_POLICIES["default"]["tiers"][0]["after_s"]


@pytest.fixture(scope="module")
def system(city):
    """daphne A and B, two workers and beat, shared by this module's tests."""
    system = harness.System(city)
    try:
        system.start_daphne("daphne-a", wait=False)
        system.start_daphne("daphne-b", wait=False)
        system.start_worker("worker-1", wait=False)
        system.start_worker("worker-2", wait=False)
        system.start_beat(wait=False)
        system.wait_ready()
    except harness.ServiceError as exc:
        system.stop()
        pytest.fail(f"could not start the scale-out system: {exc}", pytrace=False)
    yield system
    system.stop()


def test_member_on_daphne_a_receives_incident_posted_to_daphne_b(city, system, sockets, staff_api):
    daphne_a, daphne_b = system.services[0], system.services[1]
    assert daphne_a.port != daphne_b.port
    units = city.scenario["units"]
    near_on_a = sockets(daphne_a, units["near"]["logins"][0], name="near@A")
    api_b = staff_api(daphne_b)
    spot = city.scenario["spot"]

    started = time.monotonic()
    r = api_b.post(
        "/api/v1/incidents/", {"kind": "medical", "lat": spot["lat"], "lon": spot["lon"]}
    )
    assert r.status == 201, r.body
    incident_id = r.json()["incident"]["id"]
    stamped = near_on_a.wait_for_stamped(alert_for(incident_id), timeout=5)
    assert stamped is not None, f"no alert crossed from B to A: {near_on_a.frames[-5:]}"
    # A sanity bound, not the goal: bench/city.py measures latency.
    assert stamped[0] - started < 5

    reply = near_on_a.request({"type": "accept", "incident_id": incident_id})
    assert reply["type"] == "ok", reply
    detail = api_b.get_json(f"/api/v1/incidents/{incident_id}/")
    assert detail["responded_at"] is not None
    system.check_alive()


def test_two_workers_escalate_an_unanswered_incident_once(city, system, sockets, staff_api):
    daphne_a, daphne_b = system.services[0], system.services[1]
    units = city.scenario["units"]
    near_on_b = sockets(daphne_b, units["near"]["logins"][1], name="near@B")
    mid_on_b = sockets(daphne_b, units["mid"]["logins"][0], name="mid@B")
    mid_on_a = sockets(daphne_a, units["mid"]["logins"][1], name="mid@A")
    api_a = staff_api(daphne_a)
    spot = city.scenario["spot"]

    r = api_a.post("/api/v1/incidents/", {"kind": "crowd", "lat": spot["lat"], "lon": spot["lon"]})
    assert r.status == 201, r.body
    incident_id = r.json()["incident"]["id"]
    assert near_on_b.wait_for(alert_for(incident_id), timeout=2) is not None

    for sock in (mid_on_a, mid_on_b):
        alert = sock.wait_for(alert_for(incident_id), timeout=RESPOND_AFTER_S + 6)
        assert alert is not None, f"{sock.name}: no wave 2: {sock.frames[-5:]}"
        assert alert["dispatch"]["wave"] == 2
    time.sleep(3)  # three sweep periods on two workers: nothing more goes out
    for sock in (mid_on_a, mid_on_b, near_on_b):
        assert len(sock.matching(alert_for(incident_id))) == 1, sock.name

    detail = api_a.get_json(f"/api/v1/incidents/{incident_id}/")
    assert [e["data"]["wave"] for e in detail["timeline"] if e["type"] == "escalated"] == [2]
    assert (
        city.db.scalar("SELECT COUNT(*) FROM dispatch_wave WHERE incident_id = %s", (incident_id,))
        == 2
    )
    # Two workers were consuming the one shared queue the whole time, and the
    # sweep kept running. Which worker Redis handed each sweep to is its business.
    workers = [s for s in system.services if s.name.startswith("worker")]
    assert len(workers) == 2
    assert all(w.alive() for w in workers)
    assert any("sweep_deadlines" in w.log().split(" ready.")[-1] for w in workers)
    system.check_alive()
