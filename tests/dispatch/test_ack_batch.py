"""Delivery receipts from every member socket of a process are stored together
(``_AckBatch`` -> ``services.deliveries_ack``): a city-wide alert's thousands of
acks cost the queries of one, each phone still learns whether its ack was the
first, and the timeline gets one ``delivered``/``seen`` event per first time."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dispatch import services
from dispatch.consumers import _AckBatch
from dispatch.events import member_group
from dispatch.models import Delivery, Incident, IncidentEvent
from tests.dispatch.conftest import SPOT
from tests.dispatch.test_consumers import phone, raise_incident, run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _slow_heartbeat(settings):
    # No heartbeat query may fall into a counted window.
    settings.WS_HEARTBEAT_S = 20
    settings.WS_HEARTBEAT_SLICE_S = 20  # one slice: no socket beats within a test
    settings.WS_IDLE_CLOSE_S = 60


async def _queries_of(step) -> int:
    """Queries the consumers' database thread (the test thread) runs during ``step``."""
    captured = CaptureQueriesContext(connection)
    await database_sync_to_async(captured.__enter__)()
    try:
        await step()
    finally:
        await database_sync_to_async(captured.__exit__)(None, None, None)
    return await database_sync_to_async(lambda: len(captured))()


def _partner(member):
    return member.unit.members.select_related("user").exclude(pk=member.pk).get()


def test_acks_of_many_phones_cost_the_queries_of_one(near_responder):
    partner = _partner(near_responder)
    ids: dict[str, int] = {}

    async def scenario():
        async with phone(near_responder.user) as p, phone(partner.user) as mate:
            first = await raise_incident()
            await p.receive_type("incident.alert")
            await mate.receive_type("incident.alert")

            async def one_ack():
                await p.send(type="ack", id="a", incident_id=first.pk)
                assert (await p.receive_type("ok"))["recorded"] is True

            alone = await _queries_of(one_ack)

            second = await raise_incident()
            ids["second"] = second.pk
            await p.receive_type("incident.alert")
            await mate.receive_type("incident.alert")

            async def both_ack():
                await p.send(type="ack", id="b", incident_id=second.pk)
                await mate.send(type="ack", id="c", incident_id=second.pk)
                await p.send(type="ack", id="d", incident_id=second.pk)  # again, same batch
                oks = [await p.receive_type("ok"), await p.receive_type("ok")]
                assert [(o["id"], o["recorded"]) for o in oks] == [("b", True), ("d", False)]
                assert await mate.receive_type("ok") == {"type": "ok", "id": "c", "recorded": True}

            together = await _queries_of(both_ack)
            assert together == alone

    run(scenario)
    for member in (near_responder, partner):
        delivery = Delivery.objects.get(member=member, dispatch__incident_id=ids["second"])
        assert delivery.delivered_at is not None


def test_a_batch_records_one_event_per_first_time_with_consecutive_seqs(near_responder):
    partner = _partner(near_responder)
    ids: dict[str, int] = {}

    async def scenario():
        async with phone(near_responder.user) as p, phone(partner.user) as mate:
            incident = await raise_incident()
            ids["incident"] = incident.pk
            await p.receive_type("incident.alert")
            await mate.receive_type("incident.alert")
            for message in (
                {"type": "ack", "id": 1},
                {"type": "seen", "id": 2},
                {"type": "seen", "id": 3},
            ):
                await p.send(incident_id=incident.pk, **message)
            await mate.send(type="ack", id=4, incident_id=incident.pk)
            recorded = [(await p.receive_type("ok"))["recorded"] for _ in range(3)]
            assert recorded == [True, True, False]
            assert (await mate.receive_type("ok"))["recorded"] is True

    run(scenario)
    events = list(
        IncidentEvent.objects.filter(incident_id=ids["incident"])
        .order_by("seq")
        .values_list("seq", "type", "member_id")
    )
    seqs = [seq for seq, _t, _m in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    receipts = [(t, m) for _s, t, m in events if t in {"delivered", "seen"}]
    # Two sockets' frames interleave; each phone's own come in its order.
    assert sorted(receipts) == sorted(
        [("delivered", near_responder.pk), ("seen", near_responder.pk), ("delivered", partner.pk)]
    )
    assert [t for t, m in receipts if m == near_responder.pk] == ["delivered", "seen"]


def test_a_tap_right_after_an_ack_comes_after_it_on_the_timeline(near_responder):
    ids: dict[str, int] = {}

    async def scenario():
        async with phone(near_responder.user) as p:
            incident = await raise_incident()
            ids["incident"] = incident.pk
            await p.receive_type("incident.alert")
            await p.send(type="ack", id="a", incident_id=incident.pk)
            await p.send(type="accept", id="b", incident_id=incident.pk)
            answers = {}
            while len(answers) < 2:
                frame = await p.receive()
                if frame["type"] == "ok":
                    answers[frame["id"]] = frame
            assert answers["a"]["recorded"] is True

    run(scenario)
    types = list(
        IncidentEvent.objects.filter(
            incident_id=ids["incident"], type__in=["delivered", "accepted"]
        )
        .order_by("seq")
        .values_list("type", flat=True)
    )
    assert types == ["delivered", "accepted"]


def test_deliveries_ack_answers_each_receipt_in_order(near_responder):
    partner = _partner(near_responder)
    incident = services.incident_create(
        kind="knife", lat=SPOT[0], lon=SPOT[1], source=Incident.Source.CAD
    ).incident
    ack = services.DeliveryAck
    firsts = services.deliveries_ack(
        acks=[
            ack(incident_id=incident.pk, member=partner, seen=True),
            ack(incident_id=2**70, member=near_responder),  # names no incident
            ack(incident_id=incident.pk, member=near_responder),
            ack(incident_id=incident.pk, member=partner),  # delivered came with seen
            ack(incident_id=incident.pk, member=near_responder),
        ]
    )
    assert firsts == [True, False, True, False, False]
    seen = Delivery.objects.get(member=partner, dispatch__incident=incident)
    # Seen implies delivered, at the same time.
    assert seen.seen_at is not None and seen.delivered_at == seen.seen_at
    # Later, alone: still first time only.
    assert services.delivery_ack(incident_id=incident.pk, member=near_responder) is False
    assert services.delivery_ack(incident_id=incident.pk, member=near_responder, seen=True)


def test_a_receipt_without_an_id_is_stored_and_not_answered(near_responder):
    """The phone's automatic receipt carries no id: nothing waits for its answer
    (an alert stays unacked until one is stored, and the heartbeat sends it
    again). A city-wide alert's ``ok`` frames were as many as its alerts."""
    ids: dict[str, int] = {}

    async def scenario():
        async with phone(near_responder.user) as p:
            incident = await raise_incident()
            ids["incident"] = incident.pk
            await p.receive_type("incident.alert")
            await p.send(type="ack", incident_id=incident.pk)
            await p.send(type="seen", id=None, incident_id=incident.pk)
            assert await _stored_within(2.0, near_responder, incident.pk), "not stored"
            await asyncio.sleep(0.2)  # the seen's batch, if apart
            await p.send(type="ping", id="after")
            assert await p.receive() == {"type": "pong", "id": "after"}

    run(scenario)
    delivery = Delivery.objects.get(member=near_responder, dispatch__incident_id=ids["incident"])
    assert delivery.seen_at is not None


@database_sync_to_async
def _delivered(member, incident_id: int) -> bool:
    return Delivery.objects.filter(
        member=member, dispatch__incident_id=incident_id, delivered_at__isnull=False
    ).exists()


async def _stored_within(seconds: float, member, incident_id: int) -> bool:
    """Whether ``member``'s receipt for the incident is stored within ``seconds``."""
    for _ in range(round(seconds / 0.02)):
        if await _delivered(member, incident_id):
            return True
        await asyncio.sleep(0.02)
    return False


@contextlib.asynccontextmanager
async def _alerts_being_written(member, alert: dict):
    """This process keeps writing alert frames (the same alert to ``member``'s
    socket, every 20 ms), as while a city-wide wave goes out."""
    layer = get_channel_layer()
    stop = asyncio.Event()

    async def wave_goes_on():
        while not stop.is_set():
            await layer.group_send(member_group(member.pk), {"type": "push", "payload": alert})
            await asyncio.sleep(0.02)

    wave = asyncio.ensure_future(wave_goes_on())
    try:
        yield
    finally:
        stop.set()
        await wave


def test_receipts_wait_while_this_process_still_writes_alerts(
    near_responder, settings, monkeypatch
):
    """A city-wide alert takes a daphne seconds to write to its sockets, and
    their receipts come back meanwhile: stored after the writes, not among
    them, and ``WS_RECEIPT_HOLD_S`` at most (bench/city.py)."""
    settings.WS_RECEIPT_HOLD_S = 5.0
    # Writes every 20 ms; "quiet" only after 0.5 s without one. At 0.1 s a
    # stall of the loaded test process (GC, a starved core) looked quiet.
    monkeypatch.setattr(_AckBatch, "quiet_s", 0.5)
    partner = _partner(near_responder)

    async def scenario():
        async with phone(near_responder.user) as p, phone(partner.user) as mate:
            incident = await raise_incident()
            await p.receive_type("incident.alert")
            alert = await mate.receive_type("incident.alert")
            async with _alerts_being_written(partner, alert):
                await asyncio.sleep(0.1)
                await p.send(type="ack", incident_id=incident.pk)
                await asyncio.sleep(1.0)
                stored_during = await _delivered(near_responder, incident.pk)
            assert await _stored_within(3.0, near_responder, incident.pk), (
                "the receipt was not stored after the writes"
            )
            assert stored_during is False

    run(scenario)


def test_a_receipt_is_held_no_longer_than_the_hold(near_responder, settings):
    settings.WS_RECEIPT_HOLD_S = 0.3
    partner = _partner(near_responder)

    async def scenario():
        async with phone(near_responder.user) as p, phone(partner.user) as mate:
            incident = await raise_incident()
            await p.receive_type("incident.alert")
            alert = await mate.receive_type("incident.alert")
            async with _alerts_being_written(partner, alert):
                await p.send(type="ack", incident_id=incident.pk)
                # 3 s of writes, longer than the hold.
                assert await _stored_within(3.0, near_responder, incident.pk), (
                    "the receipt waited for the writes past WS_RECEIPT_HOLD_S"
                )

    run(scenario)


def test_a_resume_replaying_alerts_does_not_hold_the_receipts(near_responder, settings):
    """Only a wave's live frames hold receipts: in a reconnect storm every
    resume replays the unacked alerts, and receipts held behind them kept
    those alerts unacked, to be replayed again."""
    settings.WS_RECEIPT_HOLD_S = 5.0

    async def scenario():
        async with phone(near_responder.user) as p:
            incident = await raise_incident()
            await p.receive_type("incident.alert")
            await asyncio.sleep(0.3)  # the live frame is past
            stop = asyncio.Event()

            async def resumes():
                while not stop.is_set():
                    await p.send(type="resume", id="r", last_event_id=0)
                    await asyncio.sleep(0.05)

            storm = asyncio.ensure_future(resumes())
            await asyncio.sleep(0.2)
            await p.send(type="ack", incident_id=incident.pk)
            try:
                assert await _stored_within(1.0, near_responder, incident.pk), (
                    "the receipt waited behind replays"
                )
            finally:
                stop.set()
                await storm

    run(scenario)
