"""kill -9 Redis while incidents are raised, start it again on the same port: every
member's phone ends up with every alert addressed to it, exactly once (issue 10,
fault 1, the alerts).

The channel layer is at-most-once: alerts published while Redis is down are lost
on the fast path. The phones here behave like ``static/member/js``: they keep one
cursor (the highest event id seen), drop ids they already have, ack each alert,
and on every (re)connect send ``resume`` with the cursor. Nothing closes their
sockets during the outage, so only the server can tell them what they missed.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.e2e import harness

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

HEARTBEAT_S = 1.0
ENV = {
    "WS_HEARTBEAT_S": str(HEARTBEAT_S),
    "WS_IDLE_CLOSE_S": "60",
    "WS_REDELIVER_AFTER_S": "2",
}


class Phone:
    """A member's phone as static/member/js behaves: resume, de-duplicate, ack,
    reconnect."""

    def __init__(self, daphne: harness.Service, login: dict, name: str) -> None:
        self.daphne, self.name = daphne, name
        self.http = harness.Http(daphne.http_url)
        self.sessionid = self.http.login_session(login["username"], login["password"])
        self.cursor = 0
        self.ids: set[int] = set()
        self.shown: list[int] = []  # incident ids, in the order the alerts were shown
        self.lock = threading.Lock()
        self.sock: harness.MemberSocket | None = None
        self.stopped = False
        self.connect()
        self._watch = threading.Thread(target=self._reconnect_loop, daemon=True)
        self._watch.start()

    def connect(self) -> None:
        self.sock = harness.MemberSocket(
            self.daphne.ws_url,
            sessionid=self.sessionid,
            origin=self.http.origin,
            name=self.name,
            on_frame=self._on_frame,
        )

    def _reconnect_loop(self) -> None:
        while not self.stopped:
            time.sleep(0.2)
            if self.sock is not None and self.sock.closed and not self.stopped:
                try:
                    self.connect()
                except Exception:  # noqa: BLE001 - server away: try again, like the phone
                    time.sleep(1)

    def _on_frame(self, sock: harness.MemberSocket, frame: dict) -> None:
        kind = frame.get("type")
        if kind == "hello":
            sock.send({"type": "resume", "id": 1, "last_event_id": self.cursor})
            return
        if kind == "resumed":
            with self.lock:
                self.cursor = max(self.cursor, frame["last_event_id"])
            return
        if not kind.startswith("incident."):
            return
        with self.lock:
            fresh = frame["id"] not in self.ids
            self.ids.add(frame["id"])
            self.cursor = max(self.cursor, frame["id"])
            if fresh and kind == "incident.alert":
                self.shown.append(frame["incident"]["id"])
        if kind == "incident.alert":  # acked again if a copy came: the ack may be lost
            sock.send({"type": "ack", "id": 2, "incident_id": frame["incident"]["id"]})

    def close(self) -> None:
        self.stopped = True
        if self.sock is not None:
            self.sock.close()


def test_alerts_raised_across_a_redis_restart_reach_every_phone_once(city, staff_api):
    system = harness.System(city, env=ENV)
    phones: list[Phone] = []
    try:
        daphne = system.start_daphne("daphne-redis")
        units = city.scenario["units"]
        phones = [
            Phone(daphne, login, name=f"near{i}") for i, login in enumerate(units["near"]["logins"])
        ]
        api = staff_api(daphne)
        spot = city.scenario["spot"]
        raised: list[int] = []

        def raise_one(i: int) -> None:
            lat = spot["lat"] + (i % 7) * 0.00005
            r = api.post("/api/v1/incidents/", {"kind": "fire", "lat": lat, "lon": spot["lon"]})
            assert r.status == 201, r.body
            raised.append(r.json()["incident"]["id"])

        for i in range(3):
            raise_one(i)
        city.redis_kill()
        for i in range(3, 8):  # the API keeps answering while Redis is away
            raise_one(i)
            time.sleep(0.5)
        city.redis_restart()
        time.sleep(1)
        for i in range(8, 11):  # live again: these move every cursor past the lost ones
            raise_one(i)
            time.sleep(0.3)

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all(set(p.shown) >= set(raised) for p in phones):
                break
            time.sleep(0.2)
        time.sleep(3 * HEARTBEAT_S)  # a few heartbeats more: nothing shown twice
        for p in phones:
            missing = sorted(set(raised) - set(p.shown))
            assert not missing, f"{p.name} never got alerts {missing} of {raised}"
            # Alerts of earlier tests in this city reach the same unit: each shown once too.
            twice = sorted({i for i in p.shown if p.shown.count(i) > 1})
            assert not twice, f"{p.name} showed alerts {twice} twice: {p.shown}"
        assert daphne.alive()
    finally:
        for p in phones:
            p.close()
        system.stop()
        if city.redis.poll() is not None:  # the city outlives this test
            city.redis_restart()
