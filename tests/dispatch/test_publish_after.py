"""A socket's database call hands its commit's publishes to the event loop
(``dispatch.events.db_call``): the one database thread of a daphne process is
free for the next socket's call while Redis round trips are under way, and the
messages still go out before the socket answers.

Redis is real (a redis-server of the test's own, the pub/sub layer) and is made
slow for real: ``CLIENT PAUSE`` holds every client's commands for a moment, as
a loaded server would."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import transaction

from dispatch.events import db_call, push_on_commit
from tests.dispatch.factories import LoginMemberFactory
from tests.dispatch.test_consumers import login_cookies
from tests.e2e.harness import _stop_popen, redis_start_owned
from units.models import Unit

pytestmark = pytest.mark.django_db(transaction=True)

PAUSE_S = 0.5


@pytest.fixture
def redis_port(settings, tmp_path):
    proc, port = redis_start_owned(data_dir=tmp_path / "redis")
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{port}/0"]},
        }
    }
    yield port
    _stop_popen(proc)


def _redis_pause(port: int) -> float:
    """Hold every Redis client's commands for PAUSE_S; returns the earliest
    time it can end (Redis took the command after this call began)."""
    with redis.Redis(host="127.0.0.1", port=port) as r:
        r.ping()  # connected: the pause starts with the next command
        asked_at = time.monotonic()
        r.execute_command("CLIENT", "PAUSE", int(PAUSE_S * 1000), "ALL")
    return asked_at + PAUSE_S


def _commit_a_push() -> None:
    with transaction.atomic():
        push_on_commit([("unit.1", {"type": "update", "n": 1})])


def _read() -> float:
    Unit.objects.count()
    return time.monotonic()


def test_another_sockets_call_does_not_wait_for_a_commits_publishes(redis_port):
    async_to_sync(_another_call_during_a_publish)(redis_port)


async def _another_call_during_a_publish(port):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("unit.1", channel)
    try:
        _redis_pause(port)
        writer = asyncio.ensure_future(db_call(_commit_a_push)())
        await asyncio.sleep(0.05)  # the writer has committed; its publish waits on Redis
        await db_call(_read)()
        # The read ran while the publish was still waiting on Redis.
        read_before_publish = not writer.done()
        await writer
        assert read_before_publish
        message = await asyncio.wait_for(layer.receive(channel), 2)
        assert message["payload"] == {"type": "update", "n": 1}
    finally:
        await layer.flush()


def test_the_publish_is_done_when_the_call_returns(redis_port):
    async_to_sync(_publish_then_return)(redis_port)


async def _publish_then_return(port):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("unit.1", channel)
    try:
        paused_until = _redis_pause(port)
        await db_call(_commit_a_push)()

        # Published already, so a socket answering after the call answers after
        # its frames: the call waited for Redis to take the message.
        assert time.monotonic() >= paused_until - 0.01
        message = await asyncio.wait_for(layer.receive(channel), 2)
        assert message["type"] == "push"
    finally:
        await layer.flush()


def _commit_a_wave(groups: int) -> None:
    with transaction.atomic():
        push_on_commit(
            [(f"unit.{g}", {"type": "update", "n": n}) for n in range(2) for g in range(groups)]
        )


def test_a_commits_frames_reach_every_group_in_order(redis_port):
    """A city-wide wave is one commit to a thousand unit groups: its messages go
    to Redis together (one pipeline), each group's frames as one message."""
    async_to_sync(_a_wave_to_many_groups)(300)


async def _a_wave_to_many_groups(groups: int):
    layer = get_channel_layer()
    channels = [await layer.new_channel() for _ in range(groups)]
    for g, channel in enumerate(channels):
        await layer.group_add(f"unit.{g}", channel)
    try:
        await db_call(_commit_a_wave)(groups)
        for channel in channels:
            message = await asyncio.wait_for(layer.receive(channel), 2)
            assert message["payloads"] == [{"type": "update", "n": 0}, {"type": "update", "n": 1}]
    finally:
        await layer.flush()


@pytest.fixture
def batched_layer(settings, redis_port):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "config.pubsub.BatchedPubSubChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{redis_port}/0"]},
        }
    }
    return redis_port


def _subscribe_calls(port: int) -> int:
    with redis.Redis(host="127.0.0.1", port=port) as r:
        stats = r.info("commandstats")
    return stats.get("cmdstat_subscribe", {}).get("calls", 0)


def test_sockets_opening_together_subscribe_in_a_few_commands(batched_layer):
    """300 sockets opening at once (a reconnect storm) each subscribe three
    channels: in a few SUBSCRIBE commands, not 900 round trips one at a time;
    each still gets its frames, and closing unsubscribes every one."""
    async_to_sync(_storm_of_subscriptions)(batched_layer, 300)


async def _storm_of_subscriptions(port: int, sockets: int):
    layer = get_channel_layer()
    before = _subscribe_calls(port)

    async def open_socket(i: int) -> str:
        channel = await layer.new_channel()
        await layer.group_add(f"member.{i}", channel)
        await layer.group_add(f"unit.{i % 30}", channel)
        return channel

    channels = await asyncio.gather(*(open_socket(i) for i in range(sockets)))
    try:
        assert _subscribe_calls(port) - before < 60
        await layer.group_send("member.7", {"type": "push", "text": "a"})
        await layer.group_send("unit.3", {"type": "push", "text": "b"})
        assert (await asyncio.wait_for(layer.receive(channels[7]), 2))["text"] == "a"
        for i in range(3, sockets, 30):
            assert (await asyncio.wait_for(layer.receive(channels[i]), 2))["text"] == "b"

        for i, channel in enumerate(channels):
            await layer.group_discard(f"member.{i}", channel)
            await layer.group_discard(f"unit.{i % 30}", channel)
        await asyncio.sleep(0.2)
        with redis.Redis(host="127.0.0.1", port=port) as r:
            groups = [c for c in r.pubsub_channels() if b"__group__" in c]
        assert groups == []
    finally:
        await layer.flush()


def test_sockets_closing_while_frames_reach_them_leave_no_subscription(batched_layer):
    """A socket that closes while frames are on their way to it: channels stops
    its consumer with a receive just done or not yet started, and channels_redis
    unsubscribes only a receive it cancels mid-wait. Every socket channel must
    still be unsubscribed: a reconnect storm of 1,000 phones left 67 behind."""
    cookies = [login_cookies(LoginMemberFactory(on_duty=True).user) for _ in range(8)]
    async_to_sync(_close_while_frames_arrive)(batched_layer, cookies)


async def _close_while_frames_arrive(port: int, cookies: list[str]):
    from config.asgi import application
    from dispatch.events import member_group

    layer = get_channel_layer()
    try:
        for cookie in cookies:
            communicator = WebsocketCommunicator(
                application,
                "/ws/member/",
                headers=[(b"origin", b"http://testserver"), (b"cookie", cookie.encode())],
            )
            connected, _code = await communicator.connect()
            assert connected
            hello = await communicator.receive_json_from()
            for n in range(30):
                await layer.group_send(
                    member_group(hello["member"]["id"]), {"type": "push", "text": f"{n}"}
                )
            await communicator.disconnect()
        await asyncio.sleep(0.3)
        with redis.Redis(host="127.0.0.1", port=port) as r:
            left = r.pubsub_channels("*specific.*")
        assert left == []
    finally:
        await layer.flush()
