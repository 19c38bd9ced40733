"""The supervisor socket as the board uses it: ``resume`` with per-incident seqs
replays exactly what was missed, then each incident's whole state; nothing of
another area, even when named."""

from __future__ import annotations

from contextlib import asynccontextmanager

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from config.asgi import application
from dispatch import services
from dispatch.models import Incident
from tests.dispatch.conftest import SPOT

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://testserver")


def _cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


@asynccontextmanager
async def feed(user):
    cookie = await database_sync_to_async(_cookie)(user)
    headers = [ORIGIN, (b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode())]
    ws = WebsocketCommunicator(application, "/ws/supervisor/", headers=headers)
    try:
        connected, _code = await ws.connect()
        assert connected
        assert (await ws.receive_json_from())["type"] == "hello"
        yield ws
    finally:
        await ws.disconnect()


async def until(ws, kind: str) -> list[dict]:
    frames = []
    while True:
        frame = await ws.receive_json_from(timeout=5)
        frames.append(frame)
        if frame["type"] == kind:
            return frames


def test_resume_replays_what_the_board_missed_then_the_whole_state(
    service_area, near_responder, officer
):
    incident = services.incident_create(
        kind="knife", severity=3, lat=SPOT[0], lon=SPOT[1], source=Incident.Source.CAD
    ).incident

    async def scenario():
        async with feed(officer) as ws:
            await ws.send_json_to({"type": "resume", "id": 1, "seqs": {}})
            frames = await until(ws, "resumed")
        state = next(f for f in frames if f["type"] == "incident.state")
        assert state["incident"]["id"] == incident.pk
        assert not [f for f in frames if f.get("replay")]  # new to the board: state only
        unit = state["units"][0]
        assert unit["unit_id"] == near_responder.unit_id and unit["status"] == "alerted"
        assert unit["leader"] is None or "phone" in unit["leader"]
        seen = state["seq"]

        # The board is away while the unit accepts and the officer gathers.
        await database_sync_to_async(services.dispatch_act)(
            incident_id=incident.pk, member=near_responder, action="accept"
        )
        await database_sync_to_async(services.incident_gather_set)(
            incident=incident, lat=23.133, lon=113.321, actor=officer
        )
        async with feed(officer) as ws:
            await ws.send_json_to({"type": "resume", "id": 2, "seqs": {str(incident.pk): seen}})
            frames = await until(ws, "resumed")
        replayed = [f for f in frames if f.get("replay")]
        assert [f["seq"] for f in replayed] == list(range(seen + 1, seen + 1 + len(replayed)))
        assert [f["event"] for f in replayed][:1] == ["accepted"]
        assert replayed[-1]["event"] == "gathering" and replayed[-1]["by"] == "王警官"
        state = next(f for f in frames if f["type"] == "incident.state")
        assert state["units"][0]["status"] == "accepted"
        assert state["incident"]["gathering"]["lat"] == 23.133
        assert frames[-1]["count"] == len(replayed)

    async_to_sync(scenario)()


def test_another_area_gets_nothing_even_naming_the_incident(
    service_area, near_responder, other_officer
):
    incident = services.incident_create(
        kind="knife", lat=SPOT[0], lon=SPOT[1], source=Incident.Source.CAD
    ).incident

    async def scenario():
        async with feed(other_officer) as ws:
            await ws.send_json_to({"type": "resume", "id": 1, "seqs": {str(incident.pk): 0}})
            frames = await until(ws, "resumed")
            assert frames == [{"type": "resumed", "id": 1, "incidents": [], "count": 0}]
            await ws.send_json_to(
                {"type": "watch", "id": 2, "incident_id": incident.pk, "after_seq": 0}
            )
            answer = await ws.receive_json_from()
            assert answer["type"] == "error" and answer["code"] == "not_found"

    async_to_sync(scenario)()


def test_bad_resume_input_gets_an_error_frame_and_the_socket_stays(service_area, officer):
    async def scenario():
        async with feed(officer) as ws:
            for bad in ({"seqs": []}, {"seqs": {"x": 1}}, {"seqs": {"1": -1}}):
                await ws.send_json_to({"type": "resume", "id": 9, **bad})
                answer = await ws.receive_json_from()
                assert answer["type"] == "error" and answer["field"] == "seqs", bad
            await ws.send_json_to({"type": "ping", "id": 10})
            assert (await ws.receive_json_from())["type"] == "pong"

    async_to_sync(scenario)()
