"""The production topology, end to end: nginx (deploy/nginx.conf.template, websocket
upgrade on) in front of two daphne processes, two Celery workers and beat, on
PostgreSQL, with Redis under Sentinel (a master, a replica, three sentinels).

Phones and the API go through nginx only. A phone on one daphne hears an
incident raised through the other; after the Redis master is killed and the
sentinels promote the replica, alerts still reach the phones (channel layer)
and an unanswered incident still escalates (Celery), both having found the new
master through the sentinels.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e import harness
from tests.e2e.harness import E2E_POLICIES, alert_for

pytestmark = [pytest.mark.e2e, pytest.mark.both_databases, pytest.mark.timeout(240)]

RESPOND_AFTER_S = E2E_POLICIES["default"]["tiers"][0]["after_s"]
OUTER_DB = os.environ.get("DATABASE_URL", "")


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    if urlsplit(OUTER_DB).scheme not in {"postgres", "postgresql", "pgsql"}:
        pytest.skip("the production topology runs on PostgreSQL: the PostgreSQL stage runs it")
    try:
        city = harness.City.create(
            tmp_path_factory.mktemp("prod"),
            outer_database_url=OUTER_DB,
            units=60,
            sentinel=True,
        )
    except harness.ServiceError as exc:
        pytest.fail(f"could not set up the city: {exc}", pytrace=False)
    try:
        yield city
    finally:
        city.close()


@pytest.fixture(scope="module")
def topology(city):
    """nginx -> daphne A and B; two workers; beat. Yields (system, proxy)."""
    # Short heartbeat: a frame lost in the failover is re-sent within seconds.
    system = harness.System(
        city, env={"WS_HEARTBEAT_S": "1", "WS_REDELIVER_AFTER_S": "2", "TRUSTED_PROXY_COUNT": "1"}
    )
    # try/finally, not except: a pytest-timeout in the middle of the start must
    # not leave daphne, workers or nginx running.
    try:
        try:
            daphnes = [
                system.start_daphne("daphne-a", wait=False),
                system.start_daphne("daphne-b", wait=False),
            ]
            system.start_worker("worker-1", concurrency=1, wait=False)
            system.start_worker("worker-2", concurrency=1, wait=False)
            system.start_beat(wait=False)
            system.wait_ready()
            proxy = system.start_proxy(daphnes)
        except harness.ServiceError as exc:
            pytest.fail(f"could not start the production topology: {exc}", pytrace=False)
        yield system, proxy
    finally:
        system.stop()


@pytest.fixture
def phones(topology):
    opened: list[harness.MemberSocket] = []
    _, proxy = topology

    def connect(login: dict, name: str) -> harness.MemberSocket:
        http = harness.Http(proxy.http_url)
        try:
            sessionid = http.login_session(login["username"], login["password"])
            sock = harness.MemberSocket(
                proxy.ws_url, sessionid=sessionid, origin=http.origin, name=name
            )
        except harness.ServiceError as exc:
            pytest.fail(f"{name} could not connect through nginx: {exc}", pytrace=False)
        opened.append(sock)
        return sock

    yield connect
    for sock in opened:
        sock.close()


def staff(city, proxy) -> harness.Http:
    http = harness.Http(proxy.http_url)
    http.login_token(city.scenario["staff"]["username"], city.scenario["staff"]["password"])
    return http


def sockets_on(port: int) -> int:
    """Established connections nginx holds to one daphne (its websockets)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        if parts[3] == "01" and int(parts[1].rsplit(":", 1)[1], 16) == port:
            count += 1
    return count


def connections_from(pid: int, port: int) -> int:
    """Established connections that nginx ``pid`` (its master and workers) holds
    to ``port``."""
    pids = [pid] + [
        int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit() and _ppid(d) == pid
    ]
    inodes: set[str] = set()
    for p in pids:
        with contextlib.suppress(OSError):
            for fd in (Path("/proc") / str(p) / "fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        if parts[3] == "01" and int(parts[2].rsplit(":", 1)[1], 16) == port:
            count += parts[9] in inodes
    return count


def _ppid(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def test_phones_on_both_daphnes_hear_an_incident_raised_through_nginx(city, topology, phones):
    system, proxy = topology
    daphne_a, daphne_b = (s for s in system.services if s.name.startswith("daphne"))
    near = city.scenario["units"]["near"]["logins"]
    first = phones(near[0], "near-0")
    second = phones(near[1], "near-1")
    # least_conn: the second socket goes to the daphne without one.
    assert sockets_on(daphne_a.port) >= 1 and sockets_on(daphne_b.port) >= 1

    spot = city.scenario["spot"]
    started = time.monotonic()
    r = staff(city, proxy).post(
        "/api/v1/incidents/", {"kind": "medical", "lat": spot["lat"], "lon": spot["lon"]}
    )
    assert r.status == 201, r.body
    incident_id = r.json()["incident"]["id"]
    for sock in (first, second):
        stamped = sock.wait_for_stamped(alert_for(incident_id), timeout=3)
        assert stamped is not None, f"{sock.name}: no alert through nginx: {sock.frames[-3:]}"
        # A sanity bound, not the goal: bench/city.py measures latency; this
        # shared machine is often loaded while the suite runs.
        assert stamped[0] - started < 5
    reply = first.request({"type": "accept", "incident_id": incident_id})
    assert reply["type"] == "ok", reply
    system.check_alive()


def test_http_on_its_own_daphne_leaves_the_sockets_to_the_others(city, topology):
    """The layout for a city (deploy/nginx.conf.template, @WEB_UPSTREAMS@): HTTP on
    daphne A only, the phones' sockets on daphne B only; an incident POSTed to A
    still reaches a phone on B."""
    system, _ = topology
    daphne_a, daphne_b = (s for s in system.services if s.name.startswith("daphne"))
    split = harness.Proxy(system, [daphne_b], name="nginx-split", web=[daphne_a])
    split.start()
    opened: list[harness.MemberSocket] = []
    try:
        api = staff(city, split)
        logins = city.scenario["units"]["near"]["logins"]
        sessions = [
            harness.Http(split.http_url).login_session(lg["username"], lg["password"])
            for lg in logins
        ]
        for i, sessionid in enumerate(sessions):
            opened.append(
                harness.MemberSocket(
                    split.ws_url, sessionid=sessionid, origin=api.origin, name=f"split-{i}"
                )
            )
        # This nginx's upstream connections: its websockets all on B (least_conn
        # over both, as before the split, would have put some on A), and its HTTP
        # on A only.
        assert connections_from(split.service.pid, daphne_b.port) == len(opened) >= 2
        assert connections_from(split.service.pid, daphne_a.port) >= 1

        spot = city.scenario["spot"]
        r = api.post(
            "/api/v1/incidents/", {"kind": "medical", "lat": spot["lat"], "lon": spot["lon"]}
        )
        assert r.status == 201, r.body
        incident_id = r.json()["incident"]["id"]
        for sock in opened:
            assert sock.wait_for(alert_for(incident_id), timeout=5) is not None, (
                f"{sock.name}: no alert through the split proxy: {sock.frames[-3:]}"
            )
    finally:
        for sock in opened:
            sock.close()
        split.stop()


def test_alerts_and_escalation_survive_a_redis_failover_under_sentinel(city, topology, phones):
    system, proxy = topology
    units = city.scenario["units"]
    near = phones(units["near"]["logins"][0], "near")
    mid = phones(units["mid"]["logins"][0], "mid")
    api = staff(city, proxy)
    spot = city.scenario["spot"]

    city.redis_kill()  # the master: the sentinels promote the replica
    new_master = city.sentinel.failover_wait(timeout=30)
    assert new_master == city.sentinel.replica_port

    # The channel layer and the Celery broker reconnect through the sentinels.
    deadline = time.monotonic() + 20
    while True:
        r = api.post(
            "/api/v1/incidents/", {"kind": "crowd", "lat": spot["lat"], "lon": spot["lon"]}
        )
        assert r.status == 201, r.body
        incident_id = r.json()["incident"]["id"]
        if near.wait_for(alert_for(incident_id), timeout=5) is not None:
            break
        assert time.monotonic() < deadline, f"no alert after the failover: {near.frames[-3:]}"

    # Nobody accepts: wave 2 goes out from a worker, through the new master.
    alert = mid.wait_for(alert_for(incident_id), timeout=RESPOND_AFTER_S + 15)
    assert alert is not None, f"no escalation after the failover: {mid.frames[-3:]}"
    assert alert["dispatch"]["wave"] == 2
    assert len(near.matching(alert_for(incident_id))) == 1
    for service in system.services:
        said = harness.tail(service.log())
        assert service.alive(), f"{service.name} died in the failover:\n{said}"
