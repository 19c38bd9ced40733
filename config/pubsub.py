"""channels_redis's pub/sub layer, with a process's subscriptions batched.

Every socket subscribes three Redis channels as it opens (its own, its member
group, its unit group) and unsubscribes them as it closes. channels_redis sends
each as its own command, one at a time behind the shard's lock, each waiting
for a turn of an event loop busy with thousands of sockets: in a reconnect
storm (10,000 phones back after a proxy restart, ``bench/city.py``) the old
sockets' unsubscribes and the new ones' subscribes queued there, and phones
resumed at about 26 a second whatever the CPU.

Here the requests made while one command is on its way wait for it and then go
together, as one ``SUBSCRIBE``/``UNSUBSCRIBE`` of many channels, in the order
they were asked.

A socket's own channel is also unsubscribed however its consumer stopped
(``forget_channel``, called by the consumers as they end). channels_redis does
it only from a ``receive`` cancelled while it waits; channels stops a consumer
whose last receive has just returned a message, or has not started yet, and
such a channel stayed subscribed for the life of the process (67 of 1,000
phones in a reconnect storm).

And a socket's inbox is a small queue of our own (``_Inbox``) instead of an
``asyncio.Queue``, whose three deques take about 2.3 KB per socket before any
message arrives (memory per socket, ``bench/city.py``).

A group's message is decoded once, by the shard's reader, and the same dict
goes to every socket of the group: channels_redis decoded it again for each
(a city-wide alert's frame, ~5,000 times per daphne, each a tree of new
objects for the garbage collector). Consumers only read the messages they get
(``dispatch/consumers.py``; ``tests/test_pubsub.py`` checks they stay as sent).

And a consumer may take its messages straight from the reader
(``write_directly``): a pushed frame is then written to the socket there and
then, not through the consumer's task.

Built on channels_redis 4's layer and shard classes (pinned below 5 in
pyproject.toml); ``tests/dispatch/test_publish_after.py`` runs it against a real
Redis.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import Callable

from channels_redis import pubsub
from channels_redis.utils import _wrap_close

log = logging.getLogger(__name__)


class _BatchedShard(pubsub.RedisSingleShardConnection):
    def __init__(self, host, channel_layer) -> None:
        super().__init__(host, channel_layer)
        self._queued: list[tuple[str, str, asyncio.Future]] = []
        self._flusher: asyncio.Future | None = None

    async def subscribe(self, channel: str) -> None:
        await self._queue("subscribe", channel)

    async def unsubscribe(self, channel: str) -> None:
        # Queued, not waited for: a channel or group being left is read no more,
        # and a later subscribe of it is queued behind. A socket closing then
        # never waits for Redis: channels_redis's own clean-up awaited this from
        # a receive being cancelled, and a second cancel (daphne ending a closed
        # socket's consumer) logged a traceback per socket in a storm.
        self.unsubscribe_soon(channel)

    def unsubscribe_soon(self, channel: str) -> None:
        self._enqueue("unsubscribe", channel)

    async def _queue(self, op: str, channel: str) -> None:
        # Shielded: a caller cancelled (a socket closing) must not cancel the
        # command that carries other sockets' channels too.
        await asyncio.shield(self._enqueue(op, channel))

    def _enqueue(self, op: str, channel: str) -> asyncio.Future:
        done = asyncio.get_running_loop().create_future()
        # Read even if the caller has gone (cancelled): no "never retrieved" noise.
        done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._queued.append((op, channel, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())
        return done

    def _receive_message(self, message) -> None:
        if message is None:
            return
        name = message["channel"]
        if isinstance(name, bytes):
            name = name.decode()
        layer = self.channel_layer
        if name in layer.channels:
            layer.channels[name].offer(layer.channel_layer.deserialize(message["data"]))
        elif name in layer.groups:
            decoded = None
            for channel_name in layer.groups[name]:
                inbox = layer.channels.get(channel_name)
                if inbox is not None:
                    if decoded is None:
                        decoded = layer.channel_layer.deserialize(message["data"])
                    inbox.offer(decoded)

    async def _flush(self) -> None:
        while self._queued:
            batch, self._queued = self._queued, []
            try:
                async with self._lock:
                    self._ensure_redis()
                    self._ensure_receiver()
                    # Runs of one kind, in order: a channel unsubscribed then
                    # subscribed again within one batch ends subscribed.
                    for op, run in itertools.groupby(batch, key=lambda item: item[0]):
                        channels = list(dict.fromkeys(channel for _op, channel, _d in run))
                        if op == "subscribe":
                            todo = [c for c in channels if c not in self._subscribed_to]
                            if todo:
                                await self._pubsub.subscribe(*todo)
                                self._subscribed_to.update(todo)
                        else:
                            todo = [c for c in channels if c in self._subscribed_to]
                            if todo:
                                await self._pubsub.unsubscribe(*todo)
                                self._subscribed_to.difference_update(todo)
            except BaseException as exc:
                for _op, _channel, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for _op, _channel, done in batch:
                if not done.done():
                    done.set_result(None)


class _Inbox:
    """What channels_redis asks of a channel's queue (``put_nowait`` from the
    Redis reader, ``get`` from the one consumer reading it), in ~100 bytes.

    A message is kept until ``get`` takes it: a reader woken and then
    cancelled before it runs leaves the message for the next ``get``.
    """

    __slots__ = ("_items", "_waiter", "taker")

    def __init__(self) -> None:
        self._items: list = []
        self._waiter: asyncio.Future | None = None
        # The consumer's own handler for a message there and then: ``write_now``
        # for a channel's pushed frames (``BatchedPubSubChannelLayer.write_directly``),
        # ``receive_now`` for a socket's frames from the phone (config/server.py).
        self.taker: Callable[[dict], bool] | None = None

    def offer(self, item) -> None:
        """``item`` from the shard's reader (or daphne's protocol): handled by
        the consumer's taker there and then if it takes it, else queued for
        its ``get``.

        Only while the reader waits on an empty inbox: a message queued, or
        taken and not yet handled, goes first, so frames keep their order.
        """
        taker, waiter = self.taker, self._waiter
        if taker is not None and waiter is not None and not waiter.done():
            try:
                if taker(item):
                    return
            except Exception:
                # The queue is the way that always works: a taker's fault
                # must not lose the frame nor stop the reader's other sockets.
                log.exception("Handling a message directly failed; queued instead")
        self.put_nowait(item)

    def put_nowait(self, item) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self):
        while not self._items:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None
        return self._items.pop(0)

    def qsize(self) -> int:
        return len(self._items)

    def peek(self) -> tuple:
        """What waits to be read, oldest first (not taken)."""
        return tuple(self._items)


class _BatchedLoopLayer(pubsub.RedisPubSubLoopLayer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._shards = [_BatchedShard(shard.host, self) for shard in self._shards]

    async def receive(self, channel: str):
        """The next message for ``channel``, as the shard's reader decoded it."""
        if channel not in self.channels:
            await self._subscribe_to_channel(channel)
        try:
            return await self.channels[channel].get()
        except (TimeoutError, asyncio.CancelledError, GeneratorExit):
            # The consumer is stopping (channels_redis does the same).
            self.forget_channel(channel)
            raise

    async def _subscribe_to_channel(self, channel: str) -> None:
        self.channels[channel] = _Inbox()
        await self._get_shard(channel).subscribe(channel)

    async def new_channel(self, prefix: str = "specific.") -> str:
        channel = f"{self.prefix}{prefix}{uuid.uuid4().hex}"
        try:
            await self._subscribe_to_channel(channel)
        except asyncio.CancelledError:
            # The socket closed during its handshake: nobody will receive here.
            self.forget_channel(channel)
            raise
        return channel

    def pending(self, channel: str) -> tuple:
        inbox = self.channels.get(channel)
        return inbox.peek() if inbox is not None else ()

    def write_directly(self, channel: str, writer: Callable[[dict], bool] | None) -> None:
        inbox = self.channels.get(channel)
        if inbox is not None:
            inbox.taker = writer

    def forget_channel(self, channel: str) -> None:
        if self.channels.pop(channel, None) is not None:
            self._get_shard(channel).unsubscribe_soon(channel)


class BatchedPubSubChannelLayer(pubsub.RedisPubSubChannelLayer):
    """``RedisPubSubChannelLayer`` whose subscriptions go in batches (above)."""

    def pending(self, channel: str) -> tuple:
        """Messages decoded for ``channel`` and not yet received, oldest first:
        the heartbeat does not send again an alert still on its way to a socket."""
        return self._get_layer().pending(channel)

    def write_directly(self, channel: str, writer: Callable[[dict], bool] | None) -> None:
        """Offer ``channel``'s messages to ``writer`` first, from the shard's
        reader, while the consumer waits with nothing queued (``_Inbox.offer``).
        ``writer`` returns whether it took the message: a taken message never
        reaches ``receive``. None stops it.

        A city-wide alert reaches ~5,000 sockets of a daphne in one reader
        callback: through the inbox, each woke its consumer's receive task,
        then the consumer's ``asyncio.wait``, then a new receive task: three
        task steps and their objects per socket, most of a socket daphne's
        time (``bench/city.py --profile``). Written here, it is one call."""
        self._get_layer().write_directly(channel, writer)

    def forget_channel(self, channel: str) -> None:
        """``channel`` (a consumer's own) will not be read again: unsubscribe it,
        unless channels_redis already did. Not a coroutine: a consumer being
        cancelled calls it on its way out."""
        self._get_layer().forget_channel(channel)

    def _get_layer(self):
        loop = asyncio.get_running_loop()
        try:
            return self._layers[loop]
        except KeyError:
            layer = self._layers[loop] = _BatchedLoopLayer(
                *self._args, **self._kwargs, channel_layer=self
            )
            _wrap_close(self, loop)
            return layer
