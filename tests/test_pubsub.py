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
