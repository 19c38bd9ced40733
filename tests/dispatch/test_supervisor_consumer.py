"""The supervisors' live feed: scoped by region, one incident watched in detail."""

from __future__ import annotations

from contextlib import asynccontextmanager

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from config.asgi import application
from dispatch import notify, services
from dispatch.consumers import CLOSE_FORBIDDEN
from dispatch.models import Delivery, Incident, NotificationAttempt
from tests.dispatch.conftest import SPOT
from tests.factories import StaffFactory, UserFactory
from units.models import StaffProfile

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
        yield ws
    finally:
        await ws.disconnect()


async def raise_incident() -> Incident:
    result = await database_sync_to_async(services.incident_create)(
        kind="knife", lat=SPOT[0], lon=SPOT[1], source=Incident.Source.CAD
    )
    return result.incident


async def frames_until_quiet(ws) -> list[dict]:
    frames = []
    while not await ws.receive_nothing(timeout=0.3):
        frames.append(await ws.receive_json_from())
    return frames


def test_a_district_station_sees_its_incidents_and_not_another_districts(
    service_area, near_responder, tianhe, haizhu
):
    tianhe_station = StaffFactory(role=StaffProfile.Role.POLICE_STATION, region=tianhe).user
    haizhu_station = StaffFactory(role=StaffProfile.Role.POLICE_STATION, region=haizhu).user

    async def scenario():
        async with feed(tianhe_station) as mine, feed(haizhu_station) as other:
            assert (await mine.receive_json_from())["group"] == "region.440106"
            assert (await other.receive_json_from())["group"] == "region.440105"
            incident = await raise_incident()
            opened = await mine.receive_json_from()
            assert opened["type"] == "incident.opened"
            assert opened["incident"]["id"] == incident.pk
            assert await other.receive_nothing(timeout=0.3)

    async_to_sync(scenario)()


def test_a_city_admin_sees_every_incident_once(service_area, near_responder, city):
    city_admin = StaffFactory(role=StaffProfile.Role.CITY_ADMIN, region=city).user

    async def scenario():
        async with feed(city_admin) as ws:
            assert (await ws.receive_json_from())["group"] == "supervisors"
            incident = await raise_incident()
            frames = await frames_until_quiet(ws)
            opened = [f for f in frames if f["type"] == "incident.opened"]
            assert [f["incident"]["id"] for f in opened] == [incident.pk]

    async_to_sync(scenario)()


def test_watching_an_incident_streams_its_updates(service_area, near_responder, tianhe):
    station = StaffFactory(role=StaffProfile.Role.POLICE_STATION, region=tianhe).user

    async def scenario():
        async with feed(station) as ws:
            await ws.receive_json_from()
            incident = await raise_incident()
            await frames_until_quiet(ws)
            await ws.send_json_to({"type": "watch", "id": 7, "incident_id": incident.pk})
            ok = await ws.receive_json_from()
            assert ok["type"] == "ok" and ok["id"] == 7
            assert ok["incident"]["id"] == incident.pk
            await database_sync_to_async(services.dispatch_act)(
                incident_id=incident.pk, member=near_responder, action="accept"
            )
            frames = await frames_until_quiet(ws)
            accepted = [f for f in frames if f.get("event") == "accepted"]
            # Once from the incident group, once from the region feed.
            assert len(accepted) == 2 and all(f["responded_at"] for f in accepted)
            # Detail only watchers get: the responder's position on the way.
            await database_sync_to_async(services.member_location_record)(
                member=near_responder, incident_id=incident.pk, lat=SPOT[0], lon=SPOT[1]
            )
            positions = await frames_until_quiet(ws)
            assert [f["type"] for f in positions] == ["responder.location"], positions
            assert positions[0]["incident_id"] == incident.pk

            await ws.send_json_to({"type": "unwatch", "id": 8, "incident_id": incident.pk})
            assert (await ws.receive_json_from())["type"] == "ok"
            await database_sync_to_async(services.member_location_record)(
                member=near_responder, incident_id=incident.pk, lat=SPOT[0], lon=SPOT[1]
            )
            assert await ws.receive_nothing(timeout=0.3)

    async_to_sync(scenario)()


def test_watching_an_incident_outside_the_scope_is_refused(service_area, near_responder, haizhu):
    other = StaffFactory(role=StaffProfile.Role.POLICE_STATION, region=haizhu).user

    async def scenario():
        incident = await raise_incident()
        async with feed(other) as ws:
            await ws.receive_json_from()
            await ws.send_json_to({"type": "watch", "id": 1, "incident_id": incident.pk})
            error = await ws.receive_json_from()
            assert error["type"] == "error" and error["code"] == "not_found"
            await ws.send_json_to({"type": "watch", "id": 2, "incident_id": "x"})
            assert (await ws.receive_json_from())["code"] == "bad_field"
            await ws.send_json_to({"type": "ping", "id": 3})
            assert (await ws.receive_json_from())["type"] == "pong"

    async_to_sync(scenario)()


def test_a_member_or_plain_user_cannot_open_the_feed(near_responder):
    users = [near_responder.user, UserFactory()]

    async def scenario():
        for user in users:
            async with feed(user) as ws:
                error = await ws.receive_json_from()
                assert error["code"] == "forbidden"
                closed = await ws.receive_output()
                assert closed == {"type": "websocket.close", "code": CLOSE_FORBIDDEN}

    async_to_sync(scenario)()


def _sent(delivery, channel: str, ref: str):
    """The chain sent this member a message on ``channel``; its receipt is due."""
    return NotificationAttempt.objects.create(
        delivery=delivery, channel=channel, status=NotificationAttempt.Status.SENT, provider_ref=ref
    )


def test_receipts_of_every_channel_reach_the_area_feed_after_commit_with_their_seq(
    service_area, near_responder, tianhe, haizhu, settings
):
    """A member's app receipt and the providers' SMS / voice receipts each reach
    the station's feed as one frame (not watching: the area's feed alone) with its
    seq, and a board that missed them gets them on resume; another area, nothing."""
    # The chain's own timed steps stay out: this test sends as a provider would.
    settings.NOTIFY_CHAIN = []
    station = StaffFactory(role=StaffProfile.Role.POLICE_STATION, region=tianhe).user
    other = StaffFactory(role=StaffProfile.Role.POLICE_STATION, region=haizhu).user

    async def scenario():
        async with feed(station) as ws, feed(other) as far:
            await ws.receive_json_from()
            await far.receive_json_from()
            incident = await raise_incident()
            await frames_until_quiet(ws)
            partner = await database_sync_to_async(
                lambda: (
                    Delivery.objects.filter(dispatch__incident=incident)
                    .exclude(member=near_responder)
                    .select_related("member")
                    .get()
                )
            )()
            mine = await database_sync_to_async(
                lambda: Delivery.objects.get(dispatch__incident=incident, member=near_responder)
            )()
            sms = await database_sync_to_async(_sent)(partner, "sms", "sms-1")
            voice = await database_sync_to_async(_sent)(mine, "voice", "call-1")
            seq_before = await database_sync_to_async(
                lambda: Incident.objects.get(pk=incident.pk).last_seq
            )()

            await database_sync_to_async(services.delivery_ack)(
                incident_id=incident.pk, member=near_responder
            )
            await database_sync_to_async(notify.receipt_record)(
                notify.Receipt(
                    channel="sms",
                    provider_ref="sms-1",
                    phone=partner.member.phone,
                    reached=False,
                    error_code="MOBILE_NOT_ON_SERVICE",
                )
            )
            await database_sync_to_async(notify.receipt_record)(
                notify.Receipt(
                    channel="voice",
                    provider_ref="call-1",
                    phone=near_responder.phone,
                    reached=True,
                    answered=True,
                )
            )
            frames = [f for f in await frames_until_quiet(ws) if f.get("event")]
            assert [(f["event"], f["member_id"], f["data"].get("channel")) for f in frames] == [
                ("delivered", near_responder.pk, None),
                ("notify_failed", partner.member_id, "sms"),
                ("reached", near_responder.pk, "voice"),
            ]
            assert [f["seq"] for f in frames] == [seq_before + 1, seq_before + 2, seq_before + 3]
            assert frames[1]["data"]["error_code"] == "MOBILE_NOT_ON_SERVICE"
            assert all(f["unit_id"] == near_responder.unit_id for f in frames)
            assert await far.receive_nothing(timeout=0.3)

            # A board that missed them: replayed on resume, then the whole state
            # with each member's channels.
            await ws.send_json_to({"type": "resume", "id": 3, "seqs": {incident.pk: seq_before}})
            frames = await frames_until_quiet(ws)
            replayed = [f["event"] for f in frames if f.get("replay")]
            assert replayed == ["delivered", "notify_failed", "reached"]
            state = next(f for f in frames if f["type"] == "incident.state")
            assert sorted(map(tuple, state["reach"])) == sorted(
                [
                    (near_responder.pk, near_responder.unit_id, "app", "reached"),
                    (near_responder.pk, near_responder.unit_id, "voice", "reached"),
                    (partner.member_id, near_responder.unit_id, "sms", "failed"),
                ]
            )
            (unit,) = state["units"]
            assert (unit["channels"], unit["failed_channels"]) == (["app", "voice"], ["sms"])
        await database_sync_to_async(sms.refresh_from_db)()
        await database_sync_to_async(voice.refresh_from_db)()
        assert sms.status == NotificationAttempt.Status.FAILED and voice.reached_at is not None

    async_to_sync(scenario)()
