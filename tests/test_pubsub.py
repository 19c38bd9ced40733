"""A socket's inbox in the batched pub/sub layer (config/pubsub.py): what
channels_redis's reader puts in comes out once, in order, even when the
consumer reading it is cancelled just after it was woken; and it is small."""

from __future__ import annotations

import asyncio
import sys
import tracemalloc

from config.pubsub import _Inbox


def test_messages_come_out_in_order_to_a_waiting_reader():
    async def scenario():
        inbox = _Inbox()
        reader = asyncio.ensure_future(inbox.get())
        await asyncio.sleep(0)
        inbox.put_nowait("a")
        inbox.put_nowait("b")
        assert await reader == "a"
        assert await inbox.get() == "b"
        assert inbox.qsize() == 0

    asyncio.run(scenario())


def test_a_reader_cancelled_after_it_was_woken_leaves_the_message():
    async def scenario():
        inbox = _Inbox()
        reader = asyncio.ensure_future(inbox.get())
        await asyncio.sleep(0)
        inbox.put_nowait("alert")
        reader.cancel()  # woken, but cancelled before it ran (a socket closing)
        await asyncio.gather(reader, return_exceptions=True)
        assert reader.cancelled()
        assert await asyncio.wait_for(inbox.get(), 1) == "alert"

    asyncio.run(scenario())


def test_an_inbox_is_a_tenth_of_an_asyncio_queue():
    def size(make) -> float:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        kept = [make() for _ in range(1000)]
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        assert len(kept) == 1000
        return (after - before) / 1000

    async def scenario():
        return size(_Inbox), size(asyncio.Queue)

    inbox, queue = asyncio.run(scenario())
    assert inbox * 10 <= queue, (inbox, queue)
    assert sys.getsizeof(_Inbox()) < 100


def test_a_group_message_is_decoded_once_for_all_its_sockets():
    """channels_redis decoded a group's message once per socket: a city-wide
    alert's frame 5,000 times per daphne, each a tree of new objects."""
    from config.pubsub import BatchedPubSubChannelLayer

    async def scenario():
        layer = BatchedPubSubChannelLayer(hosts=["redis://127.0.0.1:1"])  # never connected
        loop_layer = layer._get_layer()
        sockets = [f"{loop_layer.prefix}specific.{i}" for i in range(3)]
        for channel in sockets:
            loop_layer.channels[channel] = _Inbox()
        group = loop_layer._get_group_channel_name("unit-7")
        loop_layer.groups[group] = set(sockets)
        sent = {"type": "push", "text": '{"type": "incident.alert"}'}
        loop_layer._get_shard(group)._receive_message(
            {"channel": group.encode(), "data": layer.serialize(sent)}
        )
        got = [await asyncio.wait_for(loop_layer.receive(channel), 1) for channel in sockets]
        assert got[0] == sent
        assert got[1] is got[0] and got[2] is got[0]

    asyncio.run(scenario())


def test_an_alert_still_queued_for_a_socket_is_seen_as_on_its_way():
    """The heartbeat does not send again an alert whose frame waits in the
    socket's inbox (a city-wide alert takes seconds to reach every socket:
    re-sending it then made copies, bench/city.py)."""
    from config.pubsub import BatchedPubSubChannelLayer
    from dispatch.consumers import _alert_ids, _queued_frames

    async def scenario():
        layer = BatchedPubSubChannelLayer(hosts=["redis://127.0.0.1:1"])  # never connected
        loop_layer = layer._get_layer()
        channel = f"{loop_layer.prefix}specific.1"
        loop_layer.channels[channel] = _Inbox()
        alert = {"type": "incident.alert", "id": 9, "incident": {"id": 41}}
        update = {"type": "incident.update", "id": 10, "incident_id": 41}
        loop_layer.channels[channel].put_nowait({"type": "member.duty", "on_duty": True})
        loop_layer.channels[channel].put_nowait(
            {"type": "push", "texts": ["{}", "{}"], "payloads": [update, alert]}
        )
        assert set(_alert_ids(_queued_frames(layer, channel))) == {41}
        assert await loop_layer.receive(channel) == {"type": "member.duty", "on_duty": True}
        await loop_layer.receive(channel)
        assert set(_alert_ids(_queued_frames(layer, channel))) == set()
        assert list(_queued_frames(layer, "no-such-channel")) == []

    asyncio.run(scenario())


def test_a_waiting_socket_takes_its_message_from_the_reader_directly():
    """A city-wide alert reaches ~5,000 sockets of a daphne in one reader
    callback: written there by each consumer's ``write_now``, not through three
    task steps per socket (config.pubsub ``write_directly``)."""

    async def scenario():
        inbox = _Inbox()
        written = []
        inbox.taker = lambda message: written.append(message) or True
        reader = asyncio.ensure_future(inbox.get())
        await asyncio.sleep(0)
        inbox.offer({"type": "push", "text": "a"})
        assert written == [{"type": "push", "text": "a"}]
        assert inbox.qsize() == 0 and not reader.done()
        reader.cancel()

    asyncio.run(scenario())


def test_a_message_the_writer_refuses_or_fails_on_is_queued():
    async def scenario():
        inbox = _Inbox()
        inbox.taker = lambda message: False  # a handler runs, or not a push
        reader = asyncio.ensure_future(inbox.get())
        await asyncio.sleep(0)
        inbox.offer({"type": "member.duty"})
        assert await asyncio.wait_for(reader, 1) == {"type": "member.duty"}

        def broken(message):
            raise RuntimeError("socket gone wrong")

        inbox.taker = broken
        reader = asyncio.ensure_future(inbox.get())
        await asyncio.sleep(0)
        inbox.offer({"type": "push", "text": "alert"})
        assert await asyncio.wait_for(reader, 1) == {"type": "push", "text": "alert"}

    asyncio.run(scenario())


def test_a_message_behind_a_queued_one_is_queued_too_in_order():
    """Frames keep their order: while the consumer has not taken (or is still
    handling) what is queued, nothing is written past it."""

    async def scenario():
        inbox = _Inbox()
        written = []
        inbox.taker = lambda message: written.append(message) or True
        inbox.offer("first")  # nobody waits yet: queued
        inbox.offer("second")
        assert written == []
        reader = asyncio.ensure_future(inbox.get())
        await asyncio.sleep(0)
        # The reader took "first" and has not come back for more: no waiter.
        inbox.offer("third")
        assert written == []
        assert await reader == "first"
        assert [await inbox.get(), await inbox.get()] == ["second", "third"]

    asyncio.run(scenario())
