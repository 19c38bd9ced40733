"""A phone's receipt taken from daphne's protocol there and then
(``MemberConsumer.receive_now``): a city-wide alert brings a socket daphne
5,000 receipts within a second, and through the consumer's task each was a
queue wake-up, an ``asyncio.wait`` and a new receive task (bench/city.py
--profile). Taken only while the consumer waits with nothing queued and no
handler runs; anything it does not read plainly goes the usual way, in order."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest

from config.pubsub import _Inbox
from dispatch import consumers
from dispatch.consumers import MemberConsumer, _AckBatch
from tests.daphne_socket import daphne_socket

pytestmark = pytest.mark.database_independent


def _member_socket() -> MemberConsumer:
    consumer = MemberConsumer()
    consumer.member = SimpleNamespace(pk=5, unit_id=9)
    consumer.last_heard = 0.0
    return consumer


def _pending() -> list:
    batch = consumers._batch_for_loop(_AckBatch)
    pending = [(s, i, a.incident_id, a.seen) for s, i, a in batch.pending]
    if batch.task is not None:
        batch.task.cancel()  # the store would need a database
    batch.pending.clear()
    return pending


def test_daphne_offers_a_text_frame_to_the_waiting_consumer():
    """Fails before: daphne queued every frame for the consumer's task."""

    async def scenario():
        with daphne_socket() as (_lean, protocol, _transport):
            inbox = protocol.application_queue = _Inbox()
            taken = []
            inbox.taker = lambda message: taken.append(message) or True
            reader = asyncio.ensure_future(inbox.get())
            await asyncio.sleep(0)
            text = '{"type": "ack", "incident_id": 3}'
            protocol.onMessage(text.encode(), False)
            assert taken == [{"type": "websocket.receive", "text": text}]
            assert inbox.qsize() == 0 and not reader.done()
            # Binary frames, and any frame while nobody waits, are queued.
            protocol.client_addr = ("127.0.0.1", 1)  # daphne's debug line names it
            protocol.onMessage(b"\x00", True)
            queued = await asyncio.wait_for(reader, 1)
            assert queued == {"type": "websocket.receive", "bytes": b"\x00"}

    asyncio.run(scenario())


def test_an_ack_or_seen_joins_the_process_batch_without_a_task():
    async def scenario():
        socket = _member_socket()
        ack = {"type": "ack", "id": "a1", "incident_id": 41}
        assert socket.receive_now({"type": "websocket.receive", "text": json.dumps(ack)})
        seen = {"type": "seen", "incident_id": 41}
        assert socket.receive_now({"type": "websocket.receive", "text": json.dumps(seen)})
        assert socket.last_heard > 0
        assert _pending() == [(socket, "a1", 41, False), (socket, None, 41, True)]

    asyncio.run(scenario())


def test_a_pong_is_heard_and_nothing_else():
    async def scenario():
        socket = _member_socket()
        assert socket.receive_now({"type": "websocket.receive", "text": '{"type": "pong"}'})
        assert socket.last_heard > 0
        assert _pending() == []

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "action", "incident_id": 41, "action": "accept"}',  # a handler's, in order
        '{"type": "ack", "incident_id": "x"}',  # its error frame
        '{"type": "ack"',  # not JSON: its error frame
        "[1]",
        "x" * 70_000,  # too large
    ],
)
def test_anything_else_goes_the_usual_way(text):
    async def scenario():
        socket = _member_socket()
        assert socket.receive_now({"type": "websocket.receive", "text": text}) is False
        assert socket.last_heard == 0.0
        assert _pending() == []

    asyncio.run(scenario())


@pytest.mark.parametrize("state", ["handling", "closing", "signed_out"])
def test_a_busy_closing_or_unsigned_socket_leaves_it_to_its_task(state):
    async def scenario():
        socket = _member_socket()
        if state == "signed_out":
            socket.member = None
        else:
            setattr(socket, state, True)
        text = '{"type": "ack", "incident_id": 41}'
        assert socket.receive_now({"type": "websocket.receive", "text": text}) is False
        assert _pending() == []

    asyncio.run(scenario())


def test_a_member_socket_is_the_taker_of_its_inbox_while_it_runs(monkeypatch):
    """The consumer names itself to the inbox daphne gave it, and not after."""
    from channels.generic.websocket import AsyncJsonWebsocketConsumer

    during = []

    async def runs(self, scope, receive, send):
        during.append(receive.__self__.taker)

    monkeypatch.setattr(AsyncJsonWebsocketConsumer, "__call__", runs)

    async def scenario():
        inbox = _Inbox()
        socket = MemberConsumer()
        await socket({"type": "websocket"}, inbox.get, None)
        assert during == [socket.receive_now]
        assert inbox.taker is None

    asyncio.run(scenario())
