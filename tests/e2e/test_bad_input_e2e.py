"""Bad input against the real daphne (issue 10, hole 5): what the unit tests cannot
show, because the in-process test clients are not daphne: a chunked body, and a
1 MB websocket frame passing through autobahn."""

from __future__ import annotations

import http.client
import json

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def _chunked_post(daphne, path: str, body: bytes, token: str) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", int(daphne.http_url.rsplit(":", 1)[1]))
    try:
        conn.putrequest("POST", path)
        conn.putheader("Authorization", f"Token {token}")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        conn.send(f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def test_bad_bodies_and_frames_on_the_real_server(city, system_factory, sockets, staff_api):
    system = system_factory(daphnes=1, workers=1, beat=False)
    daphne = system.services[0]
    api = staff_api(daphne)
    spot = city.scenario["spot"]
    body = json.dumps({"kind": "knife", "lat": spot["lat"], "lon": spot["lon"]}).encode()

    status, answer = _chunked_post(daphne, "/api/v1/incidents/", body, api.token)
    assert status == 411, answer
    assert answer["code"] == "length_required"

    deep = "[" * 100_000 + "]" * 100_000
    conn = http.client.HTTPConnection("127.0.0.1", int(daphne.http_url.rsplit(":", 1)[1]))
    try:
        conn.request(
            "POST",
            "/api/v1/auth/token/",
            body=deep.encode(),
            headers={"Content-Type": "application/json"},
        )
        assert conn.getresponse().status == 400
    finally:
        conn.close()

    member = sockets(daphne, city.scenario["units"]["near"]["logins"][0], name="near")
    member.conn.send("x" * 1_000_000)
    error = member.wait_for(lambda f: f["type"] == "error", timeout=10)
    assert error is not None and error["code"] == "bad_frame", member.frames[-3:]
    member.send({"type": "ping", "id": "after"})
    pong = member.wait_for(lambda f: f["type"] == "pong" and f["id"] == "after", timeout=5)
    assert pong is not None and not member.closed
    system.check_alive()
