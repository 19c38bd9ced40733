"""A socket's database call hands its commit's publishes to the event loop
(``dispatch.events.db_call``): the one database thread of a daphne process is
free for the next socket's call while Redis round trips are under way, and the
messages still go out before the socket answers."""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import transaction

from dispatch.events import db_call, push_on_commit
from units.models import Unit

pytestmark = pytest.mark.django_db(transaction=True)

ROUND_TRIP_S = 0.3


class SlowLayer(InMemoryChannelLayer):
    """The in-memory layer with a Redis round trip's wait on each send, recording
    when each send was done."""

    async def group_send(self, group, message):
        await asyncio.sleep(ROUND_TRIP_S)
        await super().group_send(group, message)
        self.sent_at = [*getattr(self, "sent_at", []), time.monotonic()]


@pytest.fixture
def slow_layer(settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "tests.dispatch.test_publish_after.SlowLayer"}
    }
    return get_channel_layer()


def _commit_a_push() -> None:
    with transaction.atomic():
        push_on_commit([("unit.1", {"type": "update", "n": 1})])


def _read() -> float:
    Unit.objects.count()
    return time.monotonic()


def test_another_sockets_call_does_not_wait_for_a_commits_publishes(slow_layer):
    async_to_sync(_another_call_during_a_publish)(slow_layer)


async def _another_call_during_a_publish(slow_layer):
    channel = await slow_layer.new_channel()
    await slow_layer.group_add("unit.1", channel)

    writer = asyncio.ensure_future(db_call(_commit_a_push)())
    await asyncio.sleep(0.05)  # the writer has committed; its publish is under way
    read_done = await db_call(_read)()
    await writer

    (sent,) = slow_layer.sent_at
    # The read ran while the publish was still on its round trip.
    assert read_done < sent - ROUND_TRIP_S / 2
    message = await asyncio.wait_for(slow_layer.receive(channel), 1)
    assert message["payload"] == {"type": "update", "n": 1}


def test_the_publish_is_done_when_the_call_returns(slow_layer):
    async_to_sync(_publish_then_return)(slow_layer)


async def _publish_then_return(slow_layer):
    channel = await slow_layer.new_channel()
    await slow_layer.group_add("unit.1", channel)

    await db_call(_commit_a_push)()

    # Sent already, so a socket answering after the call answers after its frames.
    assert len(slow_layer.sent_at) == 1
    message = await asyncio.wait_for(slow_layer.receive(channel), 0.05)
    assert message["type"] == "push"
