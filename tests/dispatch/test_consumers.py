"""The member websocket, through the real ASGI stack (origin check, session auth,
routing) with the in-memory channel layer.

Each test runs one async scenario with ``async_to_sync``; the consumer's database
calls run back on the test thread, so they see the test's rows. The database is
transactional so after-commit pushes really fire. Every communicator is
disconnected, pass or fail.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY
from django.db import transaction
from django.test import Client

from config.asgi import application
from dispatch import services
from dispatch.consumers import CLOSE_FORBIDDEN, CLOSE_IDLE, CLOSE_UNAUTHENTICATED
from dispatch.events import member_group, push_on_commit
from dispatch.models import Delivery, Incident, IncidentEvent
from dispatch.socket_pass import PASS_COOKIE, socket_pass_make
from tests.dispatch.conftest import SPOT
from tests.factories import UserFactory
from units.models import Member
from units.services import member_set_duty

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://testserver")


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    async_to_sync(scenario)()


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def login_cookies(user, *, with_pass: bool = True) -> str:
    """The Cookie header of a phone signed in as ``user``: its session and, as
    the sign-in page gives a member, its socket pass (``dispatch.socket_pass``).
    ``with_pass=False``: a phone signed in before passes existed."""
    client = Client()
    client.force_login(user)
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    header = f"{settings.SESSION_COOKIE_NAME}={key}"
    member = Member.objects.filter(user=user).first()
    if with_pass and member is not None:
        value = socket_pass_make(
            member_id=member.pk,
            user_id=user.pk,
            session_key=key,
            session_auth_hash=client.session[HASH_SESSION_KEY],
        )
        header += f"; {PASS_COOKIE}={value}"
    return header


class Phone:
    """A member's websocket with the small helpers the tests need."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.ws = communicator

    async def send(self, **message) -> None:
        await self.ws.send_json_to(message)

    async def receive(self, timeout: float = 2) -> dict:
        return await self.ws.receive_json_from(timeout=timeout)

    async def receive_type(self, type_: str, timeout: float = 2) -> dict:
        """The next frame of this type, skipping heartbeat pings."""
        while True:
            frame = await self.receive(timeout)
            if frame["type"] == type_:
                return frame
            if frame["type"] != "ping":
                raise AssertionError(f"expected {type_}, got {frame}")

    async def nothing(self, timeout: float = 0.2) -> bool:
        return await self.ws.receive_nothing(timeout=timeout)

    async def close_frame(self, timeout: float = 2) -> dict:
        """Skip data frames up to the close; return it."""
        while True:
            output = await self.ws.receive_output(timeout)
            if output["type"] == "websocket.close":
                return output


@asynccontextmanager
async def phone(
    user=None, *, origin=ORIGIN, hello: bool = True, with_pass: bool = True, cookies: str = ""
) -> AsyncIterator[Phone]:
    headers = [origin] if origin else []
    if user is not None:
        cookies = await database_sync_to_async(login_cookies)(user, with_pass=with_pass)
    if cookies:
        headers.append((b"cookie", cookies.encode()))
    communicator = WebsocketCommunicator(application, "/ws/member/", headers=headers)
    try:
        connected, _code = await communicator.connect()
        assert connected
        p = Phone(communicator)
        if hello:
            frame = await p.receive()
            assert frame["type"] == "hello", frame
            p.hello = frame
        yield p
    finally:
        await communicator.disconnect()


@asynccontextmanager
async def database_thread_held() -> AsyncIterator[tuple[asyncio.Future, threading.Event]]:
    """The process's one database thread busy (as with a slow batch or another
    phone's tap) until the block ends or the event is set; the future is that
    call, done once released."""
    release = threading.Event()
    busy = asyncio.ensure_future(database_sync_to_async(release.wait)(10))
    try:
        await asyncio.sleep(0.05)  # the thread is now held
        yield busy, release
    finally:
        release.set()
        await busy


async def raise_incident(**overrides) -> Incident:
    args = {"kind": "knife", "lat": SPOT[0], "lon": SPOT[1], "source": Incident.Source.CAD}
    args.update(overrides)
    result = await database_sync_to_async(services.incident_create)(**args)
    return result.incident


# --- connecting ------------------------------------------------------------------------------


def test_an_unauthenticated_socket_gets_an_error_and_is_closed():
    async def scenario():
        async with phone(hello=False) as p:
            frame = await p.receive()
            assert frame["type"] == "error"
            assert frame["code"] == "unauthenticated"
            assert (await p.close_frame())["code"] == CLOSE_UNAUTHENTICATED

    run(scenario)


def test_a_user_who_is_not_a_member_is_refused(dispatcher):
    async def scenario():
        async with phone(dispatcher, hello=False) as p:
            assert (await p.receive())["type"] == "error"
            assert (await p.close_frame())["code"] == CLOSE_UNAUTHENTICATED

    run(scenario)


def test_a_socket_from_another_origin_is_rejected(near_responder):
    async def scenario():
        cookie = await database_sync_to_async(session_cookie)(near_responder.user)
        communicator = WebsocketCommunicator(
            application,
            "/ws/member/",
            headers=[
                (b"origin", b"https://evil.example"),
                (b"cookie", f"sessionid={cookie}".encode()),
            ],
        )
        try:
            connected, _code = await communicator.connect()
            assert not connected
        finally:
            await communicator.disconnect()

    run(scenario)


def test_a_member_connects_and_gets_hello(near_responder):
    async def scenario():
        async with phone(near_responder.user, hello=False) as p:
            hello = await p.receive()
            assert hello["type"] == "hello"
            assert hello["member"] == {"id": near_responder.pk, "name": near_responder.name}
            assert hello["unit"]["id"] == near_responder.unit_id
            assert hello["on_duty"] is True

    run(scenario)


def test_a_member_of_an_inactive_unit_is_refused(near_responder):
    unit = near_responder.unit
    unit.is_active = False
    unit.save()

    async def scenario():
        async with phone(near_responder.user, hello=False) as p:
            assert (await p.receive())["code"] == "inactive"
            assert (await p.close_frame())["code"] == CLOSE_FORBIDDEN

    run(scenario)


# --- alerts ---------------------------------------------------------------------------------


def test_an_incident_alert_reaches_the_near_member_and_not_the_far_one(
    near_responder, far_responder
):
    async def scenario():
        async with phone(near_responder.user) as near, phone(far_responder.user) as far:
            incident = await raise_incident()
            alert = await near.receive_type("incident.alert")
            assert alert["incident"]["id"] == incident.pk
            assert alert["incident"]["kind"] == "knife"
            assert alert["dispatch"]["unit_id"] == near_responder.unit_id
            assert alert["dispatch"]["distance_m"] == 200
            assert alert["dispatch"]["eta_s"] > 0
            assert alert["dispatch"]["wave"] == 1
            assert isinstance(alert["id"], int) and alert["seq"] == 2
            assert await far.nothing()

    run(scenario)


def test_an_off_duty_member_gets_no_alert(near_responder):
    off = Member.objects.create(
        name="休息", phone="13700000000", unit=near_responder.unit, user=UserFactory()
    )

    async def scenario():
        async with phone(off.user) as p, phone(near_responder.user) as on:
            await raise_incident()
            await on.receive_type("incident.alert")
            assert await p.nothing()

    run(scenario)


def test_ack_records_the_delivery_once(near_responder):
    async def scenario():
        async with phone(near_responder.user) as p:
            incident = await raise_incident()
            await p.receive_type("incident.alert")
            await p.send(type="ack", id="m1", incident_id=incident.pk)
            assert await p.receive_type("ok") == {"type": "ok", "id": "m1", "recorded": True}
            await p.send(type="ack", id="m2", incident_id=incident.pk)
            assert await p.receive_type("ok") == {"type": "ok", "id": "m2", "recorded": False}

    run(scenario)
    delivery = Delivery.objects.get(member=near_responder)
    assert delivery.delivered_at is not None
    assert IncidentEvent.objects.filter(type="delivered").count() == 1


def test_accept_over_the_socket_sets_responded_at_and_broadcasts(near_responder):
    partner = near_responder.unit.members.select_related("user").exclude(pk=near_responder.pk).get()

    async def scenario():
        async with phone(near_responder.user) as p, phone(partner.user) as mate:
            incident = await raise_incident()
            alert = await p.receive_type("incident.alert")
            await mate.receive_type("incident.alert")
            await p.send(type="accept", id=7, incident_id=incident.pk, lat=23.131, lon=113.32)
            frames = [await p.receive(), await p.receive()]
            ok = next(f for f in frames if f["type"] == "ok")
            assert ok == {
                "type": "ok",
                "id": 7,
                "incident_id": incident.pk,
                "action": "accept",
                "dispatch_status": "accepted",
                "next_actions": ["on_site"],  # the state machine's word, not the phone's
            }
            update = next(f for f in frames if f["type"] == "incident.update")
            assert update["event"] == "accepted"
            assert update["dispatch_status"] == "accepted"
            assert update["next_actions"] == ["on_site"]
            assert update["member_id"] == near_responder.pk
            assert update["responded_at"] is not None
            assert update["id"] > alert["id"]
            # The partner's phone sees it too.
            mate_update = await mate.receive_type("incident.update")
            assert mate_update["id"] == update["id"]

    run(scenario)
    incident = Incident.objects.get()
    assert incident.responded_at is not None


def test_the_whole_response_over_the_socket_closes_the_incident(near_responder):
    async def scenario():
        async with phone(near_responder.user) as p:
            incident = await raise_incident()
            await p.receive_type("incident.alert")
            frames = []
            for n, action in enumerate(("accept", "on_site", "handled")):
                await p.send(type=action, id=n, incident_id=incident.pk)
                while not any(f["type"] == "ok" and f["id"] == n for f in frames):
                    frames.append(await p.receive())
            while not any(f["type"] == "incident.closed" for f in frames):
                frames.append(await p.receive())
            updates = [f["event"] for f in frames if f["type"] == "incident.update"]
            assert updates == ["accepted", "on_site", "handled"]
            closed = next(f for f in frames if f["type"] == "incident.closed")
            assert closed["status"] == "closed"
            assert closed["handled_at"] is not None

    run(scenario)
    incident = Incident.objects.get()
    assert incident.status == "closed"
    assert incident.discovered_at <= incident.responded_at <= incident.controlled_at
    assert incident.controlled_at <= incident.handled_at


def test_a_refused_action_gets_an_error_frame_with_its_code(near_responder):
    async def scenario():
        async with phone(near_responder.user) as p:
            incident = await raise_incident()
            await p.receive_type("incident.alert")
            await p.send(type="handled", id="h1", incident_id=incident.pk)
            error = await p.receive_type("error")
            assert (error["id"], error["code"]) == ("h1", "out_of_order")
            await p.send(type="accept", id="a1", incident_id=incident.pk + 1000)
            error = await p.receive_type("error")
            assert (error["id"], error["code"]) == ("a1", "not_alerted")

    run(scenario)
    assert Incident.objects.get().handled_at is None


def test_a_pushed_frame_does_not_wait_behind_the_database_thread(near_responder):
    """All database calls of a daphne process share one thread; a frame on its
    way to a phone must not queue behind them (channels' own dispatch hops to
    that thread before every message, so a city-wide wave of frames waited
    behind every ack, resume and handshake of the process)."""

    async def scenario():
        async with phone(near_responder.user) as p, database_thread_held() as (busy, _release):
            await get_channel_layer().group_send(
                member_group(near_responder.pk), {"type": "push", "text": '{"type": "probe"}'}
            )
            assert await p.receive(timeout=1) == {"type": "probe"}
            assert not busy.done()

    run(scenario)


def test_frames_for_one_socket_in_one_commit_go_as_one_layer_message(near_responder, monkeypatch):
    """A batch of receipts is one commit with an update per receipt for the same
    groups: it goes out as one channel-layer message per group (a city-wide
    alert's 10,000 receipts were 40,000 Redis publishes), and the phone still
    gets every frame, in order."""
    layer = get_channel_layer()
    sent: list[str] = []
    real_group_send = layer.group_send

    async def group_send(group: str, message: dict) -> None:
        sent.append(group)
        await real_group_send(group, message)

    monkeypatch.setattr(layer, "group_send", group_send)

    async def scenario():
        async with phone(near_responder.user) as p:
            group = member_group(near_responder.pk)

            def commit() -> None:
                with transaction.atomic():
                    push_on_commit([(group, {"type": "probe", "n": n}) for n in range(3)])

            await database_sync_to_async(commit)()
            assert [(await p.receive())["n"] for _ in range(3)] == [0, 1, 2]
            assert sent == [group]

    run(scenario)


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code", "msg_id"),
    [
        ("{not json", "bad_json", None),
        ("[1, 2, 3]", "bad_message", None),
        ('"accept"', "bad_message", None),
        ('{"id": 3}', "bad_message", None),
        ('{"type": 5, "id": 3}', "bad_message", None),
        ('{"type": "launch", "id": 4}', "unknown_type", 4),
        ('{"type": "accept", "id": 5}', "bad_field", 5),
        ('{"type": "accept", "id": 6, "incident_id": "1"}', "bad_field", 6),
        ('{"type": "accept", "id": 7, "incident_id": -1}', "bad_field", 7),
        ('{"type": "accept", "id": 8, "incident_id": true}', "bad_field", 8),
        ('{"type": "ack", "id": 9, "incident_id": 1.5}', "bad_field", 9),
        ('{"type": "location", "id": 10, "lat": 91, "lon": 113}', "bad_field", 10),
        ('{"type": "location", "id": 11, "lat": 23.1}', "bad_field", 11),
        (
            '{"type": "location", "id": 12, "lat": 23.1, "lon": 113.3, "accuracy": "x"}',
            "bad_field",
            12,
        ),
        ('{"type": "resume", "id": 13, "last_event_id": "x"}', "bad_field", 13),
        ('{"type": "resume", "id": 14, "last_event_id": -4}', "bad_field", 14),
        ('{"type": "resume", "id": 15, "last_event_id": true}', "bad_field", 15),
    ],
)
def test_a_bad_message_gets_an_error_and_the_connection_stays_open(
    near_responder, raw, code, msg_id
):
    async def scenario():
        async with phone(near_responder.user) as p:
            await p.ws.send_to(text_data=raw)
            error = await p.receive_type("error")
            assert (error["code"], error["id"]) == (code, msg_id), error
            assert error["message"]
            await p.send(type="ping", id="after")
            assert await p.receive_type("pong") == {"type": "pong", "id": "after"}

    run(scenario)


def test_an_oversized_frame_is_refused_and_the_connection_stays_open(near_responder):
    async def scenario():
        async with phone(near_responder.user) as p:
            await p.send(type="ping", id=1, padding="x" * 20_000)
            assert (await p.receive_type("error"))["code"] == "bad_frame"
            await p.ws.send_to(bytes_data=b"\x00\x01")
            assert (await p.receive_type("error"))["code"] == "bad_frame"
            await p.send(type="ping", id=2)
            assert (await p.receive_type("pong"))["id"] == 2

    run(scenario)


# --- locations ------------------------------------------------------------------------------


def test_a_location_is_stored(near_responder):
    async def scenario():
        async with phone(near_responder.user) as p:
            await p.send(type="location", id="l1", lat=23.1305, lon=113.3201, accuracy=8)
            assert await p.receive_type("ok") == {"type": "ok", "id": "l1"}

    run(scenario)
    location = near_responder.locations.get()
    assert (location.lat, location.lon, location.accuracy_m) == (23.1305, 113.3201, 8)


# --- resume and replay ----------------------------------------------------------------------


def test_resume_replays_what_was_missed_while_offline_and_nothing_twice(near_responder):
    async def scenario():
        async with phone(near_responder.user) as p:
            await p.send(type="resume", id="r0", last_event_id=0)
            resumed = await p.receive_type("resumed")
            assert (resumed["count"], resumed["last_event_id"]) == (0, 0)

        # Offline: an incident is raised and someone else accepts it.
        incident = await raise_incident(severity=Incident.Severity.HIGH)
        partner = await database_sync_to_async(
            lambda: near_responder.unit.members.exclude(pk=near_responder.pk).get()
        )()
        await database_sync_to_async(services.dispatch_act)(
            incident_id=incident.pk, member=partner, action="accept"
        )

        async with phone(near_responder.user) as p:
            assert await p.nothing()  # nothing live: it happened while offline
            await p.send(type="resume", id="r1", last_event_id=0)
            alert = await p.receive()
            assert (alert["type"], alert["replay"]) == ("incident.alert", True)
            assert alert["incident"]["id"] == incident.pk
            assert alert["dispatch"]["distance_m"] == 200
            update = await p.receive()
            assert (update["type"], update["event"], update["replay"]) == (
                "incident.update",
                "accepted",
                True,
            )
            assert update["responded_at"] is not None
            resumed = await p.receive()
            assert resumed == {
                "type": "resumed",
                "id": "r1",
                "count": 2,
                "last_event_id": update["id"],
            }
            # The phone acks the alert; then resuming from the latest id sends
            # nothing twice (an unacked alert would come again, whatever the cursor).
            await p.send(type="ack", id="a", incident_id=incident.pk)
            assert (await p.receive_type("ok"))["recorded"] is True
            await p.send(type="resume", id="r2", last_event_id=resumed["last_event_id"])
            again = await p.receive()
            assert again == {
                "type": "resumed",
                "id": "r2",
                "count": 0,
                "last_event_id": resumed["last_event_id"],
            }

    run(scenario)


def test_resume_from_the_last_live_frame_sends_nothing_again(near_responder, neighbour_responder):
    async def scenario():
        async with phone(near_responder.user) as p:
            await raise_incident()
            alert = await p.receive_type("incident.alert")
            await p.send(type="ack", id="a", incident_id=alert["incident"]["id"])
            await p.receive_type("ok")
            await p.send(type="resume", id="r", last_event_id=alert["id"])
            resumed = await p.receive_type("resumed")
            assert resumed["count"] == 0

    run(scenario)


def test_resume_does_not_replay_other_units_alerts(near_responder, neighbour_responder):
    async def scenario():
        incident = await raise_incident()
        async with phone(near_responder.user) as p:
            await p.send(type="resume", id="r", last_event_id=0)
            alert = await p.receive_type("incident.alert")
            assert alert["dispatch"]["unit_id"] == near_responder.unit_id
            assert alert["incident"]["id"] == incident.pk
            assert (await p.receive_type("resumed"))["count"] == 1

    run(scenario)


def test_resume_does_not_replay_alerts_to_a_member_now_off_duty(near_responder):
    async def scenario():
        await raise_incident()
        await database_sync_to_async(member_set_duty)(member=near_responder, on_duty=False)
        async with phone(near_responder.user) as p:
            await p.send(type="resume", id="r", last_event_id=0)
            resumed = await p.receive_type("resumed")
            assert resumed["count"] == 0

    run(scenario)


def test_resume_replays_events_of_another_incident_committed_late(near_responder):
    """Ids are not committed in id order across incidents: an event with a lower
    id than the cursor, written in the lookback window, is replayed."""

    async def scenario():
        first = await raise_incident()
        second = await raise_incident(lat=SPOT[0] + 0.0005)
        cursor = await database_sync_to_async(
            lambda: second.events.order_by("-pk").values_list("pk", flat=True).first()
        )()
        async with phone(near_responder.user) as p:
            # The second alert came live and was acked; the first one is in the lookback.
            await p.send(type="ack", id="a", incident_id=second.pk)
            await p.receive_type("ok")
            await p.send(type="resume", id="r", last_event_id=cursor)
            frames = [await p.receive(), await p.receive()]
            assert frames[0]["type"] == "incident.alert"
            assert frames[0]["incident"]["id"] == first.pk
            assert frames[1]["type"] == "resumed" and frames[1]["count"] == 1
            # The replayed frame is older than the cursor: the cursor does not move back.
            assert frames[1]["last_event_id"] == cursor

    run(scenario)


def test_resume_replays_an_unacked_alert_whatever_the_cursor(settings, near_responder):
    """A live frame lost (Redis away) and a later one that moved the cursor past
    it by more than the lookback: the unacked alert still comes back on resume."""
    settings.REPLAY_LOOKBACK_S = 0

    async def scenario():
        lost = await raise_incident()
        later = await raise_incident(lat=SPOT[0] + 0.0005)
        cursor = await database_sync_to_async(
            lambda: later.events.order_by("-pk").values_list("pk", flat=True).first()
        )()
        async with phone(near_responder.user) as p:
            await p.send(type="ack", id="a", incident_id=later.pk)
            await p.receive_type("ok")
            await p.send(type="resume", id="r", last_event_id=cursor)
            alert = await p.receive_type("incident.alert")
            assert (alert["incident"]["id"], alert["replay"]) == (lost.pk, True)
            assert (await p.receive_type("resumed"))["count"] == 1
            # Acked now: it never comes again.
            await p.send(type="ack", id="b", incident_id=lost.pk)
            await p.receive_type("ok")
            await p.send(type="resume", id="r2", last_event_id=cursor)
            assert (await p.receive_type("resumed"))["count"] == 0

    run(scenario)


def test_an_unacked_alert_is_sent_again_at_the_heartbeat_until_acked(settings, near_responder):
    """No socket closed, so the phone does not know to resume: the heartbeat
    re-sends what the member has not acked, as a live alert."""
    settings.WS_HEARTBEAT_S = 0.1
    settings.WS_IDLE_CLOSE_S = 5
    settings.WS_REDELIVER_AFTER_S = 0

    async def scenario():
        lost = await raise_incident()  # while no socket listens: the live frame is gone
        async with phone(near_responder.user) as p:
            frame = await p.receive_type("incident.alert", timeout=2)
            assert frame["incident"]["id"] == lost.pk
            assert "replay" not in frame  # a live alert: the phone rings
            await p.send(type="ack", id="a", incident_id=lost.pk)
            while (f := await p.receive(timeout=2))["type"] != "ok":
                assert f["type"] in {"ping", "incident.alert"}
            for _ in range(4):  # several heartbeats: pings only
                assert (await p.receive(timeout=1))["type"] == "ping"

    run(scenario)


def test_an_alert_written_to_the_socket_waits_for_its_ack_before_it_is_sent_again(
    settings, near_responder
):
    """The frame is in the socket and its ack on the way (a city-wide alert's
    acks lag its frames by seconds): the heartbeat re-sending it doubled the
    frames of the wave. Sent again only once ``WS_REDELIVER_WRITTEN_S`` has
    passed with no ack (a receipt lost on the way back)."""
    settings.WS_HEARTBEAT_S = 0.1
    settings.WS_IDLE_CLOSE_S = 5
    settings.WS_REDELIVER_AFTER_S = 0
    settings.WS_REDELIVER_WRITTEN_S = 3.0

    async def scenario():
        async with phone(near_responder.user) as p:
            incident = await raise_incident()
            frame = await p.receive_type("incident.alert")
            written = time.monotonic()
            assert frame["incident"]["id"] == incident.pk
            while time.monotonic() - written < 1.5:  # fifteen heartbeats: pings only
                assert (await p.receive(timeout=1))["type"] == "ping"
            again = await p.receive_type("incident.alert", timeout=5)
            assert again["id"] == frame["id"]
            # The server noted it a little before the phone read it.
            assert time.monotonic() - written >= 2.0

    run(scenario)


# --- duty, heartbeat, revocation ------------------------------------------------------------


def test_a_duty_message_moves_the_socket_in_and_out_of_the_unit_group(near_responder):
    async def scenario():
        layer = get_channel_layer()
        async with phone(near_responder.user) as p:
            await layer.group_send(
                member_group(near_responder.pk), {"type": "member.duty", "on_duty": False}
            )
            assert (await p.receive_type("duty"))["on_duty"] is False
            await raise_incident()
            assert await p.nothing()
            await layer.group_send(
                member_group(near_responder.pk), {"type": "member.duty", "on_duty": True}
            )
            assert (await p.receive_type("duty"))["on_duty"] is True
            await raise_incident(lat=SPOT[0] + 0.0002)
            assert (await p.receive_type("incident.alert"))["dispatch"][
                "unit_id"
            ] == near_responder.unit_id

    run(scenario)


def test_a_member_who_clocks_out_stops_getting_alerts(near_responder):
    # Two more on duty, so the unit is still called after near_responder leaves.
    partner = near_responder.unit.members.select_related("user").exclude(pk=near_responder.pk).get()
    Member.objects.create(name="第三人", phone="13700000003", unit=partner.unit, on_duty=True)

    async def scenario():
        async with phone(near_responder.user) as p, phone(partner.user) as mate:
            await database_sync_to_async(member_set_duty)(member=near_responder, on_duty=False)
            await raise_incident()
            await mate.receive_type("incident.alert")
            frames = []
            while not await p.nothing():
                frames.append(await p.receive())
            assert "incident.alert" not in [f["type"] for f in frames]

    run(scenario)


def test_a_signed_out_session_closes_the_socket(near_responder):
    async def scenario():
        async with phone(near_responder.user) as p:
            await get_channel_layer().group_send(
                member_group(near_responder.pk), {"type": "member.session_end"}
            )
            error = await p.receive_type("error")
            assert error["code"] == "signed_out"
            assert (await p.close_frame())["code"] == CLOSE_UNAUTHENTICATED

    run(scenario)


def test_a_silent_socket_is_closed_after_the_idle_limit(settings, near_responder):
    settings.WS_HEARTBEAT_S = 0.1
    settings.WS_IDLE_CLOSE_S = 0.3

    async def scenario():
        async with phone(near_responder.user) as p:
            assert (await p.receive(timeout=1))["type"] == "ping"
            close = await p.close_frame(timeout=2)
            assert close["code"] == CLOSE_IDLE

    run(scenario)


def test_a_socket_that_answers_pings_stays_open(settings, near_responder):
    settings.WS_HEARTBEAT_S = 0.1
    # An idle limit of a few beats, not 0.3 s: a stall of the loaded test
    # process between a pong and the next beat's check would close it.
    settings.WS_IDLE_CLOSE_S = 1.0

    async def scenario():
        async with phone(near_responder.user) as p:
            for _ in range(15):  # 1.5 s, past the idle limit
                frame = await p.receive(timeout=1)
                assert frame["type"] == "ping"
                await p.send(type="pong", id=None)
            await p.send(type="ping", id="still")
            assert (await p.receive_type("pong"))["id"] == "still"

    run(scenario)


def test_a_member_deactivated_while_connected_is_closed_at_the_next_heartbeat(
    settings, near_responder
):
    settings.WS_HEARTBEAT_S = 0.1
    settings.WS_IDLE_CLOSE_S = 5

    async def scenario():
        async with phone(near_responder.user) as p:
            assert (await p.receive(timeout=1))["type"] == "ping"
            await database_sync_to_async(Member.objects.filter(pk=near_responder.pk).update)(
                is_active=False
            )
            error = await p.receive_type("error", timeout=1)
            assert error["code"] == "revoked"
            assert (await p.close_frame())["code"] == CLOSE_FORBIDDEN

    run(scenario)


def test_a_deleted_session_closes_the_socket_at_the_next_heartbeat(settings, near_responder):
    from django.contrib.sessions.models import Session

    settings.WS_HEARTBEAT_S = 0.1
    settings.WS_IDLE_CLOSE_S = 5

    async def scenario():
        async with phone(near_responder.user) as p:
            assert (await p.receive(timeout=1))["type"] == "ping"
            await database_sync_to_async(lambda: Session.objects.all().delete())()
            assert (await p.receive_type("error", timeout=1))["code"] == "revoked"
            assert (await p.close_frame())["code"] == CLOSE_FORBIDDEN

    run(scenario)


def test_an_expired_session_closes_the_socket_at_the_next_heartbeat(settings, near_responder):
    import datetime as dt

    from django.contrib.sessions.models import Session
    from django.utils import timezone

    settings.WS_HEARTBEAT_S = 0.1
    settings.WS_IDLE_CLOSE_S = 5

    async def scenario():
        async with phone(near_responder.user) as p:
            assert (await p.receive(timeout=1))["type"] == "ping"
            expired = timezone.now() - dt.timedelta(seconds=1)
            await database_sync_to_async(Session.objects.update)(expire_date=expired)
            assert (await p.receive_type("error", timeout=1))["code"] == "revoked"
            assert (await p.close_frame())["code"] == CLOSE_FORBIDDEN

    run(scenario)


def test_frames_are_json_objects_with_type_and_id(near_responder):
    async def scenario():
        async with phone(near_responder.user) as p:
            await raise_incident()
            raw = await p.ws.receive_from()
            frame = json.loads(raw)
            assert {"type", "id"} <= set(frame)

    run(scenario)
